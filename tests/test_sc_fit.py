"""Session loading, the Dale's-law RNN, the fitting losses and the sweep runner."""
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from hdlib import losses as fl
from hdlib.book import runs, sweeps
from hdlib.datasets import sessions as nd
from hdlib.fitters import sc_fit
from hdlib.models import eirnn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "session.mat"
    return nd.make_synthetic_session(path, n_trials=120, n_bins=140, seed=1)


@pytest.fixture(scope="module")
def session(synthetic):
    return nd.load_session(synthetic.path)


def test_v73_file_is_hdf5_with_reversed_dimensions(synthetic):
    import h5py
    with h5py.File(synthetic.path) as f:
        assert f["firing_rates"].shape == (120, 140, 54)  # (trials, bins, neurons) in HDF5
        assert f["session_name"].dtype == np.uint16
    with open(synthetic.path, "rb") as f:
        assert f.read(10) == b"MATLAB 7.3"


def test_loaded_session(session, synthetic):
    assert session.rates.shape == (120, 140, 54)
    assert session.inputs.shape == (120, 140, 14)
    assert int(session.is_excitatory.sum()) == 41
    assert session.info["session_name"] == "synthetic_teacher_session"
    assert not torch.isnan(session.rates).any() and not torch.isnan(session.inputs).any()
    assert (session.rates[~session.mask] == 0).all()
    eye = session.inputs[..., session.input_names.index("input_eye_x")][session.mask]
    assert abs(eye.mean()) < 1e-3 and abs(eye.std() - 1) < 1e-2
    # The split is disjoint, complete and stratified by condition.
    train, val = set(session.train_idx.tolist()), set(session.val_idx.tolist())
    assert not train & val and len(train | val) == 120
    for c in torch.unique(session.condition):
        in_c = (session.condition == c).nonzero().flatten().tolist()
        share = len(set(in_c) & val) / len(in_c)
        assert 0 < share < 0.5


def test_old_matlab_format_loads_the_same(session, synthetic, tmp_path):
    raw = nd.read_fields(synthetic.path)
    path = tmp_path / "v5.mat"
    scipy.io.savemat(path, raw)
    old = nd.load_session(path)
    torch.testing.assert_close(old.rates, session.rates)
    torch.testing.assert_close(old.inputs, session.inputs)
    assert old.info["pipeline_version"] == session.info["pipeline_version"]


def test_nan_padding_becomes_the_mask(session):
    # Bins after a trial's end were written as NaN; they must all be masked.
    ends = session.mask.sum(1)
    assert (ends < session.mask.shape[1]).any()
    for k in range(5):
        assert session.mask[k, : ends[k]].all() and not session.mask[k, ends[k]:].any()


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.pop("input_go_signal"), "input_go_signal"),
    (lambda f: f.update(n_neurons=f["n_neurons"] + 1), "n_neurons"),
    (lambda f: f.update(time_axis=np.zeros(7)), "time_axis"),
    (lambda f: f.update(neuron_type=np.full(54, 3.0)), "neuron_type"),
    (lambda f: f.update(input_target_loc=np.zeros((3, 140, 120))), "input_target_loc"),
])
def test_bad_session_files_name_the_field(synthetic, tmp_path, edit, message):
    fields = nd.read_fields(synthetic.path)
    edit(fields)
    path = nd.write_session_v73(tmp_path / "bad.mat", fields)
    with pytest.raises(ValueError, match=message):
        nd.load_session(path)


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "x.mat"
    path.write_text("hello")
    with pytest.raises(ValueError, match="MATLAB"):
        nd.load_session(path)


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


def test_l_neuron_is_zero_minus_terms_for_a_perfect_psth(session):
    batch = session.trials(session.train_idx)
    loss = fl.compute_L_neuron(batch["rates"], batch["rates"], batch["mask"], batch["condition"])
    assert loss.item() == pytest.approx(0.0, abs=1e-4)
    shuffled = batch["rates"][torch.randperm(len(batch["rates"]))]
    worse = fl.compute_L_neuron(shuffled, batch["rates"], batch["mask"], batch["condition"])
    assert worse > loss + 0.1


def test_masked_bins_never_reach_the_losses(session):
    batch = session.trials(session.train_idx[:30])
    rates = torch.rand_like(batch["rates"]) * 20 + 1
    poisoned = batch["rates"].clone()
    poisoned[~batch["mask"]] = float("nan")
    poisoned_rates = rates.clone().requires_grad_()
    for loss in [fl.compute_L_neuron(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"],
                                     batch["condition"]),
                 fl.compute_L_trial(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"]),
                 fl.compute_L_poisson(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"])]:
        assert torch.isfinite(loss)
    # A small batch leaves some conditions with too few trials: gradients stay finite.
    loss = fl.compute_L_neuron(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"],
                               batch["condition"])
    (grad,) = torch.autograd.grad(loss, poisoned_rates)
    assert torch.isfinite(grad).all()
    # Values in masked bins do not change any loss.
    other = rates.clone()
    other[~batch["mask"]] = 1e4
    for fn in (fl.compute_L_trial, fl.compute_L_poisson):
        assert fn(rates, batch["rates"], batch["mask"]).item() == pytest.approx(
            fn(other, batch["rates"], batch["mask"]).item(), rel=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "poisson"])
def test_trial_matching_finds_the_permutation(session, distance):
    batch = session.trials(session.train_idx[:40])
    target = batch["rates"]
    perm = torch.randperm(40)
    loss, plan = fl.compute_L_trial(target[perm], target, batch["mask"][perm] | True,
                                    distance=distance, epsilon=0.01, return_plan=True)
    assert (plan.argmax(1) == perm).float().mean() > 0.9
    assert plan.sum().item() == pytest.approx(1.0, abs=1e-4)


def test_cost_matrix_matches_the_direct_sum(session):
    batch = session.trials(session.train_idx[:12])
    rates = torch.rand_like(batch["rates"]) * 10 + 1
    for distance in ("euclidean", "poisson"):
        fast = fl.trial_cost_matrix(rates, batch["rates"], batch["mask"], distance=distance)
        w = batch["mask"].float()
        m = fl.smooth_temporal(rates.mean(-1) * w, 4)
        d = fl.smooth_temporal(batch["rates"].mean(-1) * w, 4)
        if distance == "euclidean":
            n = w.sum(0).clamp(min=1)
            mu = (d * w).sum(0) / n
            sd = (((d - mu) ** 2 * w).sum(0) / n).sqrt() + 1e-3
            term = ((m[:, None] - mu) / sd - ((d - mu) / sd)[None]) ** 2
        else:
            mm, dd = m.clamp(min=1e-3)[:, None], d.clamp(min=0)[None]
            term = mm - dd + torch.xlogy(dd, dd) - dd * torch.log(mm)
        slow = (term * w[None]).sum(-1) / w.sum(-1)[None]
        torch.testing.assert_close(fast, slow, atol=1e-3, rtol=1e-4)


def test_gradient_balancing_sets_the_ratio(session):
    model = eirnn.EIRNN(session.is_excitatory, 14)
    batch = session.trials(session.train_idx[:40])
    rates = model(batch["inputs"])
    L_n = fl.compute_L_neuron(rates, batch["rates"], batch["mask"], batch["condition"])
    L_t = fl.compute_L_trial(rates, batch["rates"], batch["mask"])
    c = fl.balanced_weight(L_n, L_t, model.parameters(), ltrial_scale=0.5)
    params = list(model.parameters())
    norm = lambda loss: torch.cat([g.flatten() for g in torch.autograd.grad(  # noqa: E731
        loss, params, retain_graph=True)]).norm()
    assert (norm(c * L_t) / norm(L_n)).item() == pytest.approx(0.5, rel=1e-3)


def test_cosine_schedule_with_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = fl.get_cosine_schedule_with_warmup(opt, 10, 110)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[5] < lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.5, abs=0.02) and lrs[-1] < 0.01
    with pytest.raises(ValueError, match="num_warmup_steps"):
        fl.get_cosine_schedule_with_warmup(opt, 200, 100)


def test_split_half_ceiling_of_noise_free_data_is_one(session):
    batch = session.trials(session.train_idx)
    clean = batch["rates"].mean(0, keepdim=True).expand_as(batch["rates"])
    result = fl.split_half_ceiling(clean, batch["mask"], batch["condition"], n_splits=3)
    assert result["ceiling"] == pytest.approx(1.0, abs=1e-3)


def test_short_fit_improves_and_reports(session):
    cfg = sc_fit.make_config(steps=15, learning_rate=0.03, learnable_alpha="population")
    model, history = sc_fit.fit(session, cfg, progress=False)
    assert history["L_neuron"][-1] < history["L_neuron"][0]
    scores = sc_fit.evaluate(model, session)
    assert 0 < scores["ceiling"] <= 1 and -1 <= scores["psth_corr"] <= 1
    assert scores["L_trial"] >= 0 and np.isfinite(scores["poisson_nll"])
    with pytest.raises(ValueError, match="warmup_steps"):
        sc_fit.make_config(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rat"):
        sc_fit.make_config(learning_rat=0.1)


@pytest.fixture
def job_notebook(tmp_path):
    notebook = tmp_path / "job.py"
    notebook.write_text(textwrap.dedent('''\
        # ---
        # jupyter:
        #   kernelspec:
        #     display_name: Python 3 (ipykernel)
        #     language: python
        #     name: python3
        # ---

        # %% tags=["parameters"]
        x = 1
        options = {}
        result_path = "r.json"

        # %%
        import json
        if x < 0:
            raise ValueError("x must be positive")
        json.dump({"square": x * x, "options": options}, open(result_path, "w"))
        '''))
    return notebook


def test_sweep_keeps_going_past_a_failure(tmp_path, job_notebook):
    notebook = job_notebook
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("base: {options: {a: 1}}\nconfigs:\n  two: {x: 2, options: {b: 2}}\n"
                          "  bad: {x: -1}\n  three: {x: 3}\n")
    base, configs = sweeps.load_sweep(sweep_file)
    table = sweeps.run_sweep(notebook, configs, tmp_path / "out", base=base, workers=2,
                             progress=False)
    assert table.loc["two", "status"] == "ok" and table.loc["two", "square"] == 4
    assert table.loc["two", "options"] == {"a": 1, "b": 2}
    assert table.loc["three", "square"] == 9
    assert table.loc["bad", "status"] == "failed" and "x must be positive" in table.loc[
        "bad", "error"]
    assert json.loads((tmp_path / "out" / "two.json").read_text())["square"] == 4


def test_bad_sweep_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("configs: [1, 2]\n")
    with pytest.raises(ValueError, match="configs"):
        sweeps.load_sweep(path)
    path.write_text("configs: {a: {}}\nextra: 1\n")
    with pytest.raises(ValueError, match="extra"):
        sweeps.load_sweep(path)
    with pytest.raises(ValueError, match="engine"):
        sweeps.make_executor("pbs")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_sweep_files_hold_valid_fit_options(path):
    base, configs = sweeps.load_sweep(path)
    assert "baseline" in configs
    run_params = set(runs.notebook_parameters(ROOT / "notebooks/experiments/sc_fit_run.py"))
    for name, overrides in configs.items():
        params = sweeps.merge(base, overrides)
        assert set(params) <= run_params, name
        sc_fit.make_config(**params.get("fit_options", {}))


def test_sweep_command_line(tmp_path, job_notebook, capsys):
    from hdlib.book.cli import main

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("configs:\n  four: {x: 4}\n  bad: {x: -2}\n")
    out = tmp_path / "cli"
    assert main(["sweep", str(job_notebook), "-f", str(sweep_file), "-o", str(out),
                 "--workers", "1"]) == 1  # one configuration failed
    table = (out / "results.csv").read_text()
    assert "four" in table and "x must be positive" in table
    assert main(["sweep", str(job_notebook), "-f", str(tmp_path / "none.yaml")]) == 2


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
