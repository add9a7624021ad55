import pytest
import torch

from hdlib import losses
from hdlib.circular import circular_mae, population_vector
from hdlib.datasets.tasks import AVIntegrationDataset
from hdlib.fitters import av_integration as avi
from hdlib.models.leaky_ring import CHUNK_STEPS, LeakyRingAttractor


def document_forward(model, av, heading):
    """The model run on its reference backend: hdlib.models.leaky_ring.leaky_ring_step, the
    document's per-sample effective matrix, differentiated by autograd."""
    before, model.backend = model.backend, "reference"
    try:
        return model(av, heading)
    finally:
        model.backend = before


@pytest.fixture(scope="module")
def batch():
    data = AVIntegrationDataset(16, seq_len=60, seed=4)
    av, angles = data.generate_batch(16)
    return av, angles, data.initial_heading(av, angles)



@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
@pytest.mark.parametrize("init", ["random", "perfect"])
def test_batched_step_matches_per_sample_effective_matrix(batch, activation, init):
    av, _, heading = batch
    model = LeakyRingAttractor(48, activation=activation, init=init, init_scale=1.0, seed=1)
    fast = model(av, heading)
    slow = document_forward(model, av, heading)
    assert fast.shape == (16, 60, 48)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)



@pytest.mark.parametrize("activation, seed", [("tanh", 0), ("relu", 1), ("gelu", 2)])
def test_written_out_backward_matches_autograd_through_the_document_form(activation, seed):
    # The recurrence is one autograd node with a hand-written backward pass; the document's
    # per-step effective-matrix form, differentiated by autograd, is the independent check.
    g = torch.Generator().manual_seed(seed)
    model = LeakyRingAttractor(24, activation=activation, init_scale=1.0, seed=seed).double()
    av = 0.3 * torch.randn(5, 30, dtype=torch.float64, generator=g)
    heading = 6.0 * torch.rand(5, dtype=torch.float64, generator=g)
    weights = torch.randn(5, 30, 24, dtype=torch.float64, generator=g)
    params = list(model.parameters())
    fast = model(av, heading)
    slow = document_forward(model, av, heading)
    assert ((fast - slow).abs().max() / slow.abs().max()).item() < 1e-10
    got = torch.autograd.grad((fast * weights).sum(), params)
    expected = torch.autograd.grad((slow * weights).sum(), params)
    for (name, _), a, b in zip(model.named_parameters(), got, expected):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-10, name


def test_written_out_backward_passes_gradcheck():
    g = torch.Generator().manual_seed(3)
    model = LeakyRingAttractor(6, activation="tanh", init_scale=1.0).double()
    initial = torch.rand(2, 6, dtype=torch.float64, generator=g, requires_grad=True)
    av = (0.3 * torch.randn(2, 4, dtype=torch.float64, generator=g)).requires_grad_()
    heading = torch.zeros(2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda r0, av: model(av, heading, r0), (initial, av))


def test_gradients_reach_every_parameter(batch):
    av, angles, heading = batch
    model = LeakyRingAttractor(32, init_scale=0.5)
    loss = losses.heading_loss(model(av, heading), angles)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name



def test_debug_perfect_is_frozen_and_perfect_learns():
    frozen = LeakyRingAttractor(32, init="debug_perfect")
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in LeakyRingAttractor(32, init="perfect").parameters())



def test_ideal_ring_integrates_exactly_without_leak():
    """With alpha = 1 the ideal ring turns the bump by exactly atan((L-R)/J1) per step."""
    model = LeakyRingAttractor(120, alpha=1.0, init="debug_perfect")
    data = AVIntegrationDataset(64, seq_len=300, seed=2)
    av, angles = data.generate_batch(64)
    with torch.no_grad():
        decoded = population_vector(model(av, data.initial_heading(av, angles)))
    assert circular_mae(decoded, angles) < 0.5



def test_ideal_ring_holds_its_bump_with_zero_input():
    model = LeakyRingAttractor(120, init="debug_perfect")
    drift = avi.zero_input_drift(model, steps=500)
    assert drift["max_deg_per_step"] < 1e-4
    assert drift["final_amplitude"] > 0.5



def test_gain_networks_are_silent_when_still():
    model = LeakyRingAttractor(32, seed=3)
    coeff = model.turn_signals(torch.zeros(2, 5))
    assert torch.equal(coeff[..., 1:], torch.zeros(2, 5, 2))



def test_seeded_initialisation_is_deterministic():
    a = LeakyRingAttractor(32, init_scale=1.0, seed=5).state_dict()
    b = LeakyRingAttractor(32, init_scale=1.0, seed=5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)



def test_alpha_defaults_to_dt_over_tau():
    assert LeakyRingAttractor(8, tau=20.0, dt=5.0).alpha == pytest.approx(0.25)



@pytest.mark.parametrize("kwargs, name", [
    ({"num_neurons": 0}, "num_neurons"),
    ({"num_neurons": -3}, "num_neurons"),
    ({"activation": "sigmoid"}, "activation"),
    ({"init": "zeros"}, "init"),
    ({"tau": 0.0}, "tau"),
    ({"dt": -1.0}, "dt"),
    ({"alpha": 1.5}, "alpha"),
    ({"hidden_gain_neurons": 2.5}, "hidden_gain_neurons"),
    ({"init_scale": -0.1}, "init_scale"),
])
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LeakyRingAttractor(**kwargs)



def test_bad_forward_inputs_name_the_argument():
    model = LeakyRingAttractor(16)
    with pytest.raises(ValueError, match="av"):
        model(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="av"):
        model(torch.zeros(4, 10, dtype=torch.long), torch.zeros(4))
    with pytest.raises(ValueError, match="initial_heading"):
        model(torch.zeros(4, 10), torch.zeros(3))
    with pytest.raises(ValueError, match="initial_state"):
        model(torch.zeros(4, 10), torch.zeros(4), initial_state=torch.zeros(4, 15))



def test_states_without_a_backward_pass_are_the_same(batch):
    # Under no_grad (or with every parameter frozen) the recurrence keeps one step's drives
    # instead of every step's; the states it returns must not change.
    av, _, heading = batch
    model = LeakyRingAttractor(40, init_scale=1.0, seed=5)
    trained = model(av, heading)
    with torch.no_grad():
        evaluated = model(av, heading)
    assert torch.equal(trained.detach(), evaluated)


@pytest.mark.parametrize("batch, steps", [(0, 5), (3, 1), (2, 7), (2, CHUNK_STEPS),
                                          (3, 2 * CHUNK_STEPS + 3)])
def test_both_backends_agree_on_edge_shapes(batch, steps):
    # an empty batch, a single step, one whole block of the backward pass and a sequence
    # ending in a partial block, in float64, values and gradients
    g = torch.Generator().manual_seed(batch + steps)
    model = LeakyRingAttractor(10, init_scale=1.0, seed=2).double()
    av = 0.3 * torch.randn(batch, steps, dtype=torch.float64, generator=g)
    heading = torch.rand(batch, dtype=torch.float64, generator=g)
    fast = model(av, heading)
    slow = document_forward(model, av, heading)
    assert fast.shape == slow.shape == (batch, steps, 10)
    got = torch.autograd.grad(fast.square().sum(), list(model.parameters()), allow_unused=True)
    expected = torch.autograd.grad(slow.square().sum(), list(model.parameters()),
                                   allow_unused=True)
    for a, b in zip(got, expected):
        a = torch.zeros_like(b) if a is None and b is not None else a
        assert b is None or torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_torch_backend_on_the_gpu_matches_the_reference(batch):
    av, _, heading = batch
    model = LeakyRingAttractor(48, init="perfect").double()
    expected = document_forward(model, av.double(), heading.double())
    got = model.cuda()(av.double().cuda(), heading.double().cuda())
    assert torch.allclose(got.cpu(), expected, rtol=1e-9, atol=1e-12)
