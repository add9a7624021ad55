"""hdlib.models.polar: the two temporal stages, their constants and the configurations (the
backends are checked against the reference forms in test_backends.py)."""

import math

import pytest
import torch

from hdlib import circular
from hdlib.models import polar, polar_v1


def loop_relaxation(amplitude, gate, lam_fix, lam_sac, dt):
    state, out = amplitude[:, 0], []
    for t in range(amplitude.shape[1]):
        lam = ((1 - gate[:, t]) * lam_fix + gate[:, t] * lam_sac)[:, None]
        state = amplitude[:, t] + (state - amplitude[:, t]) * torch.exp(-lam * dt)
        out.append(state)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 63, 64, 200])
def test_relaxation_matches_the_frame_by_frame_loop(T):
    g = torch.Generator().manual_seed(0)
    dynamics = polar.PolarDynamics(10.0, 40.0)
    amplitude, gate = torch.rand(3, T, 5, generator=g), torch.rand(3, T, generator=g)
    expected = loop_relaxation(amplitude, gate, 10.0, 40.0, 1 / 120)
    torch.testing.assert_close(dynamics(amplitude, gate), expected, atol=1e-5, rtol=1e-5)


def test_relaxation_continues_across_calls():
    g = torch.Generator().manual_seed(1)
    dynamics = polar.PolarDynamics()
    amplitude, gate = torch.rand(2, 150, 4, generator=g), torch.rand(2, 150, generator=g)
    whole = dynamics(amplitude, gate)
    first = dynamics(amplitude[:, :70], gate[:, :70])
    second = dynamics(amplitude[:, 70:], gate[:, 70:], initial=first[:, -1])
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-5, rtol=1e-5)


def test_relaxation_time_constant_is_one_over_lambda():
    dynamics = polar.PolarDynamics(lambda_fix=10.0, dt=1 / 1000)
    step = torch.ones(1, 400, 1)
    state = dynamics(step, torch.zeros(1, 400), initial=torch.zeros(1, 1))
    # After tau = 100 ms (100 frames) the state has covered 1 - 1/e of the step.
    assert state[0, 99, 0].item() == pytest.approx(1 - math.exp(-1), abs=1e-3)


def test_phase_is_carried_by_the_predicted_motion():
    # A grating drifting by 0.05 rad per frame: when the motion prediction agrees with the
    # measured phase, the carried phase is exact; without it, the relaxation lags behind.
    dynamics = polar.PolarDynamics(lambda_fix=5.0, lambda_sac=5.0)
    T = 60
    shift = torch.full((1, T, 1), 0.05)
    shift[:, 0] = 0.0  # the motion between frames t-1 and t; none before the first frame
    measured = circular.wrap(0.05 * torch.arange(T, dtype=torch.float32)).reshape(1, T, 1)
    gate = torch.zeros(1, T)
    with_motion = dynamics.phase(measured, shift, gate)
    without = dynamics.phase(measured, torch.zeros_like(shift), gate)
    assert circular.wrap(with_motion - measured).abs().max() < 1e-4
    assert circular.wrap(without - measured).abs()[0, 20:].mean() > 0.1


def test_step_response_and_kernels_have_their_closed_forms():
    dynamics = polar.PolarDynamics(10.0, 40.0)
    t = torch.arange(30, dtype=torch.float32)
    for q, lam in [(0.0, 10.0), (1.0, 40.0), (0.5, 25.0)]:
        expected = 1 - torch.exp(-lam * (t + 1) / 120)
        torch.testing.assert_close(dynamics.step_response(30, gate=q), expected)
    fast, slow = polar.TemporalSummarizer(0.74, 0.95).kernels(30)
    torch.testing.assert_close(fast, 0.26 * 0.74 ** t)
    torch.testing.assert_close(slow, 0.05 * 0.95 ** t)
    assert slow.sum() == pytest.approx(1 - 0.95 ** 30, rel=1e-5)


def test_time_constants():
    taus = polar.time_constants(10.0, 40.0, 0.75, 0.95)
    assert taus == pytest.approx({"tau_fix_ms": 100.0, "tau_sac_ms": 25.0,
                                  "tau_fast_frames": 4.0, "tau_slow_frames": 20.0})


def test_ema_matches_the_loop_and_is_unbiased_at_the_start():
    summarizer = polar.TemporalSummarizer(0.74, 0.95)
    x = torch.randn(4, 240, 6, generator=torch.Generator().manual_seed(2))
    fast, slow = summarizer(x)
    torch.testing.assert_close(fast, polar.exponential_average(x, summarizer.alpha_fast), atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(slow, polar.exponential_average(x, summarizer.alpha_slow), atol=1e-5,
                               rtol=1e-5)
    constant = torch.full((1, 10, 1), 3.0)
    torch.testing.assert_close(summarizer(constant)[1], constant)


def test_every_constant_receives_a_gradient():
    model = polar_v1.PolarV1(6, 3)
    g = torch.Generator().manual_seed(3)
    rates = model(torch.rand(2, 50, 6, generator=g) + 0.5, torch.rand(2, 50, generator=g))
    rates.sum().backward()
    for name in ("dynamics.log_lambda_fix", "dynamics.log_lambda_sac",
                 "summarizer.alpha_fast_logit", "summarizer.alpha_slow_logit"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs() > 0, name


def test_rates_stay_positive_whatever_the_raw_parameter():
    dynamics = polar.PolarDynamics(10.0, 40.0)
    with torch.no_grad():
        dynamics.log_lambda_fix.fill_(-5.0)
    assert dynamics.lambda_fix.item() > 0


def test_frozen_constants_are_buffers():
    model = polar_v1.PolarV1(4, 2, learnable_alphas=False, learnable_lambdas=False)
    names = {n for n, _ in model.named_parameters()}
    assert names == {"readout.weight", "readout.bias"}
    assert model.constants()["alpha_fast"] == pytest.approx(0.74)


@pytest.mark.parametrize("call, name", [
    (lambda: polar.PolarDynamics(dt=0.0), "dt"),
    (lambda: polar.PolarDynamics(lambda_fix=-1.0), "lambda_fix"),
    (lambda: polar.TemporalSummarizer(alpha_fast=1.0), "alpha_fast"),
    (lambda: polar.TemporalSummarizer(alpha_slow=0.0), "alpha_slow"),
    (lambda: polar.PolarDynamics()(torch.rand(2, 5, 3), torch.full((2, 5), 1.5)), "gate"),
    (lambda: polar.PolarDynamics()(torch.rand(2, 5, 3), torch.rand(2, 4)), "gate"),
    (lambda: polar_v1.PolarV1(4, 2)(torch.rand(2, 5, 3), torch.rand(2, 5)), "amplitude"),
    (lambda: polar.load_config("polar_v9"), "config"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_shipped_configurations():
    assert polar.available_configs() == ["polar_v1", "polar_v1_conservative", "polar_v1_relaxed",
                                         "polar_v1_very_relaxed"]
    assert polar.load_config("polar_v1_conservative") == {
        "lambda_fix": 10.0, "lambda_sac": 40.0, "alpha_fast": 0.74, "alpha_slow": 0.95,
        "learnable_alphas": True}
    original = polar.load_config("polar_v1")
    assert original == {"lambda_fix": 10.0, "lambda_sac": 40.0, "alpha_fast": 0.74,
                        "alpha_slow": 0.95, "learnable_alphas": False}
    assert polar.load_config("polar_v1_relaxed")["lambda_fix"] == 5.0
    model = polar_v1.PolarV1.from_config("polar_v1_very_relaxed", 4, 2)
    assert model.constants()["lambda_sac"] == pytest.approx(10.0)


@pytest.mark.parametrize("text, match", [
    ("recurrent:\n  type: polar\n  params:\n    lambda_fast: 3.0\n", "lambda_fast"),
    ("recurrent:\n  type: polar\n  params:\n    alpha_slow: 1.2\n", "alpha_slow"),
    ("recurrent:\n  type: polar\n  params:\n    learnable_alphas: 3\n", "learnable_alphas"),
    ("recurrent:\n  type: lstm\n", "type: polar"),
    ("!!python/object/apply:os.system ['true']\n", "could not"),
])
def test_bad_configuration_files(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        polar.load_config(str(path))

