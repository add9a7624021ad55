"""Polar V1 temporal stages, configurations, stimuli and the fitting task."""



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

