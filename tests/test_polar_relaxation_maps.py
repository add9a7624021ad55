"""PolarDynamics on feature maps (B, C, T, H, W): the frame-by-frame relaxation and its adjoint.

The reference is the document's frame loop written out here,
``A = a[:, :, t] + (A - a[:, :, t]) * exp(-lambda[:, t] dt)``, with the rate of each trial and
frame ``lambda = (1 - q) lambda_fix + q lambda_sac`` broadcast over channels and positions.
"""
import math

import pytest
import torch

from hdlib.models import polar
from hdlib.models.polar import PolarDynamics

F64 = torch.float64


@pytest.fixture(params=["compiled", "torch frame loop"], autouse=True)
def form(request, monkeypatch):
    """Every test runs through both forms: the compiled kernels (the CPU's) and the torch
    frame-by-frame pass (every other device's)."""
    monkeypatch.setattr(polar, "COMPILED", request.param == "compiled")
    return request.param


def frame_loop(dynamics, amplitude, gate, initial=None):
    rate = (1 - gate) * dynamics.lambda_fix + gate * dynamics.lambda_sac
    decay = torch.exp(-rate * dynamics.dt)
    state = amplitude[:, :, 0] if initial is None else initial
    frames = []
    for t in range(amplitude.shape[2]):
        frame = amplitude[:, :, t]
        state = frame + (state - frame) * decay[:, t, None, None, None]
        frames.append(state)
    return torch.stack(frames, dim=2)


def case(shape, seed):
    g = torch.Generator().manual_seed(seed)
    B, C, T, H, W = shape
    amplitude = torch.rand(shape, generator=g, dtype=F64)
    gate = (torch.rand(B, T, generator=g, dtype=F64) < 0.3).to(F64)
    initial = torch.rand(B, C, H, W, generator=g, dtype=F64)
    return amplitude, gate, initial


def relative_gap(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


# several features per frame; one frame; one feature per frame with 5, 4 and 1 rows per trial
# (the compiled kernels take four rows at a time, and a trial's last group may be partial);
# two features per frame
SHAPES = [(2, 3, 30, 4, 5), (1, 2, 1, 3, 3), (3, 5, 12, 1, 1), (2, 4, 7, 1, 1),
          (4, 1, 6, 1, 1), (2, 1, 9, 2, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_initial", [False, True])
def test_relaxation_matches_the_document_loop(shape, with_initial):
    dynamics = PolarDynamics(lambda_fix=7.0, lambda_sac=55.0).to(F64)
    amplitude, gate, initial = case(shape, seed=len(shape) + shape[2])
    initial = initial if with_initial else None
    assert relative_gap(dynamics(amplitude, gate, initial),
                        frame_loop(dynamics, amplitude, gate, initial)) < 1e-10


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_match_the_document_loop(shape):
    dynamics = PolarDynamics(lambda_fix=12.0, lambda_sac=30.0).to(F64)
    amplitude, gate, initial = case(shape, seed=3)
    amplitude.requires_grad_()
    initial.requires_grad_()
    weights = torch.rand(amplitude.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    inputs = [amplitude, initial, dynamics.log_lambda_fix, dynamics.log_lambda_sac]
    ours = torch.autograd.grad((dynamics(amplitude, gate, initial) * weights).sum(), inputs)
    loop = torch.autograd.grad((frame_loop(dynamics, amplitude, gate, initial) * weights).sum(),
                               inputs)
    for a, b in zip(ours, loop):
        assert relative_gap(a, b) < 1e-10


def test_two_frames_by_hand():
    # One trial at fixation, starting at rest on frame 0's drive 2: A[0] = 2 and
    # A[1] = 5 + (2 - 5) exp(-10 / 120) (rates are stored as float32 logarithms, hence 1e-6).
    dynamics = PolarDynamics(lambda_fix=10.0, lambda_sac=40.0).to(F64)
    amplitude = torch.tensor([2.0, 5.0], dtype=F64).view(1, 1, 2, 1, 1)
    out = dynamics(amplitude, torch.zeros(1, 2, dtype=F64))
    assert out.flatten().tolist() == pytest.approx([2.0, 5.0 - 3.0 * math.exp(-10 / 120)],
                                                   rel=1e-6)


def test_feature_map_agrees_with_the_trials_by_features_layout():
    dynamics = PolarDynamics().to(F64)
    amplitude, gate, _ = case((3, 4, 9, 1, 1), seed=5)
    flat = dynamics(amplitude[..., 0, 0].transpose(1, 2), gate)  # (B, T, C)
    assert relative_gap(dynamics(amplitude, gate)[..., 0, 0], flat.transpose(1, 2)) < 1e-12


def test_fixed_input_still_trains_the_rates():
    dynamics = PolarDynamics()
    amplitude, _, _ = case((2, 2, 6, 2, 2), seed=1)
    gate = torch.tensor([[0.0, 1.0, 0.5, 0.0, 1.0, 0.2]] * 2)
    dynamics(amplitude.float(), gate).square().sum().backward()
    assert dynamics.log_lambda_fix.grad.abs() > 0 and dynamics.log_lambda_sac.grad.abs() > 0


@pytest.mark.parametrize("gate_shape, initial_shape, name", [
    ((2, 7), None, "gate"), ((2, 6, 1), None, "gate"), ((2, 6), (2, 3, 4, 4), "initial")])
def test_bad_shapes_are_named(gate_shape, initial_shape, name):
    amplitude = torch.rand(2, 3, 6, 4, 5)
    initial = None if initial_shape is None else torch.rand(initial_shape)
    with pytest.raises(ValueError, match=name):
        PolarDynamics()(amplitude, torch.zeros(gate_shape), initial)


@pytest.mark.parametrize("shape", [(2, 3, 5, 2, 2), (3, 3, 5, 1, 1)])
def test_the_compiled_relaxation_passes_gradcheck(shape):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(shape, dtype=F64, generator=g, requires_grad=True)
    decay = torch.rand(shape[0], shape[2], dtype=F64, generator=g, requires_grad=True)
    initial = torch.randn(shape[:2] + shape[3:], dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, d, i: polar._CompiledRelaxation.apply(x, d, i, 2), (x, decay, initial))


def test_compiled_relaxation_does_not_depend_on_the_number_of_threads(form):
    if form != "compiled":
        pytest.skip("the thread split is the compiled kernels'")
    dynamics = PolarDynamics()
    amplitude, gate, _ = case((4, 6, 40, 3, 3), seed=6)
    amplitude = amplitude.float().requires_grad_()
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = dynamics(amplitude, gate.float())
            grads = torch.autograd.grad(out.square().sum(),
                                        [amplitude, dynamics.log_lambda_fix])
            results.append([out, *grads])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_vectorised_jacobians_see_the_same_relaxation(form):
    # torch.func cannot look into compiled kernels: a batched backward differentiates a loop
    if form != "compiled":
        pytest.skip("the torch frame loop (other devices) writes in place: no vmap")
    dynamics = PolarDynamics(lambda_fix=9.0, lambda_sac=50.0).to(F64)
    amplitude, gate, initial = case((2, 2, 6, 2, 1), seed=11)
    got = torch.autograd.functional.jacobian(
        lambda a, i: dynamics(a, gate, i), (amplitude, initial), vectorize=True)
    expected = torch.autograd.functional.jacobian(
        lambda a, i: frame_loop(dynamics, a, gate, i), (amplitude, initial))
    for a, b in zip(got, expected):
        assert relative_gap(a, b) < 1e-10


@pytest.mark.parametrize("initial_shape", [(4,), (1, 4), (2, 1)])
def test_a_broadcast_initial_state_relaxes_like_the_full_one(initial_shape):
    # (trials, T, features): an initial state that broadcasts to (trials, features)
    g = torch.Generator().manual_seed(2)
    dynamics = PolarDynamics().to(F64)
    amplitude = torch.rand(2, 5, 4, generator=g, dtype=F64)
    gate = (torch.rand(2, 5, generator=g, dtype=F64) < 0.5).to(F64)
    initial = torch.rand(initial_shape, generator=g, dtype=F64)
    full = dynamics(amplitude, gate, initial.expand(2, 4).clone())
    assert relative_gap(dynamics(amplitude, gate, initial), full) < 1e-12


def test_the_rates_train_under_torch_func(form):
    # torch.func over the rates: a transform the compiled kernels cannot see into
    dynamics = PolarDynamics().to(F64)
    amplitude, gate, _ = case((2, 2, 6, 2, 1), seed=12)
    params = dict(dynamics.named_parameters())

    def loss(values, x):
        return torch.func.functional_call(dynamics, values, (x, gate)).square().sum()

    got = torch.func.grad(loss)(params, amplitude)
    expected = torch.autograd.grad(loss(params, amplitude), list(params.values()))
    for a, b in zip(got.values(), expected):
        assert relative_gap(a, b) < 1e-10
    flat = amplitude[..., 0, 0].transpose(1, 2).contiguous()  # (trials, T, features)
    got = torch.func.grad(loss)(params, flat)
    expected = torch.autograd.grad(loss(params, flat), list(params.values()))
    for a, b in zip(got.values(), expected):
        assert relative_gap(a, b) < 1e-10
