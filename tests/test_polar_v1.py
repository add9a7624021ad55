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
