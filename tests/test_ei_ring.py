import math

import pytest
import torch

from hdlib.circular import angle_grid, circular_mae, fourier_basis, von_mises_bump
from hdlib.datasets.tasks import HeadDirectionTrackingTask
from hdlib.models.ei_ring import (
    BACKENDS,
    NOISE_FORMS,
    RingAttractorNetwork,
    _EIRingRecurrence,
    batch_gap,
    bump_regimes,
    chunked_run_gap,
    count_bumps,
    darkness_test,
    drift_deg_per_s,
    excitation_mode_error,
    parameter_gradients,
    tracking_errors,
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
    singles = torch.stack([small(x[b], (h0[0][b], h0[1][b]), noise=False)[0] for b in range(3)])
    torch.testing.assert_close(fast, singles, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("noise_form", NOISE_FORMS)
@pytest.mark.parametrize("noise", [False, True])
def test_the_torch_backend_matches_the_reference_step(noise_form, noise):
    # the reference backend runs ei_ring_step with the dense W_EE under autograd; the torch
    # backend runs the Fourier modes with a written-out backward pass. Both draw the same noise.
    F64 = torch.float64
    results = {}
    for backend in BACKENDS:
        model = RingAttractorNetwork(48, 12, seed=2, noise_form=noise_form, backend=backend,
                                     noise_rate_e=2000.0, noise_rate_i=3000.0).to(F64)
        g = torch.Generator().manual_seed(0)
        heading = torch.rand(3, 25, generator=g, dtype=F64) * 2 * math.pi
        r_e, r_i = model.initial_state(heading[:, 0])
        h0 = (r_e.requires_grad_(), (r_i + 0.1).requires_grad_())
        rates, (_, r_i_end) = model(model.cue(heading), h0, noise=noise,
                                    generator=torch.Generator().manual_seed(3))
        weights = torch.randn(rates.shape, generator=g, dtype=F64)
        loss = (rates * weights).sum() + (rates ** 2).sum() + (r_i_end ** 2).sum()
        names = [name for name, _ in model.named_parameters()]
        grads = torch.autograd.grad(loss, [*model.parameters(), *h0], allow_unused=True)
        results[backend] = [rates, r_i_end, *grads]
    # float64; the modes are built in float32, so the two products agree to about 1e-7
    for name, got, expected in zip(["rates", "r_I", *names, "r_E0", "r_I0"], results["torch"],
                                   results["reference"]):
        assert (got is None) == (expected is None), name
        if expected is not None:
            gap = ((got - expected).abs().max() / expected.abs().max()).item()
            assert gap < 2e-5, name


@pytest.mark.parametrize("noise_form", [None, "gaussian", "poisson"])
def test_the_written_out_backward_passes_gradcheck(noise_form):
    # (the straight-through estimator is not the derivative of its forward value by design:
    # the comparison with the reference above checks it)
    F64 = torch.float64
    g = torch.Generator().manual_seed(0)
    inputs = (torch.rand(2, 6, dtype=F64, generator=g), torch.rand(2, 3, dtype=F64, generator=g),
              torch.randn(2, 4, 6, dtype=F64, generator=g),
              0.5 * torch.randn(6, 5, dtype=F64, generator=g),
              0.5 * torch.randn(5, 6, dtype=F64, generator=g),
              torch.tensor(0.3, dtype=F64), torch.tensor(0.2, dtype=F64))
    inputs = [x.requires_grad_() for x in inputs]

    def run(*values):  # the same noise on every call
        return _EIRingRecurrence.apply(*values, 2, 0.3, 0.5, 1.0, noise_form,
                                       torch.Generator().manual_seed(7))

    assert torch.autograd.gradcheck(run, inputs)


def test_every_parameter_gets_a_gradient_including_noise_rates(small):
    x = _inputs(small)
    rates, _ = small(x, small.initial_state(torch.zeros(3)))
    (rates ** 2).mean().backward()
    for name, p in small.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    small.zero_grad()


def _one_step_by_hand(model, r0, u, noise_e):
    """One Euler step of the excitatory population from ``(r0, silent I)`` with input ``u`` and
    excitatory noise ``noise_e``, through the dense ``W_EE`` (not the model's Fourier path).
    Returns the new rates and ``F'`` at the drive."""
    with torch.no_grad():
        drive = model.g_ee * r0 @ model.w_ee().T + model.input_gain * u + noise_e
        fired = torch.tanh(torch.relu(drive))
        slope = (1 - fired ** 2) * (drive > 0)
        a = model.dt / model.tau_e
    return r0 + a * (fired - r0), slope, a


@pytest.mark.parametrize("case", [0, 1, 2])
def test_straight_through_poisson_value_and_gradient_by_hand(case):
    # forward: the count N ~ Poisson(lambda), lambda = nu * r * dt / 1000, drawn first for E;
    # backward: dN/dnu = r * dt / 1000, so d sum(r_E1) / d nu_E = sum a F'(x) r0 dt / 1000.
    model = RingAttractorNetwork(n_exc=32, n_inh=8, seed=case, noise_rate_e=400.0,
                                 noise_form="poisson_straight_through")
    g = torch.Generator().manual_seed(10 + case)
    r0 = torch.rand(2, 32, generator=g)
    u = torch.rand(2, 1, 32, generator=g)
    rates, _ = model(u, (r0, torch.zeros(2, 8)), noise=True,
                     generator=torch.Generator().manual_seed(case))
    lam = 400.0 * r0 * model.dt / 1000.0
    counts = torch.poisson(lam, generator=torch.Generator().manual_seed(case))
    assert counts.sum() > 0  # the case exercises the noise
    expected, slope, a = _one_step_by_hand(model, r0, u[:, 0], counts)
    torch.testing.assert_close(rates[:, 0], expected, atol=1e-5, rtol=1e-5)
    rates[:, 0].sum().backward()
    by_hand = (a * slope * r0 * model.dt / 1000.0).sum().item()
    assert model.noise_rate_e.grad.item() == pytest.approx(by_hand, rel=1e-4)


def test_raw_poisson_gives_the_noise_rate_no_gradient_but_the_same_forward_value():
    kwargs = {"n_exc": 32, "n_inh": 8, "seed": 3, "noise_rate_e": 400.0}
    raw = RingAttractorNetwork(noise_form="poisson", **kwargs)
    straight = RingAttractorNetwork(noise_form="poisson_straight_through", **kwargs)
    x = torch.rand(2, 5, 32, generator=torch.Generator().manual_seed(0))
    out = [m(x, noise=True, generator=torch.Generator().manual_seed(1))[0] for m in (raw, straight)]
    torch.testing.assert_close(out[0], out[1])
    out[0].sum().backward()
    assert raw.noise_rate_e.grad is None  # the sample is cut from the graph


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


def test_noise_rates_receive_a_gradient_under_the_differentiable_forms_only():
    gaussian = _noise_rate_gradients()
    straight = _noise_rate_gradients(noise_form="poisson_straight_through")
    raw = _noise_rate_gradients(noise_form="poisson")
    for grads in (gaussian, straight):
        assert grads["noise_rate_e"] > 1e-4 * grads["g_ee"]
    assert raw["noise_rate_e"] == 0.0 and raw["noise_rate_i"] == 0.0
    assert raw["g_ee"] > 0  # the rest of the network still learns


def test_direct_connections_add_every_scalar_times_the_gain_and_leave_the_heading():
    kwargs = {"n_exc": 64, "n_inh": 16, "seed": 1, "noise_form": "poisson"}
    plain = RingAttractorNetwork(**kwargs)
    wired = RingAttractorNetwork(direct_connections=True, direct_gain=0.01, **kwargs)
    x = _inputs(plain)
    a, _ = plain(x, noise=False)
    b, _ = wired(x, noise=False)
    # scalars at their defaults: sigma 0.5, g_ee 1.5, g_ei 1, g_ie 2, input 1, noise 1 + 1 = 8
    torch.testing.assert_close(b - a, torch.full_like(a, 0.01 * 8.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(wired.decode(b), plain.decode(a), atol=1e-4, rtol=0)
    headings = torch.zeros(3, 40)
    task = HeadDirectionTrackingTask(64, seq_len=40)
    task.run(wired, x, headings, generator=torch.Generator().manual_seed(0))[0].backward()
    # a uniform offset has no first Fourier mode: the heading loss cannot feel it
    assert abs(wired.noise_rate_e.grad.item()) < 1e-6 * abs(wired.g_ee.grad.item())


def test_noise_is_off_in_eval_unless_asked_for(small):
    x = _inputs(small)
    h0 = small.initial_state(torch.tensor([0.0, 1.0, 2.0]))
    small.eval()
    try:
        a, _ = small(x, h0, generator=torch.Generator().manual_seed(1))
        b, _ = small(x, h0, generator=torch.Generator().manual_seed(2))
        forced, _ = small(x, h0, noise=True, generator=torch.Generator().manual_seed(1))
    finally:
        small.train()
    quiet, _ = small(x, h0, noise=False)
    noisy, _ = small(x, h0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, quiet)
    assert torch.equal(forced, noisy) and not torch.equal(noisy, quiet)


@pytest.mark.parametrize("case", [0, 1, 2])
def test_batch_gap_is_zero_up_to_rounding_and_sees_a_mixed_batch(case):
    model = RingAttractorNetwork(n_exc=48, n_inh=12, seed=case)
    x = torch.rand(4, 20, 48, generator=torch.Generator().manual_seed(case))
    h0 = model.initial_state(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert batch_gap(model, x, h0) < 1e-5
    # the check compares sample b with sample b: swapping the states of two samples shows
    swapped = (h0[0][[1, 0, 2, 3]], h0[1])
    assert batch_gap(model, x, swapped) < 1e-5
    rates, _ = model(x, h0, noise=False)
    rates_swapped, _ = model(x, swapped, noise=False)
    assert (rates - rates_swapped).abs().max() > 1e-3


def test_tracking_errors_of_the_cue_and_a_network():
    model = RingAttractorNetwork(n_exc=64, n_inh=16, seed=0)
    clean = HeadDirectionTrackingTask(64, seq_len=50, speed_deg_s=30.0, initial="silent")
    result = tracking_errors(model, clean, steps=100, batch_size=4, settle_steps=10, seed=0)
    assert result["cue"] < 1e-3  # a clean, always-visible cue decodes exactly
    assert math.isnan(result["network_dark"]) and result["network"] == result["network_lit"]
    noisy = HeadDirectionTrackingTask(64, seq_len=50, speed_deg_s=30.0, cue_noise=1.0,
                                      mean_dark_ms=50.0, initial="silent")
    result = tracking_errors(model, noisy, steps=200, batch_size=4, settle_steps=10, seed=0)
    assert result["cue"] > 1.0


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


@pytest.mark.slow
def test_first_epochs_of_a_stored_chapter_run_repeat():
    """Re-run the first two epochs of the stored chapter-01 run (seed 0, the document's
    variant) and compare its validation losses with the stored curve."""
    import json
    from pathlib import Path

    from hdlib.fitters import training

    stored = json.loads((Path(__file__).resolve().parents[1]
                         / "results/01_ei_ring_tracking/book_seed0.json").read_text())
    p = stored["parameters"]
    task = HeadDirectionTrackingTask(
        p["n_exc"], seq_len=p["seq_len"], speed_deg_s=p["speed_deg_s"],
        tau_turn_ms=p["tau_turn_ms"], cue_strength=p["cue_strength"], cue_noise=p["cue_noise"],
        mean_lit_ms=p["mean_lit_ms"], mean_dark_ms=p["mean_dark_ms"], initial="silent")
    model = RingAttractorNetwork(p["n_exc"], p["n_inh"], sigma_ee=p["sigma_ee"], seed=p["seed"],
                                 noise_form="poisson_straight_through")
    config = training.create_training_config(
        learning_rate=p["learning_rate"], max_epochs=p["max_epochs"],
        batches_per_epoch=p["batches_per_epoch"], batch_size=p["batch_size"], weight_decay=0.0,
        segments_per_sequence=p["segments"], seed=p["seed"], early_stopping=False,
        progress=False, regularisation=p["regularisation"], state_passing=True)
    trainer = training.AdamCosineTrainer(model, config, task)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sweep ran
    try:
        history = trainer.train(epochs=2)
    finally:
        torch.set_num_threads(threads)
    expected = stored["metrics"]["val_loss_document"][:2]
    assert history["val_loss"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("batch, steps", [(0, 5), (2, 1)])
def test_both_backends_agree_on_edge_shapes(batch, steps):
    F64 = torch.float64
    outputs = {}
    for backend in BACKENDS:
        model = RingAttractorNetwork(32, 8, seed=1, backend=backend).to(F64)
        heading = torch.rand(batch, steps, dtype=F64, generator=torch.Generator().manual_seed(0))
        rates, _ = model(model.cue(heading), model.initial_state(heading[:, 0]), noise=True,
                         generator=torch.Generator().manual_seed(1))
        outputs[backend] = rates
    assert outputs["torch"].shape == outputs["reference"].shape == (batch, steps, 32)
    assert torch.allclose(outputs["torch"], outputs["reference"], rtol=1e-5, atol=1e-9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_torch_backend_on_the_gpu_matches_the_cpu(small):
    x = _inputs(small)
    h0 = small.initial_state(torch.tensor([0.0, 1.0, 2.0]))
    expected, _ = small(x, h0, noise=False)
    model = RingAttractorNetwork(n_exc=64, n_inh=16, seed=1, device="cuda")
    got, _ = model(x.cuda(), (h0[0].cuda(), h0[1].cuda()), noise=False)
    assert torch.allclose(got.cpu(), expected, rtol=1e-4, atol=1e-6)
