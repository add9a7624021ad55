"""Fitting the E-I RNN to a session (hdlib.fitters.sc_fit): configuration, the training run,
its evaluation and saved models."""
import numpy as np
import pytest
import torch

from hdlib.book import runs, sweeps
from hdlib.fitters import sc_fit
from tests.conftest import ROOT


def test_short_fit_improves_and_reports(session):
    cfg = sc_fit.make_config(steps=15, learning_rate=0.03, learnable_alpha="population")
    model, history = sc_fit.fit(session, cfg, progress=False)
    assert history["L_neuron"][-1] < history["L_neuron"][0]
    # the kept state is the best by validation bits/spike, among the checks made
    checks = history["monitor"]["val_bits_per_spike"]
    assert history["best_val_bits_per_spike"] == max(checks)
    scores = sc_fit.evaluate(model, session)
    assert -1 <= scores["psth_r"] <= 1 and np.isfinite(scores["bits_per_spike"])
    assert scores["L_trial"] >= 0 and -1 <= scores["single_trial_r"] <= 1
    with pytest.raises(ValueError, match="warmup_steps"):
        sc_fit.make_config(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rat"):
        sc_fit.make_config(learning_rat=0.1)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "sweeps").glob("04_*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_sweep_files_hold_valid_fit_options(path):
    base, configs = sweeps.load_sweep(path)
    if path.name == "04_phases.yaml":  # every item is compared with it, paired by seed
        assert {f"baseline_seed{s}" for s in (0, 1, 2)} <= set(configs)
    run_params = set(runs.notebook_parameters(ROOT / "notebooks/experiments/sc_fit_run.py"))
    for name, overrides in configs.items():
        params = sweeps.merge(base, overrides)
        assert set(params) <= run_params, name
        sc_fit.make_config(**params.get("fit_options", {}))


def test_time_constants_get_their_own_learning_rate(session, monkeypatch):
    seen = {}
    original = torch.optim.Adam

    def spy(groups, lr):
        seen["groups"] = [(len(g["params"]), g.get("lr", lr)) for g in groups]
        return original(groups, lr=lr)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    sc_fit.fit(session, {"steps": 1, "learning_rate": 0.01, "learnable_alpha": "population",
                         "time_constant_lr_scale": 3.0}, progress=False)
    assert seen["groups"][1] == (1, pytest.approx(0.03))


def test_frozen_learnable_tau_fits_exactly_like_fixed_tau(session):
    options = {"steps": 3, "learning_rate": 0.03, "learnable_alpha": "none"}
    _, fixed = sc_fit.fit(session, options, progress=False)
    _, frozen = sc_fit.fit(session, {**options, "learnable_tau": "population",
                                     "freeze_tau": True}, progress=False)
    assert frozen["loss"] == fixed["loss"]
    assert frozen["tau_i_ms"] == [50.0] * 3


def test_a_saved_model_loads_with_its_configuration(session, tmp_path):
    options = {"steps": 2, "learnable_alpha": "population", "low_rank": 4}
    model, _ = sc_fit.fit(session, options, progress=False)
    torch.save(model.state_dict(), tmp_path / "run.pt")
    loaded = sc_fit.load_model(session, options, tmp_path / "run.pt")
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    a, b = sc_fit.evaluate(loaded, session), sc_fit.evaluate(model, session)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a)


@pytest.mark.slow
def test_a_stored_sweep_run_is_reproduced_over_its_first_steps():
    """The first steps of the stored baseline (seed 0) of results/04_phases, re-run now, follow
    its stored loss curve within 1e-3 relative (float sums may differ across machines and
    thread counts; a changed loss, data path or sampling would not)."""
    from hdlib.book import results
    from hdlib.datasets import sessions

    record = results.read_result(ROOT / "results/04_phases/baseline_seed0.json")
    params = record["parameters"]
    session = sessions.load_session(ROOT / "data/sc/rnn_export_Newton_08_14_2025_SC.mat",
                                    val_fraction=params["val_fraction"],
                                    test_fraction=params["test_fraction"],
                                    seed=params["split_seed"])
    steps = 5
    options = {**params["fit_options"], "steps": steps, "seed": params["seed"]}
    _, history = sc_fit.fit(session, options, progress=False)
    np.testing.assert_allclose(history["loss"], record["metrics"]["loss_curve"][:steps],
                               rtol=1e-3)


def test_prepared_network_starts_at_each_neurons_rate_with_a_stable_loop(session):
    """Per-neuron scales change the loop gain; prepare() restores the configured radius
    (computed here with numpy's eigenvalues) and starts each unit (x = 0, no input) at its mean
    training rate."""
    cfg = sc_fit.make_config()
    model = sc_fit.prepare(sc_fit.build_model(session, cfg), session, cfg)
    gain = (model.W_rec * model.rate_scale[None, :]).detach().numpy()
    assert np.abs(np.linalg.eigvals(gain)).max() == pytest.approx(cfg.spectral_radius, rel=1e-4)
    train = session.trials(session.train_idx)
    w = train["mask"][..., None].double()
    mean = ((train["rates"] * w).sum((0, 1)) / w.sum((0, 1))).clamp(min=0.5)
    start = model.rates(torch.zeros(model.n_total))[:session.n_neurons].detach()
    np.testing.assert_allclose(start.numpy(), mean.numpy(), rtol=1e-4)
