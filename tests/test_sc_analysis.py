"""The analyses of the superior-colliculus chapter (hdlib.fitters.sc_analysis): model checks,
the time-constant diagnostics and the tables made from a sweep's results."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hdlib import losses as fl
from hdlib.fitters import sc_analysis, sc_fit

EXCITATORY = torch.arange(12) % 4 != 0  # 9 E, 3 I, interleaved


def batch_of(session, n=16):
    return session.trials(session.train_idx[:n])


def test_describe_session_counts_what_the_session_holds(session):
    text = sc_analysis.describe_session(session)
    K, B, N = session.rates.shape
    n_exc = int(session.is_excitatory.sum())
    assert f"{K} trials, {N} neurons ({n_exc} E, {N - n_exc} I), {B} bins" in text
    assert f"{len(session.train_idx)}/{len(session.val_idx)}" in text


def test_broken_copies_are_refused_with_the_field_named(synthetic, tmp_path):
    messages = sc_analysis.refusals(synthetic.path, tmp_path)
    assert "neuron_type" in messages["missing field"]
    assert "n_trials" in messages["inconsistent count"]


@pytest.mark.parametrize("ranks", [(None, 3, 6)])
def test_dale_checks_of_fresh_models(ranks):
    table = sc_analysis.dale_checks(EXCITATORY, 2, ranks=ranks)
    assert table[["E columns >= 0", "I columns <= 0", "zero diagonal"]].all().all()
    assert table["rank before diagonal removed"].tolist() == [12, 3, 6]
    assert table["loop gain"].to_numpy() == pytest.approx(0.9, abs=1e-4)
    assert table["top-r share of squared singular values"].iloc[0] == pytest.approx(1.0)


def test_reversal_fraction_counts_changes_of_direction():
    zigzag = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]).reshape(1, 6, 1)
    ramp = torch.arange(6.0).reshape(1, 6, 1)
    one_turn = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0]).reshape(1, 5, 1)  # 1 of 3 pairs
    assert sc_analysis.reversal_fraction(zigzag) == 1.0
    assert sc_analysis.reversal_fraction(ramp) == 0.0
    assert sc_analysis.reversal_fraction(one_turn) == pytest.approx(1 / 3)


def test_clamp_blocks_the_gradient_beyond_its_bound(session):
    gradients = sc_analysis.bound_gradients(session.is_excitatory, batch_of(session))
    inside, beyond = gradients["clamp"]
    assert inside > 0 and beyond == 0.0
    assert min(gradients["smooth"]) > 0


@pytest.mark.parametrize("how", ["unit", "mean"])
def test_noise_variances_follow_the_stationary_formula(how):
    # Linearised rates r = s softplus(x) + b with x ~ 0: var r = (s / 2)^2 var x, and the
    # stationary var x = sigma^2 a' / (a (2 - a)).
    alphas = (0.2, 0.8)
    var_e, var_i = sc_analysis.noise_variances(EXCITATORY, 2, alphas=alphas, noise_alpha=how,
                                               n_trials=512)
    scale, sigma = 10.0, 0.1  # EIRNN's default rate_scale and noise_scale
    for a, measured in zip(alphas, (var_e, var_i)):
        a_noise = a if how == "unit" else float(np.mean([0.2] * 9 + [0.8] * 3))
        expected = (scale / 2) ** 2 * sigma ** 2 * a_noise / (a * (2 - a))
        assert measured == pytest.approx(expected, rel=0.1)


def test_alpha_above_one_makes_inhibitory_rates_zigzag(session):
    reversals = sc_analysis.inhibitory_reversals(session.is_excitatory,
                                                 batch_of(session)["inputs"])
    assert reversals[20.0] > 0.9 and reversals[20.0] > 2 * reversals[50.0]


def test_diagnosis_table_has_one_row_per_measurement(session):
    diagnosis = sc_analysis.diagnose_time_constants(session.is_excitatory, batch_of(session))
    assert diagnosis.alpha_shape == (session.n_neurons,)
    assert diagnosis.devices == {"cpu"} and diagnosis.clamp_blocks_gradient
    assert len(diagnosis.table()) == 2 + 1 + 2 + 1 + 2


def test_recovery_experiments_name_and_configure_the_fits():
    configs = sc_analysis.recovery_experiments({400: "a.mat", 1043: "b.mat"}, tau_e=100.0,
                                               tau_i=50.0, bin_size_ms=25.0, steps=7,
                                               lr_scale=10.0, profile_trials=[400])
    assert list(configs) == ["learnable_alpha_1043_trials", "fixed_tau_i_30_400_trials",
                             "fixed_tau_i_50_400_trials"]
    assert configs["learnable_alpha_1043_trials"] == {
        "data_path": "b.mat", "fit_options": {"learnable_alpha": "population", "steps": 7,
                                              "time_constant_lr_scale": 10.0}}
    assert configs["fixed_tau_i_30_400_trials"]["fit_options"] == {"tau_e_init": 100.0,
                                                                   "tau_i_init": 30.0}
    for options in configs.values():
        sc_fit.make_config(**options["fit_options"])
    assert sc_analysis.profile_taus(30.0, 25.0) == [25.0, 30.0]


def fake_results():
    """A sweep's results with known numbers: baseline 0.40, ceiling 0.5."""
    corr = {"baseline": 0.40, "poisson_ltrial": 0.42, "learnable_alpha_scalar": 0.405,
            "learnable_alpha_population": 0.40, "learnable_tau_frozen": 0.40,
            "learnable_tau_clamp": 0.39, "learnable_tau_smooth": 0.41,
            "learnable_tau_phase1": 0.10, "low_rank_10": 0.38, "low_rank_20": 0.395,
            "low_rank_30": 0.385, "cosine_warmup_0": 0.30, "cosine_warmup_50": 0.35,
            "activity_reg_0.01": 0.40, "activity_reg_0.001": 0.40}
    rows = {name: {"status": "ok", "error": "", "psth_corr": c, "fraction_of_ceiling": c / 0.5,
                   "single_trial_corr": 0.7, "rates_in_range": 1.0, "tau_e_ms": 50.0,
                   "tau_i_ms": 50.0, "seconds": 1.0, "tau_e_curve": [50.0, 50.0, 50.0],
                   "tau_i_curve": [50.0, 50.0, 50.0]} for name, c in corr.items()}
    rows["learnable_tau_clamp"]["tau_i_curve"] = [50.0, 49.98, 49.95]
    rows["learnable_tau_smooth"]["tau_e_curve"] = [50.0, 52.0, 55.5]
    rows["activity_reg_0.001"]["rates_in_range"] = 0.8
    rows["broken"] = {"status": "failed", "error": "ValueError: no"}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_sweep_summary_and_table_from_known_results():
    results = fake_results()
    summary = sc_analysis.summarise_sweep(results)
    assert summary["baseline"] == 0.40 and summary["baseline_fraction"] == 0.8
    assert summary["tau_worst"] == pytest.approx(0.39 / 0.40 - 1)
    assert summary["phase1_change"] == pytest.approx(-0.75)
    assert summary["clamp_step"] == pytest.approx(0.03)
    assert summary["smooth_step"] == pytest.approx(3.5)
    assert summary["low_rank_best"] == 0.395 and summary["in_range"] == 0.8
    assert summary["failed"] == ["broken"]
    table = sc_analysis.sweep_table(results)
    assert list(table.columns[:2]) == ["psth_corr", "vs baseline"]
    assert table.loc["poisson_ltrial", "vs baseline"] == pytest.approx(0.05)
    assert math.isnan(sc_analysis.score(results, "broken"))
    assert sc_analysis.finished(results, ["broken", "baseline", "absent"]) == ["baseline"]


def test_a_missing_run_makes_best_and_worst_unknown():
    summary = sc_analysis.summarise_sweep(fake_results().drop(index="low_rank_20"))
    assert math.isnan(summary["low_rank_best"]) and not math.isnan(summary["tau_worst"])


def test_recovery_table_and_loss_profile():
    runs = {"a": (400, {"tau_e_ms": 80.0, "tau_i_ms": 45.0}),
            "b": (1043, {"tau_e_ms": 130.0, "tau_i_ms": 50.0})}
    table = sc_analysis.recovery_table(runs, (100.0, 50.0), tolerance=0.25)
    assert table.loc["a", ["error E", "error I"]].tolist() == pytest.approx([0.2, 0.1])
    assert table["within tolerance"].tolist() == [True, False]
    rows = {f"fixed_tau_i_{t:g}_{n}_trials": {"status": "ok", "psth_corr": 0.4,
                                               "poisson_nll": 0.7, "train_loss_end": loss}
            for (t, n, loss) in [(30.0, 400, 0.39), (50.0, 400, 0.40), (30.0, 1043, 0.28),
                                 (50.0, 1043, 0.27)]}
    profile = sc_analysis.loss_profile(pd.DataFrame.from_dict(rows, orient="index"),
                                       [400, 1043], [30.0, 50.0])
    assert len(profile) == 4
    assert sc_analysis.preferred_tau_i(profile) == {400: 30.0, 1043: 50.0}


def test_claims_apply_the_stated_rules():
    results = fake_results()
    recovery = sc_analysis.recovery_table(
        {"learnable_alpha_population": (400, {"tau_e_ms": 90.0, "tau_i_ms": 30.0}),
         "learnable_alpha_1043_trials": (1043, {"tau_e_ms": 90.0, "tau_i_ms": 45.0})},
        (100.0, 50.0), tolerance=0.25)
    rows = sc_analysis.phase2_claims(results, sc_analysis.summarise_sweep(results), recovery,
                                     0.5, target_fraction=0.8, margin=0.01, tolerance=0.25,
                                     document_trials=1043)
    holds = [h for _, _, h in rows]
    # ceiling reached, Poisson +0.02 > margin, scalar +0.005 < margin, population 0, tau not
    # broken, clamp moved 0.03 < 0.1, recovered at 1043, low rank worse, cosine worse,
    # activity equal, 0.8 of units in range < 0.9
    assert holds == [True, True, False, False, False, True, True, False, False, False, False]
    assert "400 trials" in rows[6][1] and "1043 trials" in rows[6][1]
    without_teacher = sc_analysis.phase2_claims(
        results, sc_analysis.summarise_sweep(results), None, 0.5, target_fraction=0.8,
        margin=0.01, tolerance=0.25, document_trials=1043)
    assert without_teacher[6][1:] == ("not run", False)


def test_validation_psths_match_the_loss_module(session):
    model = sc_fit.build_model(session, sc_fit.make_config())
    psths = sc_analysis.validation_psths(model, session, seed=3)
    val = session.trials(session.val_idx)
    with torch.no_grad():
        rates = model(val["inputs"], generator=torch.Generator().manual_seed(3))
    expected, counts, _ = fl.psth(rates, val["mask"], val["condition"])
    torch.testing.assert_close(psths["model"], expected)
    assert torch.equal(psths["counts"], counts)
    assert psths["data"].shape == expected.shape


def test_holm_adjusts_by_rank():
    # sorted p: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> running max 0.06
    adjusted = sc_analysis.holm([0.01, 0.04, 0.03, float("nan")])
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adjusted[3])
    assert sc_analysis.holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def test_paired_table_pairs_by_seed_and_corrects():
    base = [0.5, 0.6, 0.7]
    rows = {f"baseline_seed{s}": {"psth_corr_pooled": v, "seed": s} for s, v in enumerate(base)}
    # seeds listed out of order: pairing must follow the seed, not the row order
    for s, d in ((2, 0.3), (0, 0.1), (1, 0.2)):
        rows[f"better_seed{s}"] = {"psth_corr_pooled": base[s] + d, "seed": s}
    table = pd.DataFrame.from_dict(rows, orient="index")
    out = sc_analysis.paired_table(table, metrics=("psth_corr_pooled",))
    row = out.loc["better"]
    assert row["change"] == pytest.approx(0.2)
    # paired t = 0.2 / (0.1 / sqrt 3) = 2 sqrt 3 with 2 degrees of freedom, whose two-sided
    # p-value is 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14)
    assert row["p"] == pytest.approx(1 - (12 / 14) ** 0.5, rel=1e-6)
    assert row["Holm p"] == pytest.approx(row["p"])  # one comparison
    assert not row["survives Holm"] and out.loc["better", "n"] == 3
    assert sc_analysis.paired_changes(table, "better") == pytest.approx([0.1, 0.2, 0.3])


def test_unit_ceiling_is_one_for_noise_free_units_and_low_for_noise():
    g = torch.Generator().manual_seed(0)
    K, T = 40, 30
    condition = torch.arange(K) % 2
    signal = torch.sin(torch.linspace(0, 6, T))[None, :, None] * (condition[:, None, None] + 1)
    noise = torch.randn(K, T, 1, generator=g) * 5
    target = torch.cat([signal + 3, noise + 3], dim=2)
    mask = torch.ones(K, T, dtype=torch.bool)
    ceilings = sc_analysis.unit_ceilings(target, mask, condition, n_splits=5)
    assert ceilings[0].item() == pytest.approx(1.0, abs=1e-5)
    assert ceilings[1].item() < 0.6


def test_a_predictor_that_knows_only_trial_ends_scores_high_on_the_pooled_metric():
    from hdlib.datasets.sessions import load_session
    from tests.conftest import ROOT

    session = load_session(ROOT / "data/sc/rnn_export_Newton_08_14_2025_SC.mat")
    scores = sc_analysis.reference_scores(session)
    assert list(scores.columns) == ["psth_corr_pooled", "psth_corr"]
    on = scores.loc["recording on x mean rate"]
    # constant within each recorded trial: no per-condition shape at all
    assert abs(on["psth_corr"]) < 0.01
    # on the recording it passes the published 0.3608 (measured 0.876 at split seed 0)
    assert on["psth_corr_pooled"] == pytest.approx(0.876, abs=0.005)
