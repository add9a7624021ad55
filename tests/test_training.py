
import math
from types import SimpleNamespace

import pytest
import torch

from hdlib.datasets.tasks import HeadDirectionTrackingTask
from hdlib.fitters import training
from hdlib.models.ei_ring import RingAttractorNetwork


def _model(seed=0):
    return RingAttractorNetwork(n_exc=48, n_inh=12, seed=seed)


def _config(**kw):
    base = dict(max_epochs=4, batches_per_epoch=2, val_batches=1, batch_size=4, val_batch_size=4,
                progress=False, learning_rate=5e-3)
    return training.create_training_config(**{**base, **kw})


def _task(model):
    return HeadDirectionTrackingTask.for_model(model, seq_len=20)


def test_resume_reproduces_uninterrupted_run(tmp_path):
    model = _model()
    whole = training.AdamCosineTrainer(model, _config(), _task(model))
    whole.train()
    first_model = _model()
    first = training.AdamCosineTrainer(first_model, _config(), _task(first_model))
    first.train(epochs=2)  # interrupted after two of four epochs
    first.save_checkpoint(1, tmp_path / "ck.pt")
    resumed_model = _model(seed=9)  # different weights, overwritten by the checkpoint
    resumed = training.AdamCosineTrainer(resumed_model, _config(), _task(resumed_model))
    assert resumed.load_checkpoint(tmp_path / "ck.pt") == 2
    resumed.train()
    # Equal up to float reordering: MKL may change its thread count with the machine's load.
    for key in ("train_loss", "val_loss"):
        torch.testing.assert_close(resumed.history[key], whole.history[key], rtol=1e-4, atol=0.0)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = _model()
    trainer = training.AdamCosineTrainer(model, _config(), _task(model))
    path = trainer.save_checkpoint(tmp_path / "ck.pt")
    before = path.read_bytes()

    def crash(obj, f, *a, **k):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    model = _model()
    trainer = training.AdamCosineTrainer(model, _config(), _task(model))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        trainer.load_checkpoint(bad)
    other = RingAttractorNetwork(n_exc=40, n_inh=12)
    other_trainer = training.AdamCosineTrainer(other, _config(), _task(other))
    path = other_trainer.save_checkpoint(tmp_path / "o.pt")
    with pytest.raises(ValueError, match="does not match"):
        trainer.load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        trainer.load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_epoch_must_be_the_last_completed_one(tmp_path):
    model = _model()
    trainer = training.AdamCosineTrainer(model, _config(), _task(model))
    trainer.train(epochs=1)
    with pytest.raises(ValueError, match="last completed epoch"):
        trainer.save_checkpoint(3, tmp_path / "ck.pt")
    assert trainer.save_checkpoint(0, tmp_path / "ck.pt").exists()


def test_nan_loss_stops_and_keeps_the_last_epoch_checkpoint(tmp_path):
    model = _model()
    path = tmp_path / "last.pt"
    trainer = training.AdamCosineTrainer(model, _config(checkpoint_path=str(path)), _task(model))
    trainer.train(epochs=1)  # the checkpoint is written after every epoch
    saved = path.read_bytes()
    with torch.no_grad():
        model.g_ee.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="was not updated"):
        trainer.train()
    assert path.read_bytes() == saved  # the failing epoch never completed
    restored = training.AdamCosineTrainer(_model(seed=3), _config(), _task(model))
    assert restored.load_checkpoint(path) == 1
    assert torch.isfinite(restored.model.g_ee).item()


def test_constraints_hold_after_every_step():
    model = _model()
    with torch.no_grad():
        model.W_IE.fill_(3.0)
        model.noise_rate_e.fill_(50.0)
    trainer = training.AdamCosineTrainer(model, _config(max_epochs=1), _task(model))
    trainer.train()
    assert model.W_IE.max().item() <= 0.5
    assert 0.1 <= model.noise_rate_e.item() <= 20.0
    assert -0.5 <= model.W_EI.min().item() and model.W_EI.max().item() <= 2.0


def test_groups_learning_rates_schedule_and_monitoring():
    model = _model()
    trainer = training.AdamCosineTrainer(model, _config(), _task(model))
    rates = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert rates["noise"] == pytest.approx(5 * 5e-3)
    assert rates["connectivity"] == pytest.approx(1e-2)
    history = trainer.train()
    lr = history["learning_rate"]
    assert lr[0] == pytest.approx(5e-3) and all(a > b for a, b in zip(lr, lr[1:]))
    assert len(trainer.param_history["g_ee"]) == 5
    assert set(history["grad_norms"]) >= {"g_ee", "noise_rate_e", "sigma_ee", "W_EI"}
    constant = training.AdamCosineTrainer(_model(), _config(schedule="constant"), _task(model))
    assert len(set(constant.train()["learning_rate"])) == 1


def test_early_stopping():
    model = _model()
    trainer = training.AdamCosineTrainer(
        model, _config(max_epochs=30, patience=1, learning_rate=1e-9, min_lr=0.0), _task(model))
    trainer.train()
    assert len(trainer.history["val_loss"]) < 30


def test_keep_best_restores_the_state_with_the_lowest_validation_loss(tmp_path, monkeypatch):
    losses = iter([1.0, 0.5, 0.8, 0.9, 0.95, 0.99])  # the best comes after epoch 2 of 6
    evaluated = []

    def scripted(self):
        evaluated.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return {"val_loss": next(losses)}

    monkeypatch.setattr(training.AdamCosineTrainer, "validate", scripted)
    model = _model()
    config = _config(max_epochs=6, learning_rate=0.05, keep_best=True,
                     best_path=str(tmp_path / "best.pt"), checkpoint_path=str(tmp_path / "c.pt"))
    trainer = training.AdamCosineTrainer(model, config, _task(model))
    trainer.train()
    best = evaluated[1]
    assert trainer.best_epoch == 2 and trainer.best_val_loss == 0.5
    assert any(not torch.equal(value, best[name]) for name, value in model.state_dict().items())
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["epoch"] == 2
    assert trainer.restore_best() == 2
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best[name], rtol=0.0, atol=0.0)
        torch.testing.assert_close(saved["model"][name], best[name], rtol=0.0, atol=0.0)
    resumed_model = _model(seed=3)
    resumed = training.AdamCosineTrainer(resumed_model, config, _task(resumed_model))
    resumed.load_checkpoint(tmp_path / "c.pt")
    assert resumed.best_epoch == 2 and resumed.best_val_loss == 0.5
    for name, value in resumed.best_state.items():
        torch.testing.assert_close(value, best[name], rtol=0.0, atol=0.0)


def test_best_path_needs_keep_best():
    with pytest.raises(ValueError, match="best_path needs keep_best"):
        training.create_training_config(best_path="best.pt")


def test_document_interface():
    model = _model()
    out_model, history, trainer = training.train_model_enhanced(
        model, max_epochs=2, batches_per_epoch=1, val_batches=1, batch_size=2, progress=False,
        plot_progress=True, task=_task(model))
    assert out_model is model and isinstance(trainer, training.AdamCosineTrainer)
    assert len(history["train_loss"]) == 2
    model2, history2 = training.quick_train(_model(), epochs=1, batches_per_epoch=1,
                                            val_batches=1, batch_size=2, progress=False,
                                            task=_task(model))
    assert len(history2["val_loss"]) == 1
    assert training.create_training_config("conservative").learning_rate == 5e-4
    assert training.create_training_config("aggressive", max_epochs=5).max_epochs == 5


@pytest.mark.parametrize("kwargs, name", [
    ({"learnig_rate": 1e-3}, "learnig_rate"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"constraints": {"g_ee": (5.0, 1.0)}}, "g_ee"),
    ({"constraints": {"g_ee": 3.0}}, "g_ee"),
    ({"schedule": "linear"}, "schedule"),
    ({"group_lr_scale": {"fast": 2.0}}, "group_lr_scale"),
    ({"min_lr": 1.0}, "min_lr"),
])
def test_bad_config(kwargs, name):
    with pytest.raises(ValueError, match=name):
        training.create_training_config(**kwargs)



def test_scaled_recipe_keeps_each_recipes_own_settings():
    default = training.scaled_recipe({}, epoch_scale=0.2)
    assert default == {"learning_rate": 1e-3, "max_epochs": 20, "weight_decay": 1e-4,
                       "patience": 4, "batch_size": 32, "schedule": "cosine"}
    conservative = training.scaled_recipe(training.RECIPES["conservative"], epoch_scale=0.2)
    assert (conservative["max_epochs"], conservative["patience"]) == (40, 6)
    assert conservative["learning_rate"] == 5e-4 and conservative["batch_size"] == 16
    tiny = training.scaled_recipe(training.RECIPES["aggressive"], epoch_scale=0.01)
    assert (tiny["max_epochs"], tiny["patience"]) == (1, 1)  # 0.5 and 0.1 round up to 1
    assert training.RECIPES["constant rate"] == {"schedule": "constant"}


def test_parameter_movement_from_a_recorded_history():
    # g_ee 1.5 -> 3.0 moves by 1.5 / 1.5 = 100%; W_IE (3, 4) -> (3.3, 4.4) by 0.5 / 5 = 10%
    # (the whole matrix, while its mean absolute value is only a summary column)
    fake = SimpleNamespace(monitored=["g_ee", "W_IE"],
                           history={"grad_norms": {"g_ee": [0.5, 0.1], "W_IE": [2.0, 1.0]}},
                           param_history={"g_ee": [1.5, 1.2, 3.0], "W_IE": [3.5, 3.6, 3.85]},
                           initial_parameters={"g_ee": torch.tensor(1.5),
                                               "W_IE": torch.tensor([3.0, 4.0])},
                           parameters={"g_ee": torch.tensor(3.0),
                                       "W_IE": torch.tensor([3.3, 4.4])})
    table = training.parameter_movement(fake)
    assert table.loc["g_ee"].tolist() == pytest.approx([0.5, 1.5, 3.0, 1.0])
    assert table.loc["W_IE"].tolist() == pytest.approx([2.0, 3.5, 3.85, 0.1])


def test_relative_change_counts_entries_moving_in_opposite_directions():
    # mean absolute value unchanged (2.0), but the matrix moved by ||(1, -1)|| / ||(1, 3)||
    assert training.relative_change(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])) == \
        pytest.approx(math.sqrt(2) / math.sqrt(10))


def test_regulariser_adds_the_mean_square_of_every_parameter():
    model = _model()
    expected = sum(p.detach().square().mean().item() for p in model.parameters())
    trainer = training.AdamCosineTrainer(model, _config(regularisation=0.1, max_epochs=1,
                                                        batches_per_epoch=1), _task(model))
    trainer.train()
    steps = trainer.engine.history
    assert steps["penalty"][0] == pytest.approx(expected, rel=1e-6)
    assert steps["loss"][0] == pytest.approx(steps["task_loss"][0] + 0.1 * expected, rel=1e-6)


def test_state_passing_continues_state_and_trajectories_for_the_set_number_of_segments():
    model = _model()
    task = HeadDirectionTrackingTask(48, seq_len=10, speed_deg_s=0.0, initial="silent")
    seen = []
    run = task.run

    def recording_run(model, inputs, targets, h0=None, generator=None):
        if torch.is_grad_enabled():  # training steps, not the validation under no_grad
            seen.append((h0, targets[:, 0].clone()))
        return run(model, inputs, targets, h0, generator)

    task.run = recording_run
    trainer = training.AdamCosineTrainer(
        model, _config(state_passing=True, segments_per_sequence=3, max_epochs=2,
                       batches_per_epoch=3, early_stopping=False), task)
    trainer.train()
    assert [h0 is None for h0, _ in seen] == [True, False, False, True, False, False]
    # without motion each carried segment starts where the previous one was
    torch.testing.assert_close(seen[1][1], seen[0][1])
    torch.testing.assert_close(seen[2][1], seen[0][1])
    assert not torch.allclose(seen[3][1], seen[0][1])  # a fresh batch after three segments
    assert trainer.engine.carry["segment"] == 3


def test_state_passing_needs_a_task_that_can_continue():
    model = _model()
    with pytest.raises(ValueError, match="state_passing"):
        training.AdamCosineTrainer(model, _config(state_passing=True),
                                   SimpleNamespace(batch=None, loss=None))


def test_constraint_violations():
    model = _model()
    bounds = training.DEFAULT_CONSTRAINTS
    assert training.constraint_violations(model, bounds) == []
    with torch.no_grad():
        model.W_IE[0, 0] = 0.6
        model.g_ee.fill_(0.05)
    assert sorted(training.constraint_violations(model, bounds)) == ["W_IE", "g_ee"]
    assert training.constraint_violations(model, {"missing": (0.0, 1.0)}) == []


def test_sequences_to_target():
    assert training.sequences_to_target([3.0, 2.0, 1.0], 2.0, 96) == 192.0
    assert training.sequences_to_target([3.0, 2.0, 1.0], 0.5, 96) == math.inf


def test_run_table_and_paired_comparison():
    def run(val, train, per_epoch):
        return {"history": {"val_loss": val, "train_loss": train}, "sequences_per_epoch":
                per_epoch, "seconds": 1.0, "error": 2.0}

    runs = {("a", 0): run([4.0, 2.0, 3.0], [2.0, 2.0, 1.5], 10),
            ("b", 0): run([3.0, 2.5], [3.0, 2.5], 40),
            ("a", 1): run([1.0, 0.5], [1.0, 1.0], 10),
            ("b", 1): run([0.9, 0.8], [1.0, 1.0], 40)}
    table = training.run_table(runs, reference="b")
    # the targets are b's final losses: 2.5 on seed 0 (a reaches it in epoch 2, after 20
    # sequences; b in its last, after 80) and 0.8 on seed 1 (a: 20, b: 80).
    assert table.loc[("a", 0)].to_dict() == pytest.approx(
        {"final val loss": 3.0, "epochs run": 3, "rises": 1, "val / train (final)": 2.0,
         "sequences to target": 20.0, "tracking error (deg)": 2.0, "seconds": 1.0})
    assert table.loc[("b", 0), "sequences to target"] == 80.0
    assert table.loc[("a", 1), "sequences to target"] == 20.0
    assert training.run_table(runs, reference="a").loc[("b", 1), "sequences to target"] == \
        math.inf  # b never gets down to a's 0.5
    assert training.seeds_where_lower(table, "final val loss", "a", "b") == 1
    assert training.seeds_where_lower(table, "sequences to target", "a", "b") == 2
    with pytest.raises(ValueError, match="reference"):
        training.run_table(runs, reference="c")


def test_sgd_control_keeps_the_groups_rates_and_momentum():
    model = _model()
    trainer = training.AdamCosineTrainer(model, _config(optimizer="sgd", learning_rate=0.01),
                                         _task(model))
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    scales = training.DEFAULT_GROUP_LR_SCALE
    for group in trainer.optimizer.param_groups:
        assert group["momentum"] == 0.9
        assert group["initial_lr"] == pytest.approx(0.01 * scales[group["name"]])
    assert isinstance(training.AdamCosineTrainer(model, _config(), _task(model)).optimizer,
                      torch.optim.Adam)
    with pytest.raises(ValueError, match="optimizer"):
        _config(optimizer="rmsprop")
