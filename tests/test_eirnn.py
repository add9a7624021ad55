"""Session loading, the Dale's-law RNN, the fitting losses and the sweep runner."""





import pytest
import torch

from hdlib.models import eirnn


@pytest.mark.parametrize("options", [{}, {"low_rank": 5}, {"n_hidden_exc": 3, "n_hidden_inh": 2}])
def test_dale_law_and_no_self_connections(options):
    model = eirnn.EIRNN(torch.rand(20) < 0.7, 4, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # any parameter values
    W = model.W_rec.detach()
    assert (W[:, model.excitatory] >= 0).all() and (W[:, ~model.excitatory] <= 0).all()
    assert (W.diagonal() == 0).all()
    if "low_rank" in options:
        core = torch.nn.functional.softplus(model.U) @ torch.nn.functional.softplus(model.V).T
        assert torch.linalg.matrix_rank(core) <= 5



def test_bypass_dale_allows_both_signs():
    model = eirnn.EIRNN(torch.ones(10, dtype=torch.bool), 3, bypass_dale=True)
    with torch.no_grad():
        model.W_raw.copy_(torch.randn(10, 10))
    assert (model.W_rec < 0).any()



def test_update_matches_the_written_equation():
    torch.manual_seed(0)
    model = eirnn.EIRNN(torch.rand(8) < 0.6, 3, learnable_alpha="neuron", noise_scale=0.0)
    with torch.no_grad():
        model.alpha_logit.copy_(torch.randn(8))
    u = torch.randn(2, 5, 3)
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
    ({"learnable_tau": "population"}, {"_tau": (2,)}),
    ({"learnable_tau": "neuron", "tau_mode": "smooth"}, {"_tau": (12,)}),
])
def test_time_constant_options_train(options, expected):
    model = eirnn.EIRNN(torch.arange(12) < 9, 3, **options)
    for name, shape in expected.items():
        p = dict(model.named_parameters())[name]
        assert tuple(p.shape) == shape
        model(torch.randn(4, 10, 3)).mean().backward()
        assert p.grad is not None and p.grad.abs().sum() > 0
    tau = model.time_constants()
    assert 25 <= tau["tau_e_ms"] <= 200 and len(tau["tau_ms"]) == 12



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

