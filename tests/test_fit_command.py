"""``python -m hdlib fit``: any session file of the export schema, end to end on tiny sessions."""
import json

import numpy as np
import pytest
import scipy.io
import torch

from hdlib.book.cli import main as cli
from hdlib.datasets import sessions
from hdlib.fitters import sc_fit, sc_teacher

KEYS = {"psth_corr", "psth_corr_pooled", "ceiling", "fraction_of_ceiling", "single_trial_corr",
        "rates_in_range", "seconds", "steps", "n_trials", "n_neurons", "n_exc", "n_inh"}


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
    assert "psth_corr_pooled" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(metrics)
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
    # noise is off in eval(): the loaded model's rates are deterministic and reproduce
    # the scores written by the command (which ran the model with its own seeded noise)
    session = sessions.load_session(tiny[kind], seed=sc_fit.SPLIT_SEED)
    assert metrics["val_trials"] == session.val_idx.tolist()  # training seed 1, split seed fixed
    scores = sc_fit.evaluate(model, session, seed=1)
    assert scores["psth_corr_pooled"] == pytest.approx(metrics["psth_corr_pooled"], abs=1e-6)
    inputs = session.inputs[:4]
    assert torch.equal(model(inputs), model(inputs))


@pytest.mark.parametrize("edit, field", [
    (lambda f: f.pop("firing_rates"), "firing_rates"),
    (lambda f: f.update(trial_duration_ms=np.zeros(5)), "trial_duration_ms"),
    (lambda f: f.update(neuron_type=np.r_[np.ones(8), 3.0]), "neuron_type"),
])
def test_a_bad_file_is_refused_with_the_field_named_and_nothing_written(tiny, tmp_path, capsys,
                                                                        edit, field):
    fields = sessions.read_fields(tiny["v73"])
    edit(fields)
    bad = sessions.write_session_v73(tmp_path / "bad.mat", fields)
    out = tmp_path / "out"
    assert cli(["fit", str(bad), "--steps", "2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and field in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


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
