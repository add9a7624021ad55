"""Polar V1 temporal stages, configurations, stimuli and the fitting task."""


import pytest
import torch

from hdlib.datasets import stimuli
from hdlib.fitters import training
from hdlib.models import polar_v1


def test_temporal_constants_get_their_own_learning_rate():
    model = polar_v1.PolarV1(4, 2)
    assert training.parameter_group("dynamics.log_lambda_fix") == "temporal"
    assert training.parameter_group("summarizer.alpha_slow_logit") == "temporal"
    assert training.parameter_group("readout.weight") == "other"
    trainer = training.AdamCosineTrainer(model, {"learning_rate": 1e-2}, task=object())
    rates = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert rates["temporal"] == pytest.approx(1e-3) and rates["other"] == pytest.approx(1e-2)
    assert "tau_fix_ms" in trainer.param_history



def test_teacher_data_and_fit_task():
    video = stimuli.free_viewing_video(6, 120, window=36, seed=0)
    features = polar_v1.encode_video(video)
    teacher = polar_v1.make_teacher(features.amplitude.shape[-1], 5)
    data = polar_v1.simulate(teacher, features, seed=1)
    assert data.counts.shape == (6, 120, 5) and (data.rates > 0).all()
    task = polar_v1.PolarFitTask(data.trials(slice(0, 4)), data.trials(slice(4, 6)))
    (amplitude, gate), counts = task.batch("train", 3, torch.Generator().manual_seed(0))
    assert amplitude.shape == (3, 120, features.amplitude.shape[-1]) and counts.shape[0] == 3
    scores = polar_v1.evaluate(teacher, data)
    assert scores["rate_correlation"] == pytest.approx(1.0, abs=1e-5)
    assert scores["bits_per_spike"] == pytest.approx(scores["ceiling_bits_per_spike"])

