"""The Dale's-law RNN (hdlib.models.eirnn): sign constraints, the written update, time
constants and their options."""
import math

import pytest
import torch

from hdlib.models import eirnn


@pytest.mark.parametrize("options", [{}, {"low_rank": 5}, {"n_hidden_exc": 3, "n_hidden_inh": 2}])
def test_dale_law_and_no_self_connections(options):
    g = torch.Generator().manual_seed(0)
    model = eirnn.EIRNN(torch.rand(20, generator=g) < 0.7, 4, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))  # any parameter values
    W = model.W_rec.detach()
    assert (W[:, model.excitatory] >= 0).all() and (W[:, ~model.excitatory] <= 0).all()
    assert (W.diagonal() == 0).all()
    if "low_rank" in options:
        core = torch.nn.functional.softplus(model.U) @ torch.nn.functional.softplus(model.V).T
        torch.testing.assert_close(model.W_magnitude, core)
        assert torch.linalg.matrix_rank(model.W_magnitude) <= 5


def test_bypass_dale_allows_both_signs():
    model = eirnn.EIRNN(torch.ones(10, dtype=torch.bool), 3, bypass_dale=True)
    with torch.no_grad():
        model.W_raw.copy_(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)))
    assert (model.W_rec < 0).any()


def test_update_matches_the_written_equation():
    g = torch.Generator().manual_seed(0)
    model = eirnn.EIRNN(torch.rand(8, generator=g) < 0.6, 3, learnable_alpha="neuron",
                        noise_scale=0.0)
    with torch.no_grad():
        model.alpha_logit.copy_(torch.randn(8, generator=g))
    u = torch.randn(2, 5, 3, generator=g)
    rates = model(u, noise=False)
    alpha, W = model.alpha, model.W_rec
    x = torch.zeros(2, 8)
    r = model.rates(x)
    for t in range(5):
        x = (1 - alpha) * x + alpha * (r @ W.T + u[:, t] @ model.W_in.T + model.bias)
        r = model.rates(x)
        torch.testing.assert_close(rates[:, t], r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("options, expected", [
    ({"learnable_alpha": "scalar"}, {"alpha_logit": ()}),
    ({"learnable_alpha": "population"}, {"alpha_logit": (2,)}),
    ({"learnable_alpha": "neuron"}, {"alpha_logit": (12,)}),
    ({"learnable_tau": "population"}, {"tau_raw": (2,)}),
    ({"learnable_tau": "neuron", "tau_mode": "smooth"}, {"tau_raw": (12,)}),
])
def test_time_constant_options_train(options, expected):
    model = eirnn.EIRNN(torch.arange(12) < 9, 3, **options)
    for name, shape in expected.items():
        p = dict(model.named_parameters())[name]
        assert tuple(p.shape) == shape
        model(torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(0))).mean().backward()
        assert p.grad is not None and p.grad.abs().sum() > 0
    tau = model.time_constants()
    assert 25 <= tau["tau_e_ms"] <= 200 and len(tau["tau_ms"]) == 12
    assert [p.shape for p in model.time_constant_parameters()] == [
        torch.Size(s) for s in expected.values()]
    model.freeze_time_constants()
    assert not any(p.requires_grad for p in model.time_constant_parameters())


def test_tau_and_alpha_follow_their_parametrisations():
    excitatory = torch.arange(6) < 4
    clamp = eirnn.EIRNN(excitatory, 2, learnable_tau="population", tau_min=10.0, tau_max=200.0)
    with torch.no_grad():
        clamp.tau_raw.copy_(torch.tensor([250.0, 5.0]))
    assert clamp.tau.tolist() == [200.0] * 4 + [10.0] * 2
    smooth = eirnn.EIRNN(excitatory, 2, learnable_tau="population", tau_mode="smooth",
                         tau_min=10.0, tau_max=200.0)
    with torch.no_grad():
        smooth.tau_raw.copy_(torch.tensor([0.0, 2.0]))
    expected_i = 10.0 + 190.0 / (1 + math.exp(-2.0))
    torch.testing.assert_close(smooth.tau, torch.tensor([105.0] * 4 + [expected_i] * 2))
    torch.testing.assert_close(smooth.alpha, 25.0 / smooth.tau)
    fixed = eirnn.EIRNN(excitatory, 2, tau_e=100.0, tau_i=40.0)
    assert fixed.time_constants()["tau_e_ms"] == 100.0
    assert fixed.alpha.tolist() == pytest.approx([0.25] * 4 + [0.625] * 2)
    assert fixed.time_constant_parameters() == []


def test_population_alpha_starts_inhibition_faster():
    model = eirnn.EIRNN(torch.arange(10) < 7, 2, learnable_alpha="population", alpha_init=0.4)
    alpha = model.alpha
    assert alpha[0].item() == pytest.approx(0.4) and alpha[-1].item() == pytest.approx(0.6)


@pytest.mark.parametrize("kwargs, name", [
    ({"learnable_tau": "layer"}, "learnable_tau"),
    ({"learnable_alpha": "all"}, "learnable_alpha"),
    ({"learnable_alpha": "scalar", "learnable_tau": "population"}, "learnable_tau"),
    ({"low_rank": 0}, "low_rank"),
    ({"tau_e": 500.0}, "tau_e"),
    ({"dt": -1.0}, "dt"),
])
def test_bad_model_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        eirnn.EIRNN(torch.ones(5, dtype=torch.bool), 2, **kwargs)


@pytest.mark.parametrize("noise", [False, True])
def test_the_torch_backend_matches_the_reference_step(noise):
    # the folded form (one product per step, terms formed beforehand) against eirnn_step
    F64 = torch.float64
    results = {}
    for backend in ("reference", "torch"):
        model = eirnn.EIRNN([True, True, False, True], 3, n_hidden_exc=2, n_hidden_inh=1,
                            learnable_alpha="neuron", rate_gain="neuron", learnable_x0=True,
                            seed=4,
                            backend=backend).to(F64)
        inputs = torch.randn(5, 30, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
        rates = model(inputs, noise=noise, generator=torch.Generator().manual_seed(2))
        weights = torch.randn(rates.shape, dtype=F64, generator=torch.Generator().manual_seed(3))
        names = [name for name, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad((rates * weights).sum(),
                                    [p for p in model.parameters() if p.requires_grad])
        results[backend] = [rates, *grads]
    for name, got, expected in zip(["rates", *names], results["torch"], results["reference"]):
        assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-10, name
