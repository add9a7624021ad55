"""Baselines of a recorded session (hdlib.baselines, hdlib.models.encoders), on a small
synthetic session whose rates are known."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import PoissonRegressor

from hdlib import baselines, metrics
from hdlib.datasets import sessions
from hdlib.fitters import sc_teacher
from hdlib.models import encoders


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 8-unit teacher session of 120 trials x 50 bins, split 60/20/20."""
    path = tmp_path_factory.mktemp("baselines") / "small.mat"
    made = sc_teacher.make_synthetic_session(path, n_trials=120, n_exc=6, n_inh=2, n_bins=50,
                                             seed=5)
    session = sessions.load_session(path, val_fraction=0.2, test_fraction=0.2, seed=0)
    return session, made, baselines.fit_baselines(session)


def test_glm_solver_matches_scikit_learn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    w_true = np.array([0.5, -0.3, 0.0, 0.2, 0.1])
    y = rng.poisson(np.exp(X @ w_true + 0.3), size=(2, 400)).T.astype(float)
    W, b = baselines.fit_poisson_glm(torch.as_tensor(X), torch.as_tensor(y), alpha=0.01,
                                     max_iter=500)
    for n in range(2):
        reference = PoissonRegressor(alpha=0.01, tol=1e-10, max_iter=1000).fit(X, y[:, n])
        assert W[:, n].numpy() == pytest.approx(reference.coef_, abs=1e-5)
        assert b[n].item() == pytest.approx(reference.intercept_, abs=1e-5)


def test_raised_cosine_basis_tiles_time_and_is_causal():
    basis = encoders.RaisedCosineEncoder(2, bin_size_ms=25.0).basis
    assert basis.shape[1] == encoders.N_BASES
    # the last peak is at LAST_PEAK_MS whatever the bin width
    for bin_ms in (10.0, 25.0):
        peaks = encoders.RaisedCosineEncoder(1, bin_size_ms=bin_ms).basis.argmax(0)
        assert peaks[-1].item() == pytest.approx(encoders.LAST_PEAK_MS / bin_ms, abs=1)
    # cosines of width 4 steps, one step apart on log time, sum to 2 wherever two neighbours
    # on each side exist: from lag 1 (the second peak) to the second-to-last peak
    step = np.log(encoders.LAST_PEAK_MS / 25.0 + 1) / (encoders.N_BASES - 1)
    second_last = int(np.exp(step * (encoders.N_BASES - 2)) - 1)
    total = basis.sum(1)[1:second_last + 1]
    assert torch.allclose(total, torch.full_like(total, 2.0), atol=1e-5)
    # an impulse at t0 moves features only from t0 on, each as its basis function
    u = torch.zeros(1, 80, 2)
    u[0, 10, 1] = 1.0
    f = encoders.basis_features(u, basis)
    assert torch.all(f[0, :10] == 0) and torch.all(f[0, :, :encoders.N_BASES] == 0)
    length = min(basis.shape[0], 70)
    assert torch.allclose(f[0, 10:10 + length, encoders.N_BASES:], basis[:length], atol=1e-6)


def test_model_free_baselines_by_hand(small):
    session, _, fitted = small
    train = session.trials(session.train_idx)
    rates, mask = train["rates"].numpy(), train["mask"].numpy()
    per_neuron = (rates * mask[..., None]).sum((0, 1)) / mask.sum()
    assert fitted.mean_rate.numpy() == pytest.approx(per_neuron, rel=1e-9)
    n = mask.sum(0)
    recorded = n > 0
    pooled = (rates * mask[..., None]).sum(0)[recorded] / n[recorded, None]
    assert fitted.pooled_psth.numpy()[recorded] == pytest.approx(pooled, rel=1e-9)
    assert fitted.shrink_weight in baselines.SHRINK_WEIGHTS
    assert fitted.shrink_smooth_ms in baselines.SHRINK_SMOOTH_MS


def test_baselines_rank_as_their_information_says(small):
    """On held-out trials of a teacher driven by its inputs: the constant scores 0 bits/spike,
    the PSTHs and the GLM (which sees the inputs) score above it, and the true rates above all."""
    session, made, fitted = small
    test = session.trials(session.test_idx)
    predictions = fitted.predict(test["inputs"], test["condition"])
    dt = session.bin_size_ms / 1000
    bps = {name: metrics.bits_per_spike(rates, test["rates"], test["mask"], fitted.mean_rate,
                                        dt)["pooled"] for name, rates in predictions.items()}
    truth = made.rates[session.test_idx]
    bps["truth"] = metrics.bits_per_spike(truth, test["rates"], test["mask"], fitted.mean_rate,
                                          dt)["pooled"]
    assert bps["mean rate"] == pytest.approx(0.0, abs=1e-12)
    assert 0 < bps["pooled PSTH"] <= bps["shrunk PSTH"] + 0.02
    assert bps["Poisson GLM"] > bps["pooled PSTH"]
    assert bps["truth"] > max(bps[name] for name in predictions)
    assert predictions["Poisson GLM"].shape == test["rates"].shape
