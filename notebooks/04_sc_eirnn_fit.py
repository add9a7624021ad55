# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fitting a Dale's-law E-I RNN to a recorded superior-colliculus session
#
# The source document (`003`, "E-I RNN improvement plan, Phase 2") fits an excitatory-inhibitory
# recurrent network to neurons recorded in the superior colliculus (SC) of a monkey doing a
# delayed-saccade task. The fit has to match each neuron's trial-averaged response (its PSTH) and
# the variability of single trials. The document reports a best validation PSTH correlation of
# 0.36, lists the Phase-1 changes it tried (a Poisson or hybrid loss for the PSTHs, learnable
# time constants, all worse than its baseline) and plans five Phase-2 improvements: a Poisson
# distance for trial matching, learnable integration constants $\alpha$, a debugged learnable
# $\tau$, low-rank connectivity, and a cosine schedule and an activity regulariser.
#
# This chapter runs all of them on **a real recording** shipped with the book (`data/sc/`, MIT
# licence, provenance in `data/README.md`): 536 trials, 41 units, 219 bins of 25 ms. Its first
# concern is the ruler. A score means something only beside what it must beat, so every fit
# here is scored on **test trials** that were never used to train, stop or choose, with metrics
# that a constant or a trial-end mask cannot game, beside four baselines that involve no
# network (or, for the Poisson GLM, the field's standard encoding model) and beside the ceiling
# that the trials' own noise allows. Its layout: (1) the recording and its noise ceilings;
# (2) the rulers, and how far each can be gamed; (3) one fit, live, scored beside the
# baselines; (4) `python -m hdlib fit` at three minutes over seeds; (5) every Phase-1 and
# Phase-2 item of the document on these rulers; (6) learnable $\tau$ and synthetic teachers;
# (7) the claims, document's and book's apart; (8) fitting your own session, MATLAB or NWB.
#
# **The model.** Unit $i$ has state $x_i$ and rate $r_i$; over bins of $\Delta t = 25$ ms,
#
# $$
# x_t = (1-\alpha)\,x_{t-1}
#       + \alpha\,\bigl(W_{\mathrm{rec}}\, r_{t-1} + W_{\mathrm{in}}\, f(u)_t + b\bigr)
#       + \sqrt{\alpha}\,\sigma\,\xi_t,
# \qquad
# r_t = s\,\mathrm{softplus}(x_t) + r_0,
# $$
#
# with $\alpha = \Delta t/\tau$ per unit and $\xi_t$ standard normal. Dale's law: column $j$
# of $W_{\mathrm{rec}}$ (the outputs of unit $j$) is non-negative for an excitatory unit and
# non-positive for an inhibitory one, with no self-connections; units typed 1 in the file are
# excitatory, units typed 2 (putative interneurons) inhibitory. The noise is on while training
# and off in `eval()` mode: PSTHs and likelihoods are scored with it off, single-trial scores
# with it on, from their own seeded generator. Three choices of the book's default fit come
# from section 3 and 5 below: the task inputs $u$ enter through $f$, the same causal
# raised-cosine features the GLM uses (`hdlib.models.encoders`: time since each event, on a log
# time axis); the scale $s$ and baseline $r_0$ are one per neuron, started at its mean training
# rate; and $\alpha$ is learned per unit (the document's Improvement 2).
#
# **The losses.** The fit minimises
# $L = L_{\mathrm{neuron}} + c\,L_{\mathrm{trial}} + L_{\mathrm{reg}}$ [$+ w_p L_{\mathrm{pooled}}$].
# The default $L_{\mathrm{neuron}}$ is the Poisson negative log-likelihood of the recorded spike
# counts (rate $\times$ bin width) over recorded bins; the document's alternative is one minus
# the PSTH correlation per neuron and condition, plus a scale and a variance term.
# $L_{\mathrm{trial}}$ smooths each trial's population trajectory over 100 ms, matches model and
# recorded trials by entropic optimal transport (Sinkhorn, from POT) and takes the transport
# cost; $c$ sets its gradient norm to a fraction of $L_{\mathrm{neuron}}$'s (0 by default,
# measured in section 5). $L_{\mathrm{pooled}}$, one minus the published metric, is an option
# only. Every `eval_every` = 25 steps the model is scored on the *validation* trials by bits per
# spike and the best state is kept; that is the state reported.
#
# **The parameters.** `live_steps` is the length of the one fit this page runs live (the same
# as every stored run of section 5, so the two can be compared); the stored runs are read from
# the result folders below, written by `python -m hdlib sweep` from the sweep files named in
# the text.

# %% tags=["parameters"]
data_path = "../data/sc/rnn_export_Newton_08_14_2025_SC.mat"  # a session in the SC export schema
seed = 0  # training seed of the live fit (the three-way split does not depend on it)
live_steps = 600  # Adam steps of the live fit (the stored item runs use the same)
phases_dir = "../results/04_phases"  # stored runs of notebooks/sweeps/04_phases.yaml
fit_runs_dir = "../results/04_fit_3min"  # notebooks/sweeps/04_fit_3min.yaml
fit_long_dir = "../results/04_fit_long"  # notebooks/sweeps/04_fit_long.yaml
recovery_dir = "../results/04_recovery"  # stored runs of notebooks/sweeps/04_recovery.yaml
result_path = ""  # where a sweep run writes its metrics (empty: nothing written)

# %% tags=["hide-input"]
import math
import time

import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from hdlib import baselines as bl
from hdlib import validate
from hdlib.book import chapter_claims, claims, parameters, plots, results, sweeps, tables
from hdlib.datasets import sessions
from hdlib.fitters import sc_analysis, sc_fit

params = validate.parameters(globals(), parameters.SUPERIOR_COLLICULUS)
torch.set_num_threads(1)
plots.set_style()
plt = plots.plt
published = sc_analysis.PUBLISHED

# %% [markdown]
# ## 1. The recording
#
# `hdlib.datasets.sessions.load_session` reads a session file of the export schema, MATLAB v7.3
# (HDF5, where h5py sees every array with its dimensions reversed and strings as uint16 codes),
# older MATLAB (`scipy.io.loadmat`) or NWB (section 8), and checks every field's shape against
# the file's own counts. Bins after a trial's end are NaN in the file; the loader turns them into
# a mask and zeros. The trials are split three ways, stratified by condition (target identity x
# location), with a fixed split seed: **training** trials fit, **validation** trials stop the
# fit and make every choice (the kept state, the baselines' smoothing and penalties), **test**
# trials only report. Fits with different training seeds are scored on the same test trials.

# %%
session = sessions.load_session(data_path, seed=sc_fit.SPLIT_SEED,
                                val_fraction=sc_fit.VAL_FRACTION,
                                test_fraction=sc_fit.TEST_FRACTION)
sc_fit.check_session(session, data_path)
print(sc_analysis.describe_session(session))
counts = sc_analysis.condition_counts(session)
display(counts.style.format(precision=0).hide(axis="index"))
glue("n_trials", int(session.rates.shape[0]), display=False)
glue("n_units", int(session.n_neurons), display=False)
glue("n_test", len(session.test_idx), display=False)
glue("n_conditions", len(counts), display=False)
glue("fewest_test", int(counts["test trials"].min()), display=False)
glue("recorded_share", float(100 * session.mask.float().mean()), display=False)

# %% [markdown]
# The session holds {glue:text}`n_trials` trials of {glue:text}`n_units` units over
# {glue:text}`n_conditions` conditions, very unevenly: the rarest condition has
# {glue:text}`fewest_test` test trials of {glue:text}`n_test`. Trials differ in length, so only
# {glue:text}`recorded_share:.0f`% of the trial x bin grid is recorded.
#
# **How reliable is a PSTH here?** A model that predicted each neuron's true rate without error
# would still miss the held-out PSTH, which is an average of a few noisy trials. The ceiling
# (`hdlib.metrics.noise_ceiling`) estimates what such a noise-free perfect predictor reaches:
# split each condition's test trials into random halves, correlate the halves' PSTHs per
# neuron and condition ($r_h$, averaged over 20 splits), correct to the full trial count with
# Spearman-Brown, $\rho = 2r_h/(1+r_h)$; the expected $R^2$ of the true rate is $\rho$ and its
# expected $r$ is $\sqrt{\rho}$, averaged over (condition, neuron) pairs as the scores are. The
# test suite checks this on Poisson trials drawn from known rates. The figure shows, for three
# units (the E unit and the I unit with the highest ceiling, and the unit with the median one),
# the PSTHs for the face targets at the four locations, the spike-count raster they are averaged
# from (trials grouped by location, bins after a trial's end blank), and the ceiling of every
# unit.

# %% mystnb={"image": {"alt": "PSTHs of three recorded units for face targets at four locations with the spike-count raster of every face-target trial below each, and a histogram of the per-unit split-half ceilings of excitatory and inhibitory units"}} tags=["hide-input"]
test = session.trials(session.test_idx)
unit_ceiling = sc_analysis.unit_ceilings(test["rates"], test["mask"], test["condition"],
                                         seed=seed)
order = torch.argsort(unit_ceiling, descending=True).tolist()
shown_units = [next(u for u in order if session.is_excitatory[u]), order[len(order) // 2],
               next(u for u in order if not session.is_excitatory[u])]
sc_analysis.recording_figure(session, shown_units, unit_ceiling)
plt.show()
ceiling = sc_fit.ceilings(session, session.test_idx)
for key in ("psth_r", "psth_r_smooth", "psth_r2_smooth"):
    glue(f"ceiling_{key}", ceiling[key], display=False)
glue("best_unit_ceiling", float(unit_ceiling.max()), display=False)
glue("median_spikes", float((session.rates[session.mask] * session.bin_size_ms / 1000)
                            .mean(-1).median()), display=False)

# %% [markdown]
# On raw 25 ms bins a perfect predictor would reach a per-condition PSTH correlation of only
# {glue:text}`ceiling_psth_r:.2f` on these test trials; smoothed with a Gaussian of 50 ms (sd),
# {glue:text}`ceiling_psth_r_smooth:.2f` ($R^2$ {glue:text}`ceiling_psth_r2_smooth:.2f`). The
# best unit reaches {glue:text}`best_unit_ceiling:.2f`. In a median recorded bin a neuron fires
# {glue:text}`median_spikes:.2f` spikes on average, and a condition has a handful of test
# trials: most
# per-condition PSTHs are mostly noise, and every score of a PSTH below is read against this
# ceiling.
#
# ## 2. The rulers, and what they must beat
#
# Every prediction of the test trials is scored by `hdlib.metrics.score`, on recorded bins only:
#
# * **bits per spike**: the Poisson log-likelihood of the recorded counts under the predicted
#   rates, minus that under each neuron's constant mean training rate, per spike, in bits. It
#   needs the right rates in absolute terms, and each neuron's mean training rate scores
#   exactly 0;
# * **per-condition PSTH $r$ and $R^2$**, raw and smoothed (50 ms), beside their ceilings;
# * **single-trial** scores: the document's trial-matching cost $L_{\mathrm{trial}}$ and the
#   correlation of one-to-one matched trials, beside recorded training trials of the same
#   conditions resampled in place of a model;
# * **selectivity**: for each task factor (reward, probability, identity, salience, location),
#   each neuron's normalised rate difference $(a-b)/(a+b)$ in the target epoch between trials
#   of one level ($a$) and the others ($b$), correlated across neurons between recording and
#   prediction, beside the split-half reliability of the recorded selectivity;
# * the **published metric** (`hdlib.losses.psth_corr_pooled`, as `data/README.md` defines it:
#   conditions pooled, all 219 bins including those after a trial's end) as one column only.
#
# The baselines (`hdlib.baselines.fit_baselines`) are fitted on the training trials, with every
# choice made on the validation trials: each neuron's **mean rate**; the training **PSTH pooled**
# over conditions; the training **PSTH per condition shrunk** toward the pooled one, both
# smoothed, weight and smoothing chosen by validation likelihood; and a **Poisson GLM** of each
# neuron on the task inputs, each convolved with 8 causal raised-cosine bases, with an L2 penalty
# per neuron chosen on validation trials. The GLM minimises scikit-learn's `PoissonRegressor`
# objective, solved for all neurons and penalties at once with torch's L-BFGS (a test checks it
# against scikit-learn; one batched solve takes seconds where a loop over neurons takes
# minutes). The **trial-end** predictor, each neuron's mean rate while the trial is recorded and
# 0 after, knows nothing but when trials end.

# %%
fitted = bl.fit_baselines(session)
baselines = sc_fit.score_baselines(session, fitted, session.test_idx)
report = {"baselines": baselines, "ceiling": ceiling}
columns = ["bits_per_spike", "psth_r_smooth", "psth_r2_smooth", "psth_r", "single_trial_r",
           "pooled_metric", "selectivity_reward", "selectivity_salience",
           "selectivity_location", "selectivity_identity"]
tables.show(sc_fit.score_table(report)[columns])
glue("trial_end_pooled", baselines["trial end"]["pooled_metric"], display=False)
glue("published_pooled", published["psth_corr_pooled"], display=False)
for name, key in (("glm", "Poisson GLM"), ("shrunk", "shrunk PSTH"), ("pooled", "pooled PSTH")):
    for metric in ("bits_per_spike", "psth_r_smooth", "pooled_metric"):
        glue(f"{name}_{metric}", baselines[key][metric], display=False)
glue("glm_fraction", baselines["Poisson GLM"]["psth_r_smooth"] / ceiling["psth_r_smooth"],
     display=False)
glue("shrink_weight", fitted.shrink_weight, display=False)
glue("best_bits_name", sc_fit.best_baseline(baselines, "bits_per_spike"), display=False)
glue("best_shape_name", sc_fit.best_baseline(baselines, "psth_r_smooth"), display=False)
glue("glm_r2_smooth", baselines["Poisson GLM"]["psth_r2_smooth"], display=False)
glue("shrink_smooth", fitted.shrink_smooth_ms, display=False)

# %% [markdown]
# **The published metric can be gamed.** The trial-end predictor scores
# {glue:text}`trial_end_pooled:.2f` on it, far above the published figure of the recording
# lab's own model ({glue:text}`published_pooled`), while its bits per spike are 0 and it has no
# PSTH shape at all: the pooled PSTH of the data falls toward zero as trials end, and that fall
# is most of its variance. The GLM scores only {glue:text}`glm_pooled_metric:.2f` there, below the
# trial-end predictor, although it predicts the test trials better than any other baseline in
# bits per spike and in PSTH shape. So no verdict below rests on the pooled metric.
#
# **The bar.** On the honest scores the GLM is the best baseline (by bits per spike
# {glue:text}`best_bits_name`, by smoothed $r$ {glue:text}`best_shape_name`):
# {glue:text}`glm_bits_per_spike:.3f` bits/spike and a smoothed PSTH $r$ of
# {glue:text}`glm_psth_r_smooth:.3f`, {glue:text}`glm_fraction:.0%` of the ceiling. The shrunk
# PSTH (weight {glue:text}`shrink_weight` on the condition's own PSTH, smoothing
# {glue:text}`shrink_smooth:g` ms) reaches {glue:text}`shrunk_bits_per_spike:.3f` and
# {glue:text}`shrunk_psth_r_smooth:.3f`; the pooled PSTH {glue:text}`pooled_bits_per_spike:.3f`
# and {glue:text}`pooled_psth_r_smooth:.3f`. The smoothed $R^2$ (sums of squares pooled over
# conditions and neurons) is {glue:text}`glm_r2_smooth:.2f` for the GLM against a ceiling of
# {glue:text}`ceiling_psth_r2_smooth:.2f`: $R^2$ also charges every error of level and gain,
# which the correlation forgives, so the verdicts on shape use the correlation beside its
# ceiling, and the verdicts on level use bits per spike.
#
# ## 3. One fit, live
#
# The fit (`hdlib.fitters.sc_fit.fit`, on the book's one training engine `hdlib.train`) takes
# {glue:text}`live_steps` Adam steps on minibatches of {glue:text}`batch_size` training trials
# drawn by the step's seeded generator, with the gradient clipped to norm 1, from seed
# {glue:text}`seed`. A non-finite loss or gradient would roll the model back to its last good
# state and halve the learning rate; the state kept is the one with the best validation bits
# per spike. It is then scored on the test trials, beside the baselines.

# %%
config = sc_fit.make_config(steps=live_steps, seed=seed)
start = time.process_time()
model, history = sc_fit.fit(session, config, progress=False)
live_cpu = time.process_time() - start
live = sc_fit.evaluate(model, session, session.test_idx, seed=seed)
live_table = sc_fit.score_table({**report, "fit": live})[columns]
tables.show(live_table)
glue("live_steps", live_steps, display=False)
glue("seed", seed, display=False)
glue("batch_size", config.batch_size, display=False)
glue("live_cpu", float(live_cpu), display=False)
glue("live_best_step", history["best_step"], display=False)
glue("live_rollbacks", len(history["rollbacks"]), display=False)
for metric in ("bits_per_spike", "psth_r_smooth", "single_trial_r", "pooled_metric"):
    glue(f"live_{metric}", live[metric], display=False)
glue("resampled_single_trial_r", baselines["resampled trials"]["single_trial_r"],
     display=False)
for factor in ("identity", "location"):
    glue(f"{factor}_reliability", ceiling[f"selectivity_{factor}"], display=False)

# %% mystnb={"image": {"alt": "Training loss per step and validation bits per spike at every check of the live fit, with the kept state marked"}} tags=["hide-input"]
sc_analysis.training_figure(history)
plt.show()

# %% [markdown]
# After {glue:text}`live_steps` steps ({glue:text}`live_cpu:.0f` s of one core; best
# validation state at step {glue:text}`live_best_step`, {glue:text}`live_rollbacks` rollbacks)
# the fit scores {glue:text}`live_bits_per_spike:.3f` bits/spike on the test trials and a
# smoothed PSTH $r$ of {glue:text}`live_psth_r_smooth:.3f`, against the GLM's
# {glue:text}`glm_bits_per_spike:.3f` and {glue:text}`glm_psth_r_smooth:.3f`. Its single-trial
# correlation, {glue:text}`live_single_trial_r:.2f`, is above that of resampled recorded
# trials ({glue:text}`resampled_single_trial_r:.2f`), but this reference is weak: a smooth
# prediction correlates better with a noisy trial than another noisy trial does. The figure
# below shows the test PSTHs of the best and the median neuron (by the fit's smoothed $r$) in
# the two conditions with most trials, beside the best baseline's; the one after, each
# neuron's selectivity for each factor, recorded against predicted.

# %% mystnb={"image": {"alt": "Smoothed test-trial PSTHs of the recorded best and median neurons in two conditions, with the fitted network's and the best baseline's predictions"}} tags=["hide-input"]
sc_fit.psth_figure(model, session, fitted)
plt.show()

# %% mystnb={"image": {"alt": "Recorded against predicted selectivity of every neuron for each task factor, for the fitted network and the Poisson GLM, with their correlations across neurons"}} tags=["hide-input"]
sc_analysis.selectivity_figure(model, session, fitted, session.test_idx)
plt.show()

# %% [markdown]
# Selectivity is measured in the 400 ms after target onset. It is only as reliable as the test
# trials allow: the split-half reliability of the recorded selectivity is in the `ceiling` row
# of the tables above (identity {glue:text}`identity_reliability:.2f`, location
# {glue:text}`location_reliability:.2f`), and a factor with a low one cannot be matched by any
# model on these trials. A baseline that ignores the condition (the pooled PSTH) sets the floor
# of what timing alone gives.
#
# ## 4. `python -m hdlib fit` at three minutes, over seeds (stored runs)
#
# The live fit is one seed at book scale. The fit command's defaults were run for three minutes
# of one core each, seeds by the sequential design, as `python -m hdlib fit SESSION --minutes 3` does,
# through the sweep command (`OMP_NUM_THREADS=1 python -m hdlib sweep -f
# notebooks/sweeps/04_fit_3min.yaml -o results/04_fit_3min --workers 2`), scored on the same
# test trials. The baselines are deterministic given the split, so they are one value each.

# %%
fit_runs = results.load_results(fit_runs_dir)
print(results.describe_provenance(fit_runs))
tables.show(fit_runs[["steps", "best_step", "rollbacks"] + columns])
gaps = {}
for metric in ("bits_per_spike", "psth_r_smooth"):
    best = sc_fit.best_baseline(baselines, metric)
    gap = fit_runs[metric] - baselines[best][metric]
    glue(f"runs_{metric}_mean", float(fit_runs[metric].mean()), display=False)
    glue(f"runs_{metric}_gap", float(gap.mean()), display=False)
    glue(f"runs_{metric}_best", best, display=False)
glue("runs_steps", float(fit_runs["steps"].mean()), display=False)
glue("runs_n", len(fit_runs), display=False)
glue("runs_best_step", float(fit_runs["best_step"].mean()), display=False)
glue("runs_fraction", float(fit_runs["psth_r_smooth"].mean() / ceiling["psth_r_smooth"]),
     display=False)

# %% [markdown]
# In three minutes a fit takes about {glue:text}`runs_steps:.0f` steps, and its best validation
# state comes at step {glue:text}`runs_best_step:.0f` on average. Over the {glue:text}`runs_n` seeds it
# reaches {glue:text}`runs_bits_per_spike_mean:.3f` bits/spike, {glue:text}`runs_bits_per_spike_gap:+.3f`
# against the best baseline ({glue:text}`runs_bits_per_spike_best`), and a smoothed PSTH $r$ of
# {glue:text}`runs_psth_r_smooth_mean:.3f`, {glue:text}`runs_psth_r_smooth_gap:+.3f` against
# the best baseline ({glue:text}`runs_psth_r_smooth_best`); that is
# {glue:text}`runs_fraction:.0%` of the smoothed ceiling. The claims table (section 7) decides
# each of these with its interval over seeds. Section 5 measures, one at a time, what each
# ingredient of the default contributes (the GLM's temporal features as inputs, a rate scale
# per neuron, learnable $\alpha$) and what else was tried to close the gap (an initialisation
# from the GLM's weights, a 3x learning rate, a 10x weight decay, 128 trials per step).
#
# ### A longer budget (stored runs)
#
# The same defaults were run for 8000 steps ({glue:text}`long_ratio:.1f` times the steps of a
# three-minute run; {glue:text}`long_n` seeds, `notebooks/sweeps/04_fit_long.yaml`, stored in
# `results/04_fit_long`), to see whether the gap in PSTH shape closes with time alone.

# %%
fit_long = results.load_results(fit_long_dir)
print(results.describe_provenance(fit_long))
tables.show(fit_long[["steps", "best_step"] + columns])
for metric in ("bits_per_spike", "psth_r_smooth"):
    best = sc_fit.best_baseline(baselines, metric)
    glue(f"long_{metric}_mean", float(fit_long[metric].mean()), display=False)
    glue(f"long_{metric}_gap", float((fit_long[metric] - baselines[best][metric]).mean()),
         display=False)
glue("long_best_step", float(fit_long["best_step"].mean()), display=False)
glue("long_n", len(fit_long), display=False)
glue("long_ratio", float(fit_long["steps"].mean() / fit_runs["steps"].mean()), display=False)

# %% [markdown]
# At 8000 steps the fit reaches {glue:text}`long_bits_per_spike_mean:.3f` bits/spike
# ({glue:text}`long_bits_per_spike_gap:+.3f` against the best baseline) and a smoothed PSTH $r$
# of {glue:text}`long_psth_r_smooth_mean:.3f` ({glue:text}`long_psth_r_smooth_gap:+.3f`), with
# its best validation state at step {glue:text}`long_best_step:.0f` on average; the claims
# table decides both comparisons with their intervals.
#
# ## 5. The document's items on the recording
#
# Every Phase-1 and Phase-2 item of the document is one configuration of
# `notebooks/sweeps/04_phases.yaml`, changing one thing against a fixed baseline (the fit
# command's defaults without learnable $\alpha$, spelled out in the file), on the seeds of the
# sequential design (three, then more for the configurations behind an undecided row), at
# {glue:text}`live_steps` steps, every run keeping its best validation state and scored on the
# test trials. Two rows ask what the network needs (raw task inputs instead of the GLM's
# features; one shared rate scale). Phase 1: the document's correlation loss for the PSTHs,
# hybrid losses (0.3, 0.5), the published pipeline's pooled term, and learnable $\tau$ per
# population or per neuron **in the document's own form**, clamped to [10, 200] ms. Phase 2:
# $L_{\mathrm{trial}}$ on (c = 0.5) with its Euclidean or Poisson distance; learnable $\alpha$
# (scalar, population, neuron); the document's debugging plan for $\tau$ (frozen, and a soft
# clamp through a sigmoid); low rank 10/20/30/50; cosine schedules with warm-up 0 and 50 steps;
# activity regularisation 0.01 and 0.001. The table describes the runs: the mean over seeds of
# test bits/spike, smoothed PSTH $r$ and the published metric with their intervals (at the level
# of one look of the introduction's rule), and the change of bits/spike against the baseline
# paired by seed. It decides nothing: the document's items are rows of the claims table
# (section 7), decided there with the sequential seeds and Holm's correction over the whole
# chapter. The last four configurations (the GLM's weights as the start, a 3x learning rate, a
# 10x weight decay, 128 trials per step) are this book's attempts to close the gap to the GLM,
# not claims of the document, and stay at three seeds.

# %%
phases = results.load_results(phases_dir)
print(results.describe_provenance(phases))
expected = list(dict.fromkeys(name.rsplit("_seed", 1)[0]
                              for name in sweeps.load_sweep("sweeps/04_phases.yaml")[1]))
phase_table = sc_analysis.paired_table(phases)
phase_table = phase_table.reindex([name for name in expected if name in phase_table.index])
missing = sc_analysis.missing_configurations(phases, expected)
print(f"configurations with fewer than 3 stored seeds: {', '.join(missing) or 'none'}")
tables.show(phase_table)
shape_table = sc_analysis.paired_table(phases, metrics=("psth_r_smooth",))
glue("base_bits", float(phase_table.loc["baseline", "bits_per_spike"]), display=False)
glue("base_shape", float(phase_table.loc["baseline", "psth_r_smooth"]), display=False)

# %% mystnb={"image": {"alt": "Test bits per spike and smoothed PSTH correlation of every configuration of the document, one point per seed and a bar for the mean, with the Poisson GLM as a dashed line"}} tags=["hide-input"]
sc_analysis.sweep_points_figure(phases, list(phase_table.index), {
    "bits_per_spike": ("bits/spike", ("Poisson GLM",
                                      baselines["Poisson GLM"]["bits_per_spike"])),
    "psth_r_smooth": ("smoothed PSTH r", ("Poisson GLM",
                                          baselines["Poisson GLM"]["psth_r_smooth"]))})
plt.show()

for name in ("correlation_lneuron", "pooled_term", "ltrial_on", "raw_inputs", "scalar_gain",
             "learnable_alpha_neuron", "init_from_glm", "learning_rate_3x",
             "weight_decay_10x", "batch_128"):
    stored = name in phase_table.index  # NaN for a configuration not (yet) stored
    glue(f"{name}_bits", float(phase_table.loc[name, "change"]) if stored else math.nan,
         display=False)
    glue(f"{name}_shape", float(shape_table.loc[name, "change"]) if stored else math.nan,
         display=False)
    glue(f"{name}_pooled", float(phase_table.loc[name, "pooled_metric"]
                                 - phase_table.loc["baseline", "pooled_metric"])
         if stored else math.nan, display=False)

# %% [markdown]
# At {glue:text}`live_steps` steps the baseline reaches {glue:text}`base_bits:.3f` bits/spike and
# a smoothed PSTH $r$ of {glue:text}`base_shape:.3f`. The changes below are means of the paired
# per-seed changes; the claims table of section 7 says which of them are decided.
#
# The document's Phase 1 found the Poisson loss worse than its correlation loss (the rows
# "Poisson L_neuron hurts the fit" and "Hybrid loss ... hurts the fit" of section 7 decide this
# on the held-out trials); measured on held-out likelihood, the correlation loss changes
# bits/spike by {glue:text}`correlation_lneuron_bits:+.3f` (it leaves the rate scale free, so its
# rates are wrong in absolute terms) and the smoothed $r$ by
# {glue:text}`correlation_lneuron_shape:+.3f`. The published pipeline's pooled term moves the
# published metric by {glue:text}`pooled_term_pooled:+.3f`, bits/spike by
# {glue:text}`pooled_term_bits:+.3f` and shape by {glue:text}`pooled_term_shape:+.3f`: it
# trains the network to fall silent when trials end. The document's $L_{\mathrm{trial}}$ changes
# bits/spike by {glue:text}`ltrial_on_bits:+.3f`. Feeding the raw task inputs instead of their
# temporal features changes bits/spike by {glue:text}`raw_inputs_bits:+.3f`. The document's own
# Phase-1 table is for another session (1043 trials, 54 units), so only directions compare.
#
# **What the network needs** (paired changes of bits/spike, then of smoothed $r$, against the
# baseline): raw inputs {glue:text}`raw_inputs_bits:+.3f` / {glue:text}`raw_inputs_shape:+.3f`;
# one shared rate scale {glue:text}`scalar_gain_bits:+.3f` /
# {glue:text}`scalar_gain_shape:+.3f`; learnable $\alpha$ per unit (the fit command's default)
# {glue:text}`learnable_alpha_neuron_bits:+.3f` / {glue:text}`learnable_alpha_neuron_shape:+.3f`;
# the GLM's weights as the start {glue:text}`init_from_glm_bits:+.3f` /
# {glue:text}`init_from_glm_shape:+.3f`; a 3x learning rate
# {glue:text}`learning_rate_3x_bits:+.3f` / {glue:text}`learning_rate_3x_shape:+.3f`; a 10x
# weight decay {glue:text}`weight_decay_10x_bits:+.3f` / {glue:text}`weight_decay_10x_shape:+.3f`;
# 128 trials per step {glue:text}`batch_128_bits:+.3f` / {glue:text}`batch_128_shape:+.3f`
# (at equal steps, so twice the data per step). A three-minute run is still improving on
# validation near its end (section 4: best state at step {glue:text}`runs_best_step:.0f` of
# {glue:text}`runs_steps:.0f`); the 8000-step runs of section 4 measure what a longer budget
# alone buys in PSTH shape ({glue:text}`long_psth_r_smooth_gap:+.3f` against the GLM). Beyond
# time: hidden units, a penalty tuned per neuron as the GLM's is, or a link function closer to
# the GLM's exponential.
#
# **Learnable $\tau$.** The document's hypotheses for its collapse were a clamp that blocks the
# gradient, a broadcasting error, the noise scaled by the mean $\alpha$ and a device mismatch.
# Measured on this implementation (`sc_analysis.diagnose_time_constants`, one batch of 96
# training trials, the document's correlation loss):

# %%
diagnosis = sc_analysis.diagnose_time_constants(
    session.is_excitatory, session.trials(session.train_idx[:96]), seed=seed,
    dt=session.bin_size_ms)
display(diagnosis.table())
glue("reversal_50", float(100 * diagnosis.reversals[50.0]), display=False)
glue("reversal_20", float(100 * diagnosis.reversals[20.0]), display=False)

# %% [markdown]
# Inside its bounds the clamp passes the gradient unchanged, and only a parameter pushed past a
# bound gets exactly zero; $\alpha$ has one entry per unit and broadcasts over trials; the noise
# form changes the variances, not the mean dynamics; everything is on one device. None of these
# can collapse a fit while $\tau$ stays put. What can break the dynamics is the document's lower
# bound: $\tau = 10$ ms with 25 ms bins makes $\alpha = 2.5 > 1$, so an update overshoots its
# target; at $\tau_I = 20$ ms the inhibitory rates already reverse direction in
# {glue:text}`reversal_20:.0f`% of steps (against {glue:text}`reversal_50:.0f`% at 50 ms). The
# rows of section 5 run the document's clamp to [10, 200] ms as written, and its soft clamp;
# the claims table says whether either breaks training on the honest scores.
#
# ## 6. Synthetic teachers: can a fit recover the time constants?
#
# A recording has no ground truth for $\tau$. A synthetic session does: `sc_teacher` simulates
# an `EIRNN` teacher ($\tau_E$ = {glue:text}`teacher_tau_e:.0f` ms, $\tau_I$ =
# {glue:text}`teacher_tau_i:.0f` ms, 41 E and 13 I units as in the document's session, Poisson
# spikes, the task's inputs and trial ends) and writes it in the same file schema. A fit with
# population-level learnable $\alpha$ starts at $\tau_E$ = {glue:text}`start_tau_e:.0f` ms and
# $\tau_I$ = {glue:text}`start_tau_i:.0f` ms. The `notebooks/sweeps/04_recovery.yaml` design
# crosses 400 or 1043 trials with the time constants' learning rate at 1x or 10x that of the
# other parameters, seeds by the sequential design, 200 steps each (stored in `results/04_recovery`). These
# runs predate the Poisson default; the sweep file spells out the options they used (the
# document's correlation loss, raw inputs), and the question, whether $\tau$ is recovered, does
# not depend on the PSTH ruler.

# %%
recovery = results.load_results(recovery_dir)
print(results.describe_provenance(recovery))
recovery = sc_analysis.recovery_errors(recovery)
start_taus = sc_fit.build_network(torch.tensor([True, False]), 14, session.bin_size_ms,
                                  sc_fit.make_config(learnable_alpha="population")).tau.detach()
glue("start_tau_e", float(start_taus[0]), display=False)
glue("start_tau_i", float(start_taus[1]), display=False)
glue("teacher_tau_e", float(recovery["teacher_tau_e_ms"].iloc[0]), display=False)
glue("teacher_tau_i", float(recovery["teacher_tau_i_ms"].iloc[0]), display=False)
recovery_summary = sc_analysis.recovery_summary(recovery)
display(recovery_summary.style.format(precision=3))

# %% mystnb={"image": {"alt": "Fitted excitatory and inhibitory time constants of every run of the two-by-two recovery design, one point per seed, with the teacher's values as dashed lines"}} tags=["hide-input"]
sc_analysis.recovery_figure(recovery)
plt.show()
effect = sc_analysis.main_effects(recovery)
glue("effect_trials", effect["trials"], display=False)
glue("effect_lr", effect["lr"], display=False)
glue("n_recovery_runs", len(recovery), display=False)
for key in ("e", "i"):
    glue(f"tau_{key}_low", float(recovery[f"tau_{key}_ms"].min()), display=False)
    glue(f"tau_{key}_high", float(recovery[f"tau_{key}_ms"].max()), display=False)
glue("recovery_tolerance", parameters.SUPERIOR_COLLICULUS_TARGETS["recovery"].threshold,
     display=False)

# %% [markdown]
# The main effect of the trial count (1043 against 400 trials, averaged over both learning
# rates) on the worse of the two relative errors is {glue:text}`effect_trials:+.2f`; the main
# effect of the 10x learning rate (averaged over both trial counts) is
# {glue:text}`effect_lr:+.2f`. Negative is better. Over all {glue:text}`n_recovery_runs` runs
# the fitted $\tau_E$ ends between {glue:text}`tau_e_low:.0f` and {glue:text}`tau_e_high:.0f`
# ms, and $\tau_I$ between {glue:text}`tau_i_low:.0f` and {glue:text}`tau_i_high:.0f` ms. The
# claims table states, cell by cell, whether both time constants end within
# {glue:text}`recovery_tolerance:.0%` of the teacher's.
#
# ## 7. What the document claims, what the book targets, and what we measured
#
# Each row states a threshold, fixed before the runs in
# `hdlib.book.parameters.SUPERIOR_COLLICULUS_TARGETS`, and is decided by the book's one rule
# (`hdlib.book.claims`, stated in the introduction): the row's p-value over the seeds,
# corrected for the looks of the sequential design and adjusted by Holm over the whole table,
# must be at most 0.05, and the mean's side decides between *holds* and *fails*. The `code`
# column is the version of the measuring code the row's runs share. Rows sourced "book" are
# targets this book sets (beating the best baseline on the test trials, 0.6 of the smoothed
# ceiling, selectivity matches of 0.5); rows sourced "003" are the document's claims, each
# decided by the paired per-seed change of test bits/spike against the baseline (the loss rows
# against the document's own correlation loss; "breaks training" as a relative loss of more
# than half). The published metric decides nothing.

# %%
claim_rows = chapter_claims.superior_colliculus(
    {"04_phases": phases, "04_recovery": recovery, "04_fit_3min": fit_runs,
     "04_fit_long": fit_long}, baselines, ceiling)
table = claims.evidence_table(claim_rows)
display(claims.styled(table))
glue("n_claims", len(table), display=False)
glue("n_holds", int((table["verdict"] == "holds").sum()), display=False)
glue("n_fails", int((table["verdict"] == "fails").sum()), display=False)
glue("n_due", len(claims.undecided(claim_rows)), display=False)
glue("seed_cap", claims.LOOKS[-1], display=False)

# %% [markdown]
# Of the {glue:text}`n_claims` rows, {glue:text}`n_holds` hold and {glue:text}`n_fails` fail
# once their p-values are adjusted together; the rest are undecided on the stored seeds. With
# this many rows Holm's correction asks for a small p of every row, so a change that looks
# clear on three seeds in the paired table above can stay undecided here. The sweeps run the
# sequential design of the introduction: every configuration on three seeds, then the next
# look's seeds for the configurations behind an undecided row
# (`chapter_claims.undecided_configurations`, which scores the rows against this session's
# baselines exactly as this table does). The `n` column says how far each row has gone: a
# row left undecided at {glue:text}`seed_cap` seeds has reached the cap and stays undecided;
# rows undecided below the cap are due more seeds from `make results`, and there are
# {glue:text}`n_due` of them.

# %% [markdown]
# ## 8. Fitting your own session
#
# `python -m hdlib fit SESSION` runs all of the above on any session of the export schema:
# MATLAB (v7.3 or older) or **NWB**. An NWB file is read through a YAML mapping that names the
# columns of its units and trials tables (spike times, cell type, alignment event, trial end,
# the five task factors, the event times that make the input channels); the commented default,
# `hdlib/datasets/nwb_mapping.yaml`, reads what `python -m hdlib export-nwb SESSION.mat OUT.nwb`
# writes, and `--mapping MINE.yaml` adapts it to a lab's own names. The command checks the file
# before writing anything (a missing factor, a single condition, fewer than 20 trials, a column
# the mapping names but the file lacks: one line naming it), fits the baselines (`--baselines-only`
# stops there, in seconds), fits the network for `--steps` or `--minutes` while keeping its best
# validation state in `model.pt`, survives divergence and Ctrl-C, and prints one table of the
# baselines, the fit and the ceiling on its test trials; `metrics.json` keeps the trial indices
# of every split, so that anyone can re-score a saved model.

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
claims.print_evidence(table)
print(f"trial-end predictor beats the published figure: "
      f"{baselines['trial end']['pooled_metric'] > published['psth_corr_pooled']}")
print(f"best baseline on bits/spike: {sc_fit.best_baseline(baselines, 'bits_per_spike')}")

# %%
results.write_result(result_path, {
    "bits_per_spike": live["bits_per_spike"], "psth_r_smooth": live["psth_r_smooth"],
    "single_trial_r": live["single_trial_r"], "pooled_metric": live["pooled_metric"],
    "loss_curve": history["loss"]}, params)

# %% [markdown]
# The line below records how this page was made: the commit and the hash of `hdlib` it ran
# on, the versions of Python, PyTorch and NumPy, the thread count and the running time.

# %% tags=["remove-input"]
print(results.provenance_line())
