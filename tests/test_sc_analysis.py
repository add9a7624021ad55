"""The analyses of the superior-colliculus chapter (hdlib.fitters.sc_analysis): model checks,
the time-constant diagnostics and the tables made from a sweep's results."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from hdlib.book import parameters
from hdlib.fitters import sc_analysis

EXCITATORY = torch.arange(12) % 4 != 0  # 9 E, 3 I, interleaved


def batch_of(session, n=16):
    return session.trials(session.train_idx[:n])


def test_describe_session_counts_what_the_session_holds(session):
    text = sc_analysis.describe_session(session)
    K, B, N = session.rates.shape
    n_exc = int(session.is_excitatory.sum())
    assert f"{K} trials, {N} neurons ({n_exc} E, {N - n_exc} I), {B} bins" in text
    assert f"{len(session.train_idx)}/{len(session.val_idx)}" in text


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


def test_paired_table_pairs_by_seed_and_describes():
    base = [0.5, 0.6, 0.7]
    rows = {f"baseline_seed{s}": {"psth_corr_pooled": v, "seed": s} for s, v in enumerate(base)}
    # seeds listed out of order: pairing must follow the seed, not the row order
    for s, d in ((2, 0.3), (0, 0.1), (1, 0.2)):
        rows[f"better_seed{s}"] = {"psth_corr_pooled": base[s] + d, "seed": s}
    for s in range(3):  # the same change on every seed: no interval to show
        rows[f"shifted_seed{s}"] = {"psth_corr_pooled": base[s] + 0.25, "seed": s}
    table = pd.DataFrame.from_dict(rows, orient="index")
    out = sc_analysis.paired_table(table, metrics=("psth_corr_pooled",))  # the first is paired
    row = out.loc["better"]
    assert row["change"] == pytest.approx(0.2) and row["n"] == 3
    # per-seed differences 0.1, 0.2, 0.3: sd 0.1, t(2) quantile at the one-look level 1 - 0.05/3
    half = 0.1 / 3 ** 0.5 * scipy.stats.t.ppf(1 - 0.05 / 6, 2)
    assert row["change 98.3% CI"] == f"[{0.2 - half:+.3f}, {0.2 + half:+.3f}]"
    assert out.loc["shifted", "change 98.3% CI"] == "same in all runs"
    assert "p" not in out and "survives Holm" not in out  # the claims table decides
    assert sc_analysis.paired_changes(table, "better", metric="psth_corr_pooled") == \
        pytest.approx([0.1, 0.2, 0.3])


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


def test_recording_figure_rasters_show_counts_of_face_trials(session):
    # The raster of a unit holds every face-target trial (condition // 4 == 0), grouped by
    # location, as spike counts rate * bin / 1000, with the unrecorded bins masked.
    import matplotlib

    matplotlib.use("Agg")
    fig = sc_analysis.recording_figure(session, [0, 1], torch.rand(session.n_neurons))
    raster = fig.axes[len([0, 1]) + 1].images[0].get_array()  # bottom row, first unit
    face = sorted(set(session.condition.tolist()) & {0, 1, 2, 3})
    trials = torch.cat([torch.nonzero(session.condition == c).flatten() for c in face])
    expected = session.rates[trials, :, 0] * session.bin_size_ms / 1000
    assert raster.shape == tuple(expected.shape)
    recorded = session.mask[trials].numpy()
    np.testing.assert_allclose(raster.data[recorded], expected.numpy()[recorded], rtol=1e-6)
    assert raster.mask[~recorded].all()


def test_document_claims_measure_gaps_to_the_best_baseline_and_invert_the_loss_comparison():
    def sweep(values, metric="bits_per_spike"):
        return pd.DataFrame.from_dict(
            {f"{name}_seed{s}": {metric: v, "psth_r_smooth": 0.3, "seed": s}
             for name, per_seed in values.items() for s, v in enumerate(per_seed)},
            orient="index")

    phases = sweep({"baseline": [0.05, 0.06, 0.07], "correlation_lneuron": [0.0, 0.02, 0.01]})
    recovery = pd.DataFrame.from_dict({f"cell_seed{s}": {"worst_error": 0.1, "seed": s}
                                       for s in range(3)}, orient="index")
    fit_runs = pd.DataFrame({"bits_per_spike": [0.06, 0.07, 0.065],
                             "psth_r_smooth": [0.30, 0.31, 0.32],
                             "single_trial_r": [0.5, 0.5, 0.5]})
    baselines = {"Poisson GLM": {"bits_per_spike": 0.059, "psth_r_smooth": 0.326},
                 "shrunk PSTH": {"bits_per_spike": 0.03, "psth_r_smooth": 0.298},
                 "trial end": {"pooled_metric": 0.9},
                 "resampled trials": {"single_trial_r": 0.2}}
    targets = parameters.SUPERIOR_COLLICULUS_TARGETS
    rows = {row.target.claim: row for row in sc_analysis.document_claims(
        phases, recovery, fit_runs, baselines, {"psth_r_smooth": 0.4}, targets)}
    gap = rows["The 3-minute fit beats the best baseline (Poisson GLM) on test bits/spike "
               "(difference)"]
    assert gap.values == pytest.approx([0.001, 0.011, 0.006])
    ratio = rows[targets["ceiling"].claim]
    assert ratio.values == pytest.approx([0.75, 0.775, 0.8])
    # the document found Poisson worse than its correlation loss: the change of the
    # correlation loss against the Poisson baseline, negated
    poisson = rows[targets["correlation_lneuron"].claim]
    assert poisson.values == pytest.approx([0.05, 0.04, 0.06])
    assert not any("Low rank" in claim for claim in rows)  # not in this sweep
    assert poisson.versions is None  # these tables carry no code versions
    longer = fit_runs.assign(steps=8000, bits_per_spike=[0.05, 0.06, 0.07])
    with_longer = {row.target.claim: row for row in sc_analysis.document_claims(
        phases, recovery, fit_runs, baselines, {"psth_r_smooth": 0.4}, targets,
        longer=longer)}
    row = with_longer["The 8000-step fit beats the best baseline (Poisson GLM) on test "
                      "bits/spike (difference)"]
    assert row.values == pytest.approx([-0.009, 0.001, 0.011])
    # the versions of both configurations' runs go with a paired row
    versioned = {row.target.claim: row for row in sc_analysis.document_claims(
        phases.assign(version=["a", "a", "a", "a", "b", "a"]), recovery, fit_runs, baselines,
        {"psth_r_smooth": 0.4}, targets)}
    assert versioned[targets["correlation_lneuron"].claim].stale
    assert len(with_longer) == len(rows) + 2
