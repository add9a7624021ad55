"""``python -m hdlib fit``: any session file of the export schema, end to end on tiny sessions."""
import json

import numpy as np
import pytest
import scipy.io
import torch

from hdlib.book.cli import main as cli
from hdlib.datasets import sessions
from hdlib.fitters import sc_fit, sc_teacher

KEYS = {"fit", "baselines", "ceiling", "best_baseline", "train_trials", "val_trials",
        "test_trials", "seconds", "steps", "best_step", "stop_reason", "n_trials", "n_neurons",
        "n_exc", "n_inh"}
SCORES = {"bits_per_spike", "psth_r", "psth_r2", "psth_r_smooth", "psth_r2_smooth",
          "pooled_metric", "single_trial_r", "L_trial", "selectivity_location"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 9-unit session (6 E, 3 I) of 72 trials x 60 bins, in the v7.3 and the v5 format."""
    folder = tmp_path_factory.mktemp("tiny")
    v73 = sc_teacher.make_synthetic_session(folder / "tiny.mat", n_trials=72, n_exc=6, n_inh=3,
                                            n_bins=60, seed=4).path
    v5 = folder / "tiny_v5.mat"
    scipy.io.savemat(v5, sessions.read_fields(v73))
    return {"v73": v73, "v5": v5}


@pytest.mark.parametrize("kind", ["v73", "v5"])
def test_fit_writes_metrics_checkpoint_and_figure(tiny, tmp_path, capsys, kind):
    config = tmp_path / "fit.yaml"
    config.write_text("learning_rate: 0.02\nbatch_size: 16\n")
    out = tmp_path / "out"
    assert cli(["fit", str(tiny[kind]), "--steps", "3", "--seed", "1", "--config", str(config),
                "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for row in ("mean rate", "pooled PSTH", "shrunk PSTH", "Poisson GLM", "E-I RNN fit",
                "ceiling", "trial end"):
        assert row in printed, row
    metrics = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(metrics)
    assert SCORES <= set(metrics["fit"]) and set(metrics["baselines"]) >= {"Poisson GLM"}
    parts = [set(metrics[f"{p}_trials"]) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(parts[0] | parts[1] | parts[2]) == 72
    assert (metrics["steps"], metrics["n_trials"], metrics["n_neurons"]) == (3, 72, 9)
    assert (metrics["n_exc"], metrics["n_inh"]) == (6, 3)
    assert metrics["config"]["learning_rate"] == 0.02 and metrics["config"]["seed"] == 1
    assert (out / "psth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the checkpoint is plain data (weights_only) and the public loader rebuilds the model
    raw = torch.load(out / "model.pt", weights_only=True)
    model = sc_fit.load_fitted(out / "model.pt")
    assert not model.training
    for name, value in raw["state_dict"].items():
        assert torch.equal(model.state_dict()[name], value), name
    assert model.W_rec.shape == (9, 9) and model.excitatory.sum() == 6
    # noise is off in eval(): the loaded model's rates are deterministic and reproduce the
    # test-trial scores written by the command (single-trial ones with its seeded noise)
    session = sessions.load_session(tiny[kind], seed=sc_fit.SPLIT_SEED,
                                    val_fraction=sc_fit.VAL_FRACTION,
                                    test_fraction=sc_fit.TEST_FRACTION)
    assert metrics["test_trials"] == session.test_idx.tolist()  # training seed 1, split fixed
    scores = sc_fit.evaluate(model, session, seed=1)
    for key in ("bits_per_spike", "psth_r_smooth", "single_trial_r"):
        assert scores[key] == pytest.approx(metrics["fit"][key], abs=1e-6), key
    inputs = session.inputs[:4]
    assert torch.equal(model(inputs), model(inputs))


@pytest.mark.parametrize("edit, field", [
    (lambda f: f.pop("firing_rates"), "firing_rates"),
    (lambda f: f.update(trial_duration_ms=np.zeros(5)), "trial_duration_ms"),
    (lambda f: f.update(neuron_type=np.r_[np.ones(8), 3.0]), "neuron_type"),
])
def test_a_bad_file_is_refused_with_the_field_named_and_nothing_written(tiny, tmp_path, capsys,
                                                                        edit, field):
    err, out = _fit_edited(tiny, tmp_path, capsys, edit)
    assert err.startswith("error: ") and field in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def _fit_edited(tiny, tmp_path, capsys, edit):
    """``hdlib fit`` on the tiny session with ``edit`` applied to its fields (exit code 2
    expected): the error text and the output folder."""
    fields = sessions.read_fields(tiny["v73"])
    edit(fields)
    bad = sessions.write_session_v73(tmp_path / "bad.mat", fields)
    out = tmp_path / "out"
    assert cli(["fit", str(bad), "--steps", "2", "--out", str(out), "--no-progress"]) == 2
    return capsys.readouterr().err, out


def test_bad_options_are_refused_before_anything_is_written(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    config = tmp_path / "fit.yaml"
    config.write_text("learning_rat: 0.1\n")
    assert cli(["fit", str(tiny["v73"]), "--config", str(config), "--out", str(out)]) == 2
    assert "learning_rat" in capsys.readouterr().err
    assert cli(["fit", str(tiny["v73"]), "--steps", "0", "--out", str(out)]) == 2
    assert "steps" in capsys.readouterr().err
    assert cli(["fit", str(tmp_path / "missing.mat"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_validation_split_is_stratified_and_does_not_follow_the_training_seed(tiny):
    a = sessions.load_session(tiny["v73"], seed=sc_fit.SPLIT_SEED)
    condition = a.condition.numpy()
    val = np.zeros(len(condition), dtype=bool)
    val[a.val_idx.numpy()] = True
    for c in np.unique(condition):
        n = (condition == c).sum()
        expected = min(max(int(round(sc_fit.VAL_FRACTION * n)), 1), n - 1) if n >= 2 else 0
        assert val[condition == c].sum() == expected, c
    b = sessions.load_session(tiny["v73"], seed=sc_fit.SPLIT_SEED)
    assert torch.equal(a.val_idx, b.val_idx)


def test_minutes_stops_the_fit_by_the_clock(tiny, tmp_path):
    out = tmp_path / "out"
    metrics = sc_fit.fit_file(tiny["v73"], out, minutes=0.01, progress=False)
    assert 1 <= metrics["steps"] < 10 ** 7 and (out / "model.pt").exists()
    with pytest.raises(ValueError, match="not both"):
        sc_fit.fit_file(tiny["v73"], tmp_path / "other", steps=2, minutes=1.0)


def _relabel(**labels):
    def edit(fields):
        fields.update({name: np.full_like(fields[name], value) for name, value in labels.items()})
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.pop("trial_reward"), "missing field(s) trial_reward"),
    (_relabel(trial_identity=1, trial_location=2), "every trial has the same condition"),
])
def test_a_session_that_cannot_be_scored_gets_one_line_and_no_files(tiny, tmp_path, capsys,
                                                                    edit, message):
    err, out = _fit_edited(tiny, tmp_path, capsys, edit)
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_too_few_trials_get_one_line_and_no_files(tmp_path, capsys):
    path = sc_teacher.make_synthetic_session(tmp_path / "few.mat", n_trials=15, n_exc=3, n_inh=1,
                                             n_bins=30, seed=1).path
    out = tmp_path / "out"
    assert cli(["fit", str(path), "--baselines-only", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "few.mat: 15 trials; a fit needs at least 20" in err
    assert not out.exists()


def test_baselines_only_scores_the_baselines_and_writes_no_model(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["fit", str(tiny["v73"]), "--baselines-only", "--out", str(out)]) == 0
    assert "Poisson GLM" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert "fit" not in metrics and set(metrics["best_baseline"]) >= {"bits_per_spike"}
    assert metrics["baselines"]["mean rate"]["bits_per_spike"] == pytest.approx(0, abs=1e-12)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]


def test_the_best_validation_state_is_kept_and_written_when_interrupted(tiny, tmp_path):
    """Ctrl-C during the fit (raised here from the validation monitor at its third call) ends
    the fit normally with the best state seen so far, which is also the one on disk."""
    session = sessions.load_session(tiny["v73"], seed=0, test_fraction=0.2)
    calls = []

    def monitor():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {}

    cfg = sc_fit.make_config(steps=50, eval_every=5, learning_rate=0.02, batch_size=16)
    path = tmp_path / "best.pt"
    model, history = sc_fit.fit(session, cfg, progress=False, monitor=monitor, best_path=path,
                                save_best=lambda m, p: sc_fit.save_fitted(m, cfg, p))
    assert history["stop_reason"].startswith("interrupted")
    values = history["monitor"]["val_bits_per_spike"]
    steps = history["monitor"]["step"]
    assert history["best_step"] == steps[int(np.argmax(values))]
    saved = sc_fit.load_fitted(path)
    for name, value in model.state_dict().items():
        assert torch.equal(saved.state_dict()[name], value), name


def test_a_fit_that_cannot_keep_any_state_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    def diverged(*args, **kwargs):
        raise FloatingPointError("the fit diverged before its first validation check (x)")

    monkeypatch.setattr(sc_fit, "fit", diverged)
    assert cli(["fit", str(tiny["v73"]), "--steps", "2", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the fit diverged") and len(err.strip().splitlines()) == 1
