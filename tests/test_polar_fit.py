"""hdlib.fitters.polar_fit: the teacher, its spikes, held-out scores, the fit on the training
engine and the recovery tables."""
import math

import pytest
import torch

from hdlib.datasets import stimuli
from hdlib.fitters import polar_fit
from hdlib.models import polar, polar_v1

TRUTH = {"lambda_fix": 10.0, "lambda_sac": 40.0, "alpha_fast": 0.74, "alpha_slow": 0.95}


@pytest.fixture(scope="module")
def data():
    video = stimuli.free_viewing_video(6, 60, window=36, seed=0)
    features = polar_v1.encode_video(video)
    teacher = polar_fit.make_teacher(features.amplitude.shape[-1], 5, **TRUTH)
    return teacher, polar_fit.simulate(teacher, features, seed=1)


def test_teacher_spikes_and_the_ceiling(data):
    teacher, spikes = data
    assert spikes.counts.shape == (6, 60, 5) and (spikes.rates > 0).all()
    assert torch.equal(spikes.counts, spikes.counts.round()) and (spikes.counts >= 0).all()
    part = spikes.trials(slice(1, 3))
    assert torch.equal(part.counts, spikes.counts[1:3])
    assert torch.equal(part.features.gate, spikes.features.gate[1:3])
    scores = polar_fit.evaluate(teacher, spikes)
    assert scores["rate_correlation"] == pytest.approx(1.0, abs=1e-5)
    assert scores["bits_per_spike"] == pytest.approx(scores["ceiling_bits_per_spike"])


def test_evaluate_scores_the_mean_rate_at_zero_bits(data):
    # A model whose rate is each neuron's mean count / dt is the null model itself.
    teacher, spikes = data
    mean = spikes.counts.mean(dim=(0, 1)) / teacher.dt

    class MeanRate(torch.nn.Module):
        dt = teacher.dt

        def forward(self, amplitude, gate):
            return mean.expand(*gate.shape, -1)

    assert polar_fit.evaluate(MeanRate(), spikes)["bits_per_spike"] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_temporal_constants_get_their_own_learning_rate(data, scale):
    # Adam's first update of a parameter with a non-zero gradient is lr * g / |g|: each
    # constant's stored form (log lambda, logit alpha) moves by exactly its group's rate.
    _, spikes = data
    _, history = polar_fit.fit("polar_v1_relaxed", spikes, steps=1, learning_rate=1e-2,
                               temporal_lr_scale=scale, batch_size=4, progress=False)
    c = history["constants"]
    for name in ("lambda_fix", "lambda_sac"):
        moved = abs(math.log(c[name][1]) - math.log(c[name][0]))
        assert moved == pytest.approx(1e-2 * scale, rel=1e-3), name
    for name in ("alpha_fast", "alpha_slow"):
        logit = [math.log(a / (1 - a)) for a in c[name]]
        assert abs(logit[1] - logit[0]) == pytest.approx(1e-2 * scale, rel=1e-2), name


def test_fit_history_determinism_and_global_rng(data):
    _, spikes = data
    state = torch.get_rng_state()
    model, history = polar_fit.fit("polar_v1_relaxed", spikes, steps=3, batch_size=2, seed=4,
                                   progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(history["loss"]) == 3 and history["seconds"] > 0
    assert all(len(v) == 4 for v in history["constants"].values())
    assert history["constants"]["lambda_fix"][0] == pytest.approx(5.0)
    assert history["constants"]["lambda_fix"][-1] == pytest.approx(model.constants()["lambda_fix"])
    again = polar_fit.fit("polar_v1_relaxed", spikes, steps=3, batch_size=2, seed=4,
                          progress=False)[1]
    assert again["loss"] == history["loss"] and again["constants"] == history["constants"]
    other = polar_fit.fit("polar_v1_relaxed", spikes, steps=3, batch_size=2, seed=5,
                          progress=False)[1]
    assert other["loss"] != history["loss"]


def test_frozen_fit_learns_only_the_readout(data):
    _, spikes = data
    model, history = polar_fit.fit("polar_v1", spikes, steps=2, batch_size=2, learnable=False,
                                   progress=False)
    assert model.temporal_parameters() == []
    assert history["constants"]["alpha_slow"] == [pytest.approx(0.95)] * 3
    assert model.readout.weight.requires_grad


def test_fit_rejects_bad_settings(data):
    _, spikes = data
    for kwargs, name in [({"steps": 0}, "steps"), ({"batch_size": 0}, "batch_size"),
                         ({"temporal_lr_scale": -1.0}, "temporal_lr_scale"),
                         ({"learning_rate": 0.0}, "learning_rate")]:
        with pytest.raises(ValueError, match=name):
            polar_fit.fit("polar_v1", spikes, progress=False, **kwargs)


def test_relative_errors_of_constants_and_time_constants():
    estimate = {**TRUTH, "lambda_fix": 20.0, "alpha_fast": 0.87}
    errors = polar_fit.relative_errors(estimate, TRUTH)
    assert errors["lambda_fix"] == pytest.approx(1.0)
    assert errors["tau_fix_ms"] == pytest.approx(0.5)  # 100 ms -> 50 ms
    assert errors["alpha_fast"] == pytest.approx(0.13 / 0.74)
    assert errors["tau_fast_frames"] == pytest.approx(1.0)  # 1/0.26 -> 1/0.13 frames
    assert errors["lambda_sac"] == errors["tau_slow_frames"] == 0.0


def test_results_and_checks_tables(data):
    teacher, spikes = data
    n_features = spikes.features.amplitude.shape[-1]
    off = polar_fit.make_teacher(n_features, 5, **{**TRUTH, "lambda_fix": 13.0,
                                                   "alpha_fast": 0.96})
    history = {"loss": [0.0] * 4, "seconds": 2.0}
    fits = {("truth", 0.0): (teacher, history), ("off", 1.0): (off, history)}
    table = polar_fit.results_table(fits, TRUTH, spikes, tolerance=0.15)
    assert list(table["start"]) == ["truth", "off"]
    truth_row, off_row = table.iloc[0], table.iloc[1]
    assert truth_row["largest error"] == pytest.approx(0, abs=1e-6) and truth_row["recovered"]
    assert truth_row["checks passed"] == "5/5" and truth_row["s per step"] == 0.5
    assert truth_row["val bits/spike"] == pytest.approx(
        polar_fit.evaluate(teacher, spikes)["ceiling_bits_per_spike"])
    assert off_row["largest error"] == pytest.approx(0.3, rel=1e-5)
    # alpha_fast 0.74 -> 0.96: tau_fast from 3.85 to 25 frames.
    assert off_row["largest tau error"] == pytest.approx(0.26 / 0.04 - 1, rel=1e-4)
    assert not off_row["recovered"] and off_row["checks passed"] == "4/5"
    checks = polar_fit.checks_table(fits).set_index("start")
    assert checks.loc["truth"].drop("lr scale").all()
    assert not checks.loc["off", "alpha_slow > alpha_fast"]
    assert checks.loc["off", "alphas in 0.5-0.99"]


def test_configurations_drive_the_start(data):
    _, spikes = data
    model, _ = polar_fit.fit(polar.load_config("polar_v1_very_relaxed"), spikes, steps=1,
                             learning_rate=1e-6, batch_size=1, progress=False)
    assert model.constants()["lambda_sac"] == pytest.approx(10.0, rel=1e-4)


def test_step_seconds_times_each_model_and_clears_gradients(data):
    teacher, spikes = data
    frozen = polar_v1.PolarV1(teacher.n_features, 5, learnable_alphas=False,
                              learnable_lambdas=False)
    times = polar_fit.step_seconds({"learnable": teacher, "frozen": frozen}, spikes, repeats=2)
    assert set(times) == {"learnable", "frozen"} and all(t > 0 for t in times.values())
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ValueError, match="repeats"):
        polar_fit.step_seconds({"frozen": frozen}, spikes, repeats=0)
