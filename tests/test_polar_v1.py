"""hdlib.models.polar_v1: filter features and the model's constants."""
import pytest
import torch

from hdlib import circular
from hdlib.datasets import stimuli
from hdlib.models import polar, polar_v1


def test_window_motion_predicts_the_filter_phase():
    video = stimuli.free_viewing_video(4, 240, window=36, seed=0)
    features = polar_v1.encode_video(video)
    dynamics = polar.PolarDynamics()
    strong = features.amplitude > 0.8  # phase is noise where the amplitude is small

    def gap(shift):
        carried = dynamics.phase(features.phase, shift, features.gate)
        return circular.wrap(carried - features.phase).abs()[strong].mean()

    assert gap(features.phase_shift) < 0.8 * gap(torch.zeros_like(features.phase_shift))
    assert gap(features.phase_shift) < gap(-features.phase_shift)


def test_constants_and_their_time_constants():
    model = polar_v1.PolarV1(4, 2, lambda_fix=8.0, lambda_sac=32.0, alpha_fast=0.75,
                             alpha_slow=0.9)
    c = model.constants()
    assert c == pytest.approx({"lambda_fix": 8.0, "lambda_sac": 32.0, "alpha_fast": 0.75,
                               "alpha_slow": 0.9, "tau_fix_ms": 125.0, "tau_sac_ms": 31.25,
                               "tau_fast_frames": 4.0, "tau_slow_frames": 10.0}, rel=1e-5)
    assert len(model.temporal_parameters()) == 4
    assert all(model.sanity_checks().values())


def test_which_constants_learn_follows_the_configuration():
    # Option 1 (polar_v1.yaml) fixes the alphas; the relaxed start learns all four.
    option_1 = polar_v1.PolarV1.from_config("polar_v1", 6, 2)
    assert option_1.learnable_constants() == ["lambda_fix", "lambda_sac"]
    assert len(option_1.temporal_parameters()) == 2
    relaxed = polar_v1.PolarV1.from_config("polar_v1_relaxed", 6, 2)
    assert relaxed.learnable_constants() == ["lambda_fix", "lambda_sac", "alpha_fast",
                                             "alpha_slow"]
    frozen = polar_v1.PolarV1(6, 2, learnable_alphas=False, learnable_lambdas=False)
    assert frozen.learnable_constants() == [] and frozen.temporal_parameters() == []


def test_with_constants_replaces_only_the_named_ones():
    model = polar_v1.PolarV1(4, 2, seed=1)
    moved = model.with_constants(lambda_sac=25.0, alpha_fast=0.5)
    c = moved.constants()
    assert c["lambda_sac"] == pytest.approx(25.0) and c["alpha_fast"] == pytest.approx(0.5)
    assert c["lambda_fix"] == pytest.approx(10.0) and c["alpha_slow"] == pytest.approx(0.95)
    assert torch.equal(moved.readout.weight, model.readout.weight)
    assert model.constants()["lambda_sac"] == pytest.approx(40.0)  # the original is untouched
    with pytest.raises(ValueError, match="temporal constants"):
        model.with_constants(tau=1.0)
    with pytest.raises(ValueError, match="lambda_fix"):
        model.with_constants(lambda_fix=-1.0)


def test_rates_are_the_scaled_softplus_of_the_readout_inputs():
    model = polar_v1.PolarV1(3, 2, seed=2)
    amplitude = torch.rand(2, 7, 3, generator=torch.Generator().manual_seed(0)) + 0.5
    gate = torch.zeros(2, 7)
    gate[:, 3] = 1.0
    inputs = model.readout_inputs(amplitude, gate)
    assert inputs.shape == (2, 7, 9)
    # Frame 0 starts at rest: the relaxed amplitude and both bias-corrected averages equal
    # the drive.
    for block in range(3):
        assert torch.allclose(inputs[:, 0, 3 * block:3 * block + 3], amplitude[:, 0], atol=1e-6)
    w, b = model.readout.weight, model.readout.bias
    expected = polar_v1.RATE_SCALE * torch.log1p(torch.exp(inputs @ w.T + b))
    assert torch.allclose(model(amplitude, gate), expected, atol=1e-5)
