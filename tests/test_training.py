
import pytest
import torch

from hdlib.datasets.tasks import HeadDirectionTrackingTask
from hdlib.fitters import training
from hdlib.models.ei_ring import RingAttractorNetwork


def _model(seed=0):
    return RingAttractorNetwork(n_exc=48, n_inh=12, seed=seed)



def _config(**kw):
    base = dict(max_epochs=4, batches_per_epoch=2, val_batches=1, batch_size=4, val_batch_size=4,
                progress=False,
                plot_progress=False, learning_rate=5e-3)
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
    path = trainer.save_checkpoint(0, tmp_path / "ck.pt")
    before = path.read_bytes()

    def crash(obj, f, *a, **k):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(1, path)
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
    path = other_trainer.save_checkpoint(0, tmp_path / "o.pt")
    with pytest.raises(ValueError, match="does not match"):
        trainer.load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        trainer.load_checkpoint(tmp_path / "missing.pt")



def test_nan_loss_stops_and_keeps_best_checkpoint(tmp_path):
    model = _model()
    path = tmp_path / "best.pt"
    trainer = training.AdamCosineTrainer(model, _config(checkpoint_path=str(path)), _task(model))
    trainer.train(epochs=1)
    saved = path.read_bytes()
    with torch.no_grad():
        model.g_ee.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="best checkpoint"):
        trainer.train()
    assert path.read_bytes() == saved



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

