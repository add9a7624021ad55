import math

import pytest
import torch

from benchmarks.ei_ring_speed import per_sample_dense_forward, per_sample_forward
from hdlib.circular import angle_grid, circular_mae, fourier_basis, von_mises_bump
from hdlib.datasets.tasks import HeadDirectionTrackingTask
from hdlib.models.ei_ring import (
    RingAttractorNetwork,
    bump_regimes,
    chunked_run_gap,
    count_bumps,
    darkness_test,
    drift_deg_per_s,
    excitation_mode_error,
    parameter_gradients,
)


@pytest.fixture(scope="module")
def small():
    return RingAttractorNetwork(n_exc=64, n_inh=16, seed=1)


def _inputs(model, batch=3, steps=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    heading = torch.rand(batch, steps, generator=g) * 2 * math.pi
    return model.cue(heading)


def test_shapes_batched_and_unbatched(small):
    x = _inputs(small)
    rates, (r_e, r_i) = small(x)
    assert rates.shape == (3, 40, 64) and r_e.shape == (3, 64) and r_i.shape == (3, 16)
    rates1, (r_e1, r_i1) = small(x[0])
    assert rates1.shape == (40, 64) and r_e1.shape == (64,) and r_i1.shape == (16,)


def test_chunked_run_equals_whole_run(small):
    x = _inputs(small)
    h0 = small.initial_state(torch.tensor([0.0, 1.0, 2.0]))
    whole, state = small(x, h0, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    first, mid = small(x[:, :17], h0, generator=g)
    second, end = small(x[:, 17:], mid, generator=g)
    assert torch.equal(torch.cat([first, second], dim=1), whole)
    assert torch.equal(end[0], state[0]) and torch.equal(end[1], state[1])


def test_vectorised_matches_per_sample_loop(small):
    x = _inputs(small)
    h0 = small.initial_state(torch.tensor([0.0, 1.0, 2.0]))
    fast, _ = small(x, h0, noise=False)
    torch.testing.assert_close(fast, per_sample_forward(small, x, h0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, per_sample_dense_forward(small, x, h0), atol=1e-5, rtol=1e-5)


def test_every_parameter_gets_a_gradient_including_noise_rates(small):
    x = _inputs(small)
    rates, _ = small(x, small.initial_state(torch.zeros(3)))
    (rates ** 2).mean().backward()
    for name, p in small.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    small.zero_grad()


def test_poisson_sampling_passes_no_gradient():
    rate = torch.tensor([3.0], requires_grad=True)
    torch.poisson(rate).sum().backward()
    assert rate.grad.item() == 0.0


@pytest.mark.parametrize("n_exc, sigma", [(64, 0.5), (800, 0.5), (800, 0.05), (801, 1.5),
                                          (40, 0.02)])
def test_fourier_mode_excitation_equals_dense_circulant_product(n_exc, sigma):
    model = RingAttractorNetwork(n_exc=n_exc, n_inh=8, sigma_ee=sigma)
    r = torch.rand(5, n_exc)
    dense = model.g_ee * r @ model.w_ee().T
    torch.testing.assert_close(model.recurrent_excitation(r), dense, atol=2e-6, rtol=1e-5)
    modes, gains = model.excitation_modes()
    assert modes.shape == (n_exc, gains.numel())
    if (n_exc, sigma) == (800, 0.5):  # the default kernel needs few modes
        assert gains.numel() <= 31


def test_fourier_basis_is_orthonormal():
    for n in (7, 8):
        basis = fourier_basis(n, dtype=torch.float64)
        torch.testing.assert_close(basis.T @ basis, torch.eye(n, dtype=torch.float64))


def test_bump_persists_without_input():
    model = RingAttractorNetwork(n_exc=200, n_inh=50, seed=0)
    heading = angle_grid(4)
    rates, _ = model(torch.zeros(4, 300, 200), model.initial_state(heading), noise=False)
    assert count_bumps(rates[:, -1]).tolist() == [1, 1, 1, 1]
    assert circular_mae(model.decode(rates[:, -1]), heading) < 10.0


def test_count_bumps():
    one = von_mises_bump(torch.tensor([1.0]), 120, concentration=20.0)
    two = one + von_mises_bump(torch.tensor([1.0 + math.pi]), 120, concentration=20.0)
    assert count_bumps(one).item() == 1 and count_bumps(two).item() == 2
    assert count_bumps(torch.zeros(1, 120)).item() == 0
    assert count_bumps(torch.ones(1, 120)).item() == 0


def test_drift_in_degrees_per_second():
    decoded = torch.linspace(0, math.radians(10), 101)  # 10 degrees over 100 steps of 1 ms
    assert drift_deg_per_s(decoded, dt_ms=1.0).item() == pytest.approx(100.0, rel=1e-4)


@pytest.mark.parametrize("kwargs, name", [
    ({"n_exc": 0}, "n_exc"), ({"n_inh": -2}, "n_inh"), ({"sigma_ee": 0.0}, "sigma_ee"),
    ({"tau_e": -1.0}, "tau_e"), ({"dt": 20.0}, "dt"), ({"g_ee": -1.0}, "g_ee"),
    ({"noise_rate_e": 0.0}, "noise_rate_e"), ({"noise_form": "uniform"}, "noise_form"),
    ({"direct_connections": 1}, "direct_connections"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RingAttractorNetwork(**{"n_exc": 16, "n_inh": 4, **kwargs})


def test_bad_inputs_and_state(small):
    with pytest.raises(ValueError, match="inputs"):
        small(torch.zeros(3, 10, 63))
    with pytest.raises(ValueError, match="inputs"):
        small(torch.zeros(10))
    with pytest.raises(ValueError, match="h0"):
        small(torch.zeros(3, 10, 64), h0=torch.zeros(3, 64))
    with pytest.raises(ValueError, match="r_I"):
        small(torch.zeros(3, 10, 64), h0=(torch.zeros(3, 64), torch.zeros(3, 15)))


def _noise_rate_gradients(**kwargs):
    model = RingAttractorNetwork(n_exc=64, n_inh=16, seed=1, **kwargs)
    task = HeadDirectionTrackingTask.for_model(model, seq_len=30)
    return parameter_gradients(model, task, batch_size=4, seed=0)


def test_only_the_reparameterised_noise_gives_noise_rates_a_gradient():
    gaussian = _noise_rate_gradients()
    poisson = _noise_rate_gradients(noise_form="poisson")
    direct = _noise_rate_gradients(noise_form="poisson", direct_connections=True)
    assert gaussian["noise_rate_e"] > 0 and gaussian["noise_rate_i"] > 0
    for grads in (poisson, direct):
        assert grads["noise_rate_e"] == 0.0 and grads["noise_rate_i"] == 0.0
        assert grads["g_ee"] > 0  # the rest of the network still learns


def test_direct_connections_join_the_graph_without_changing_anything(small):
    wired = RingAttractorNetwork(n_exc=64, n_inh=16, seed=1, direct_connections=True)
    x = _inputs(small)
    plain, _ = small(x, noise=False)
    joined, _ = wired(x, noise=False)
    assert torch.equal(plain, joined)
    joined.sum().backward()
    assert wired.noise_rate_e.grad is not None and wired.noise_rate_e.grad.item() == 0.0


def test_poisson_noise_is_a_seeded_nonnegative_count():
    model = RingAttractorNetwork(n_exc=64, n_inh=16, seed=1, noise_form="poisson",
                                 noise_rate_e=20.0)
    x = _inputs(model)
    h0 = model.initial_state(torch.zeros(3))
    a, _ = model(x, h0, generator=torch.Generator().manual_seed(4))
    b, _ = model(x, h0, generator=torch.Generator().manual_seed(4))
    quiet, _ = model(x, h0, noise=False)
    assert torch.equal(a, b) and not torch.equal(a, quiet)
    # a count is >= 0, so Poisson noise can only raise the drive: rates at or above noise-free
    # ones on the first step (later steps mix in inhibition)
    assert torch.all(a[:, 0] >= quiet[:, 0] - 1e-7)


def test_mode_error_and_chunked_gap(small):
    assert excitation_mode_error(small) < 1e-5
    x = _inputs(small)
    h0 = small.initial_state(torch.tensor([0.0, 1.0, 2.0]))
    assert chunked_run_gap(small, x, h0, split=13, seed=2) == 0.0


def test_darkness_test_of_an_untrained_ring_holds_one_bump():
    model = RingAttractorNetwork(n_exc=200, n_inh=50, seed=0)
    result = darkness_test(model, cue_steps=50, dark_steps=200, batch_size=4)
    assert result["held"] and result["bumps"] == 1.0
    assert result["decoded"].shape == (4, 250)
    silent = darkness_test(model, cue_steps=50, dark_steps=200, batch_size=4, min_amplitude=2.0)
    assert not silent["held"]  # more amplitude than it had cannot be kept


def test_bump_regimes():
    counts = torch.tensor([[0.0, 1.0], [2.0, 1.2], [0.5, 1.6]])
    assert bump_regimes(counts) == {"none": 2, "one": 2, "several": 2}
