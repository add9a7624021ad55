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
# $\tau$, low-rank connectivity, and a cosine schedule and an activity regulariser left over
# from Phase 1.
#
# This chapter runs all of them on **a real recording** shipped with the book
# (`data/sc/`, MIT licence, provenance in `data/README.md`): 536 trials, 41 units, 219 bins of
# 25 ms, from the same lab's public export. Its layout: (1) the recording and how reliable its
# PSTHs are; (2) a baseline fit, scored with the book's metric and the published pipeline's
# metric side by side, against the lab's own published figure; (3) where the book's default fit
# comes from; (4) every Phase-1 and Phase-2 item of the document on this recording, three seeds
# each at equal steps, paired by seed; (5) synthetic sessions from a known teacher network, the
# only place where a fitted time constant can be checked against the truth; (6) the claims.
#
# **The model.** Unit $i$ has state $x_i$ and rate $r_i$; over bins of $\Delta t = 25$ ms,
#
# $$
# x_t = (1-\alpha)\,x_{t-1}
#       + \alpha\,\bigl(W_{\mathrm{rec}}\, r_{t-1} + W_{\mathrm{in}}\, u_t + b\bigr)
#       + \sqrt{\alpha}\,\sigma\,\xi_t,
# $$
#
# $$
# r_t = s\,\mathrm{softplus}(x_t) + r_0,
# $$
#
# with $\alpha = \Delta t/\tau$ per unit and $\xi_t$ standard normal. Dale's law: column $j$ of
# $W_{\mathrm{rec}}$ (the outputs of unit $j$) is non-negative for an excitatory unit and
# non-positive for an inhibitory one, with no self-connections. Units typed 1 in the file
# ("classic") are excitatory, units typed 2 (putative interneurons) inhibitory. The noise is on
# while training and off in `eval()` mode; every score below asks for it explicitly, with its
# own seeded generator, because the published metric was measured with it.
#
# **The losses.** The fit minimises
# $L = L_{\mathrm{neuron}} + w_p L_{\mathrm{pooled}} + c\,L_{\mathrm{trial}} + L_{\mathrm{reg}}$.
# $L_{\mathrm{neuron}}$ is one minus the PSTH correlation per neuron and
# condition over recorded bins, plus $0.1\times$ a scale term and $0.05\times$ a variance term.
# $L_{\mathrm{pooled}}$ is one minus the published metric (defined below). $L_{\mathrm{trial}}$
# smooths each trial's population-average trajectory over 100 ms, matches model and recorded
# trials by entropic optimal transport (Sinkhorn, from POT) and takes the transport cost; $c$
# sets its gradient norm to half that of $L_{\mathrm{neuron}}$. $L_{\mathrm{reg}}$ is a small
# weight decay.
#
# **The parameters.** `live_steps` is the length of the one fit this page runs live (the same
# as every stored run, so the two can be compared); the stored runs are read from the four
# result folders, written by `python -m hdlib sweep` from the sweep files named below.

# %% tags=["parameters"]
data_path = "../data/sc/rnn_export_Newton_08_14_2025_SC.mat"  # a session in the SC export schema
seed = 0  # training seed of the live fit (the validation split does not depend on it)
live_steps = 200  # Adam steps of the live fit (the stored runs use the same)
phases_dir = "../results/04_phases"  # stored runs of notebooks/sweeps/04_phases.yaml
phases_full_dir = "../results/04_phases_full"  # notebooks/sweeps/04_phases_full.yaml
search_dir = "../results/04_search"  # stored runs of notebooks/sweeps/04_search.yaml
recovery_dir = "../results/04_recovery"  # stored runs of notebooks/sweeps/04_recovery.yaml
recovery_tolerance = 0.25  # relative error allowed for a recovered time constant
family_alpha = 0.05  # family-wise error rate of the Holm correction
result_path = ""  # where a sweep run writes its metrics (empty: nothing written)

# %% tags=["hide-input"]
import math
import time

import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from hdlib import losses as fl
from hdlib import validate
from hdlib.book import parameters, plots, results, sweeps
from hdlib.book.claims import evidence_table, print_evidence
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
# (HDF5, where h5py sees every array with its dimensions reversed and strings as uint16 codes)
# or older (`scipy.io.loadmat`), and checks every field's shape against the file's own counts.
# Bins after a trial's end are NaN in the file; the loader turns them into a mask and zeros. The
# trials are split into training and validation sets stratified by condition (target identity x
# location), with a split seed that is fixed: fits with different training seeds are scored on
# the same validation trials.

# %%
session = sessions.load_session(data_path, seed=sc_fit.SPLIT_SEED,
                                val_fraction=sc_fit.VAL_FRACTION)
print(sc_analysis.describe_session(session))
counts = sc_analysis.condition_counts(session)
display(counts.style.format(precision=0).hide(axis="index"))
glue("n_trials", int(session.rates.shape[0]), display=False)
glue("n_units", int(session.n_neurons), display=False)
glue("n_val", len(session.val_idx), display=False)
glue("n_conditions", len(counts), display=False)
glue("fewest_val", int(counts["validation trials"].min()), display=False)
glue("recorded_share", float(100 * session.mask.float().mean()), display=False)

# %% [markdown]
# The session holds {glue:text}`n_trials` trials of {glue:text}`n_units` units over
# {glue:text}`n_conditions` conditions, very unevenly: the rarest condition has
# {glue:text}`fewest_val` validation trials. Trials differ in length, so only
# {glue:text}`recorded_share:.0f`% of the trial x bin grid is recorded.
#
# **How reliable is a PSTH here?** Split each condition's validation trials into random halves,
# correlate the halves' PSTHs ($r$, per unit, averaged over conditions and 20 splits), correct
# to the full trial count (Spearman-Brown, $2r/(1+r)$) and take the square root: the
# correlation a noise-free model would reach with the recorded PSTH, the **ceiling** of the
# book's metric. The figure shows, for three units (the E unit and the I unit with the highest
# ceiling, and the unit with the median ceiling), the PSTHs for the face targets at the four
# locations and, below, the raster they are averaged from: the spike count of every bin of
# every face-target trial, trials grouped by location (red lines), bins after a trial's end
# left blank. The histogram gives the ceiling of every unit.

# %% mystnb={"image": {"alt": "PSTHs of three recorded units for face targets at four locations with the spike-count raster of every face-target trial below each, and a histogram of the per-unit split-half ceilings of excitatory and inhibitory units"}} tags=["hide-input"]
val = session.trials(session.val_idx)
unit_ceiling = sc_analysis.unit_ceilings(val["rates"], val["mask"], val["condition"], seed=seed)
ceiling = fl.split_half_ceiling(val["rates"], val["mask"], val["condition"], seed=seed)
order = torch.argsort(unit_ceiling, descending=True).tolist()
shown_units = [next(u for u in order if session.is_excitatory[u]), order[len(order) // 2],
               next(u for u in order if not session.is_excitatory[u])]
sc_analysis.recording_figure(session, shown_units, unit_ceiling)
plt.show()
glue("ceiling", ceiling["ceiling"], display=False)
glue("split_half", ceiling["raw"], display=False)
glue("best_unit_ceiling", float(unit_ceiling.max()), display=False)

# %% [markdown]
# Two halves of the validation data correlate at only {glue:text}`split_half:.3f` on average,
# and the ceiling of the book's per-condition metric is {glue:text}`ceiling:.2f` (the best unit:
# {glue:text}`best_unit_ceiling:.2f`). Most units fire a few spikes per bin in a handful of trials
# per condition: their per-condition PSTHs are mostly noise, and any score of that metric has to
# be read against this ceiling.
#
# **The published metric.** The recording lab scores a fit differently
# (`hdlib.losses.psth_corr_pooled`, exactly as `data/README.md` defines it): the PSTH of each
# unit is its mean over *all* validation trials, conditions pooled, over *all* 219 bins,
# including the bins after a trial has ended (the data are 0 there; the model's rates are
# whatever it produces from the zero inputs there); the score is the Pearson correlation over
# bins per unit, averaged over units, with the model's noise on. Because trials end at different
# times, the pooled data PSTH falls toward zero late in the trial as fewer trials remain, and
# that fall is most of its variance. Three predictors that contain no network show how much:
# each unit's mean rate while a trial is recorded and 0 after (it knows only when the trials
# end), and the training split's own PSTHs, pooled or per condition.

# %%
references = sc_analysis.reference_scores(session)
display(references.style.format(precision=3))
glue("ref_on", float(references.loc["recording on x mean rate", "psth_corr_pooled"]),
     display=False)
glue("ref_on_condition", float(references.loc["recording on x mean rate", "psth_corr"]),
     display=False)
glue("ref_train_condition", float(references.loc["training PSTH of the trial's condition",
                                                 "psth_corr"]), display=False)
glue("ref_pooled_condition", float(references.loc["training PSTH, conditions pooled",
                                                  "psth_corr"]), display=False)
glue("ref_pooled_pooled", float(references.loc["training PSTH, conditions pooled",
                                               "psth_corr_pooled"]), display=False)

# %% [markdown]
# A predictor that knows only when each trial ends scores {glue:text}`ref_on:.2f` on the
# published metric, and {glue:text}`ref_on_condition:.2f` on the book's. The training split's
# own per-condition PSTHs reach {glue:text}`ref_train_condition:.3f` on the book's metric, and
# its PSTH pooled over conditions reaches {glue:text}`ref_pooled_condition:.3f` there (and
# {glue:text}`ref_pooled_pooled:.2f` on the published metric): with this few trials per
# condition, ignoring the condition predicts a condition's validation PSTH better than its own
# noisy training PSTH does. These are the numbers a network has to beat. The pooled metric therefore mostly rewards reproducing *when trials end* (a network sees this: its
# inputs drop to zero); the per-condition metric asks for the responses to the task. We report
# both, always side by side.
#
# ## 2. The baseline fit
#
# The fit (`hdlib.fitters.sc_fit.fit`, on the book's one training engine `hdlib.train`) takes
# Adam steps on minibatches of {glue:text}`batch_size` training trials drawn by the step's
# seeded generator, with
# the gradient clipped to norm 1. One fit of {glue:text}`live_steps` steps runs here with seed
# {glue:text}`seed`; its validation scores are monitored every 25 steps for the figure (the
# monitor never changes the fit). The published figure, {glue:text}`published_pooled`, is
# **theirs**: their model and their metric, and the best of {glue:text}`published_epochs`
# epochs chosen *on the validation split itself*, which
# favours it; ours is the fit at its last step.

# %%
fit_options = dict(steps=live_steps, seed=seed)
config = sc_fit.make_config(**fit_options)
model = sc_fit.build_model(session, config)


def monitor():
    with torch.no_grad():
        rates = model(val["inputs"], noise=True, generator=torch.Generator().manual_seed(seed))
        rates = rates[..., :session.n_neurons]
    return {"psth_corr_pooled": fl.psth_corr_pooled(rates, val["rates"]),
            "psth_corr": fl.psth_correlation(rates, val["rates"], val["mask"], val["condition"])}


start = time.process_time()
model, history = sc_fit.fit(session, config, model=model, progress=False, monitor=monitor,
                            monitor_every=25)
live_cpu = time.process_time() - start
model.eval()
live = sc_fit.evaluate(model, session, seed=seed)
display(pd.Series({"pooled (published metric)": live["psth_corr_pooled"],
                   "  E units": live["psth_corr_pooled_e"],
                   "  I units": live["psth_corr_pooled_i"],
                   "published figure, their fit (best epoch on validation)":
                       published["psth_corr_pooled"],
                   "per condition (book metric)": live["psth_corr"],
                   "  ceiling": live["ceiling"],
                   "  fraction of ceiling": live["fraction_of_ceiling"],
                   "single-trial correlation": live["single_trial_corr"],
                   "units with mean rate in 1-50 spikes/s": live["rates_in_range"]},
                  name=f"validation, seed {seed}").to_frame().style.format(precision=3))
for key in ("psth_corr_pooled", "psth_corr", "fraction_of_ceiling", "psth_corr_pooled_e",
            "psth_corr_pooled_i"):
    glue(f"live_{key}", float(live[key]), display=False)
glue("live_steps", live_steps, display=False)
glue("seed", seed, display=False)
glue("published_pooled", published["psth_corr_pooled"], display=False)
glue("published_epochs", published["epochs"], display=False)
glue("batch_size", config.batch_size, display=False)
glue("default_steps", sc_fit.FitConfig().steps, display=False)
glue("live_cpu", float(live_cpu), display=False)

# %% mystnb={"image": {"alt": "Training loss per step, validation scores of both metrics during the fit with the published figure as a line, and per-unit pooled against per-condition correlation for excitatory and inhibitory units"}} tags=["hide-input"]
per_unit = sc_analysis.unit_scores(model, session, seed=seed)
sc_analysis.training_figure(history, per_unit["pooled"], per_unit["per_condition"],
                            per_unit["excitatory"], published["psth_corr_pooled"])
plt.show()

# %% [markdown]
# After {glue:text}`live_steps` steps ({glue:text}`live_cpu:.0f` s of one core) the fit scores
# {glue:text}`live_psth_corr_pooled:.2f` on the published metric (E units
# {glue:text}`live_psth_corr_pooled_e:.2f`, I units {glue:text}`live_psth_corr_pooled_i:.2f`),
# against the published {glue:text}`published_pooled` of their best epoch; and
# {glue:text}`live_psth_corr:.3f` on the book's per-condition metric, which is
# {glue:text}`live_fraction_of_ceiling:.0%` of its ceiling. The scatter shows the two metrics
# disagree unit by unit: the pooled score is high for almost every unit (it is carried by the
# trial ends), while the per-condition score is small for most units, as their low ceilings
# predict. The next figure shows the model's pooled PSTHs for the best, median and worst
# units by the published metric.

# %% mystnb={"image": {"alt": "Pooled validation PSTHs of the data and of the fitted model for the two best, two median and two worst units"}} tags=["hide-input"]
sc_fit.pooled_psth_figure(model, session, seed=seed)
plt.show()

# %% [markdown]
# ### The baseline over seeds (stored runs)
#
# The live fit is one seed. The baseline was also run with seeds 0, 1 and 2 at the same
# {glue:text}`live_steps` steps through the sweep command
# (`OMP_NUM_THREADS=1 python -m hdlib sweep notebooks/experiments/sc_fit_run.py -f
# notebooks/sweeps/04_phases.yaml -o results/04_phases --workers 1`); the stored results carry
# their provenance. Seed 0 of the stored runs repeats the live fit.

# %%
phases = results.load_results(phases_dir)
print(results.describe_provenance(phases))
groups = sc_analysis.by_configuration(phases)
baseline = groups["baseline"]
display(baseline[["psth_corr_pooled", "psth_corr_pooled_e", "psth_corr_pooled_i", "psth_corr",
                  "fraction_of_ceiling", "single_trial_corr", "rates_in_range"]]
        .style.format(precision=3))
for key in ("psth_corr_pooled", "psth_corr"):
    glue(f"base_{key}_mean", float(baseline[key].mean()), display=False)
    glue(f"base_{key}_sd", float(baseline[key].std()), display=False)
glue("live_vs_stored", float(abs(baseline.loc[seed, "psth_corr_pooled"]
                                 - live["psth_corr_pooled"])) if seed in baseline.index
     else math.nan, display=False)

# %% [markdown]
# Over three seeds the baseline scores {glue:text}`base_psth_corr_pooled_mean:.3f` $\pm$
# {glue:text}`base_psth_corr_pooled_sd:.3f` (mean $\pm$ sd) on the published metric and
# {glue:text}`base_psth_corr_mean:.3f` $\pm$ {glue:text}`base_psth_corr_sd:.3f` on the book's.
# The live fit and the stored seed-{glue:text}`seed` run differ by
# {glue:text}`live_vs_stored:.1e` on the published metric (the same computation; what differs is
# the library version and the machine, see the provenance line).
#
# ## 3. Where the default fit comes from
#
# Before this chapter, `sc_fit.fit` took every step on the whole training split and had no
# pooled term. Each change below was compared with the book's baseline, one at a time,
# three seeds each at the same {glue:text}`live_steps` steps
# (`notebooks/sweeps/04_search.yaml`, stored in `results/04_search`): no pooled term (the old
# loss), a learning rate 3x the baseline's, and 20 hidden units with a learned initial state
# (as the published pipeline has). The default number of steps of
# `python -m hdlib fit` ({glue:text}`default_steps`) is set by the time budget, about a minute
# of one core, not by a score; the stored comparisons all use {glue:text}`live_steps` steps.

# %%
search = pd.concat([phases.loc[phases.index.str.startswith("baseline_seed")],
                    results.load_results(search_dir)])
search_table = sc_analysis.paired_table(search, alpha=family_alpha)
display(search_table.style.format(precision=3, na_rep=""))
glue("no_pooled_mean", float(search_table.loc["no_pooled_term", "psth_corr_pooled"]),
     display=False)
glue("no_pooled_cond", float(search_table.loc["no_pooled_term", "psth_corr"]), display=False)
no_pooled = sc_analysis.by_configuration(search)["no_pooled_term"]["psth_corr_pooled"]
glue("no_pooled_low", float(no_pooled.min()), display=False)
glue("no_pooled_high", float(no_pooled.max()), display=False)

# %% [markdown]
# Without the pooled term the fit scores {glue:text}`no_pooled_mean:.2f` on the published metric
# on average (seeds from {glue:text}`no_pooled_low:.2f` to {glue:text}`no_pooled_high:.2f`),
# and {glue:text}`no_pooled_cond:.3f` on the book's: the per-condition loss never sees the bins
# after a trial's end, so the network is not asked to fall silent there, and the pooled metric,
# which is mostly about those bins, stays near or below the published figure. The pooled term
# is what carries the fit past it. The other two changes move the scores by amounts the table
# shows with their paired intervals; neither is needed to pass the published figure.
#
# `python -m hdlib fit SESSION.mat` uses these defaults on any session of the schema and writes
# `metrics.json`, a checkpoint (`sc_fit.load_fitted` reads it back for analysis) and a PSTH
# figure; `benchmarks/sc_fit_speed.py` times a training step against a per-trial loop.
#
# ## 4. The document's items on the recording
#
# Every Phase-1 and Phase-2 item of the document is one configuration of
# `notebooks/sweeps/04_phases.yaml`, changing one thing against the baseline: Phase 1, a Poisson
# or hybrid (0.3, 0.5) loss for the PSTHs and learnable $\tau$ per population or per neuron
# (with `torch.clamp`, as in the document); Phase 2, a Poisson distance inside
# $L_{\mathrm{trial}}$, learnable $\alpha$ (scalar, population, neuron; logits, as the document
# proposes), learnable $\tau$ with its parameters frozen (the document's debugging test), low
# rank 10/20/30/50, cosine schedules with warm-up 0 and 50 steps, and activity regularisation
# 0.01 and 0.001. Three seeds each, {glue:text}`live_steps` steps each. The table gives the mean
# and 95% interval over seeds of both metrics and of the fraction of ceiling, and the change of
# the published metric against the baseline paired by seed, with its paired t-test and Holm's
# correction over the {glue:text}`n_comparisons` comparisons (family-wise rate
# {glue:text}`family_alpha`).

# %%
expected = list(dict.fromkeys(name.rsplit("_seed", 1)[0]
                              for name in sweeps.load_sweep("sweeps/04_phases.yaml")[1]))
phase_table = sc_analysis.paired_table(phases, alpha=family_alpha)
phase_table = phase_table.reindex([name for name in expected if name in phase_table.index])
missing = sc_analysis.missing_configurations(phases, expected)
print(f"configurations with fewer than 3 stored seeds: {', '.join(missing) or 'none'}")
display(phase_table.style.format(precision=3, na_rep=""))
condition_table = sc_analysis.paired_table(
    phases, metrics=("psth_corr", "psth_corr_pooled"), alpha=family_alpha)
glue("family_alpha", family_alpha, display=False)
glue("n_comparisons", int(phase_table["p"].notna().sum()), display=False)
glue("n_survive", int(phase_table["survives Holm"].sum()), display=False)
glue("n_survive_condition", int(condition_table["survives Holm"].sum()), display=False)

# %% mystnb={"image": {"alt": "Validation scores of every configuration of the document, one point per seed and a bar for the mean, for the published pooled metric and the book's per-condition metric"}} tags=["hide-input"]
sc_analysis.sweep_points_figure(phases, list(phase_table.index), published["psth_corr_pooled"])
plt.show()
survivors = ", ".join(f"{name} ({row['change']:+.3f})" for name, row in phase_table.iterrows()
                      if row["survives Holm"]) or "none"
survivors_condition = ", ".join(
    f"{name} ({row['change']:+.3f})" for name, row in condition_table.iterrows()
    if row["survives Holm"]) or "none"
glue("survivors", survivors, display=False)
glue("survivors_condition", survivors_condition, display=False)
glue("poisson_pooled_change", float(phase_table.loc["poisson_lneuron", "change"]), display=False)
glue("poisson_condition_change", float(condition_table.loc["poisson_lneuron", "change"]),
     display=False)

# %% [markdown]
# On the published metric {glue:text}`n_survive` of the changes differ from the baseline after
# Holm's correction: {glue:text}`survivors`. The rest are within the seed-to-seed spread at
# three seeds. On the book's per-condition metric, {glue:text}`n_survive_condition` survive:
# {glue:text}`survivors_condition`. The two metrics can disagree in direction: the Poisson loss
# for the PSTHs changes the published metric by {glue:text}`poisson_pooled_change:+.3f` and the
# per-condition one by {glue:text}`poisson_condition_change:+.3f` (paired means): whether "it
# hurts", as Phase 1 found, depends on which metric is asked. The document's own Phase-1 table is for another session
# (1043 trials, 54 units), so only directions compare: it found the Poisson and hybrid PSTH
# losses 40-48% worse than its baseline and learnable $\tau$ catastrophic (-91% and -97%). The
# claims table at the end tests each direction on this session with the paired per-seed
# changes.
#
# **Learnable $\tau$.** The document's hypotheses for its collapse were a clamp that blocks the
# gradient, a broadcasting error, the noise scaled by the mean $\alpha$ and a device mismatch.
# Measured on this implementation (`sc_analysis.diagnose_time_constants`, one batch of 96
# training trials):

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
# can collapse a fit while $\tau$ stays put. What does break the dynamics is a bound the
# document allows: $\tau_I = 20$ ms with 25 ms bins makes $\alpha_I = 1.25 > 1$, so every update
# overshoots, and the inhibitory rates reverse direction in {glue:text}`reversal_20:.0f`% of
# steps (against {glue:text}`reversal_50:.0f`% at 50 ms). `EIRNN` bounds $\tau$ below by one bin.
#
# ### The Phase-1 losses at the fit's default length (stored runs)
#
# The comparisons above are at book scale, {glue:text}`live_steps` steps, where a change may
# only speed a fit up. The two Phase-1 losses that changed the published metric there were run
# again with the baseline at {glue:text}`full_steps` steps, the default of
# `python -m hdlib fit` (`notebooks/sweeps/04_phases_full.yaml`, three seeds each, the same
# validation split), and compared in the same way, Holm's correction now over these
# {glue:text}`n_full_comparisons` comparisons.

# %%
phases_full = results.load_results(phases_full_dir)
print(results.describe_provenance(phases_full))
full_table = sc_analysis.paired_table(phases_full, alpha=family_alpha)
display(full_table.style.format(precision=3, na_rep=""))
full_steps = int(phases_full["steps"].iloc[0])
glue("full_steps", full_steps, display=False)
glue("n_full_comparisons", int(full_table["p"].notna().sum()), display=False)
glue("full_base_pooled", float(full_table.loc["baseline", "psth_corr_pooled"]), display=False)
for name in ("poisson_lneuron", "hybrid_0.5"):
    glue(f"full_{name}_change", float(full_table.loc[name, "change"]), display=False)
    glue(f"full_{name}_ci", full_table.loc[name, "change 95% CI"], display=False)
    glue(f"full_{name}_holm", "survives" if full_table.loc[name, "survives Holm"]
         else "does not survive", display=False)

# %% [markdown]
# At {glue:text}`full_steps` steps the baseline reaches {glue:text}`full_base_pooled:.3f` on the
# published metric. The Poisson loss changes it by
# {glue:text}`full_poisson_lneuron_change:+.3f` (paired 95% interval
# {glue:text}`full_poisson_lneuron_ci`; the change {glue:text}`full_poisson_lneuron_holm`
# Holm's correction) and the hybrid loss at 0.5 by {glue:text}`full_hybrid_0.5_change:+.3f`
# ({glue:text}`full_hybrid_0.5_ci`; {glue:text}`full_hybrid_0.5_holm`). The claims table at the
# end carries both lengths.
#
# ## 5. Synthetic teachers: can a fit recover the time constants?
#
# A recording has no ground truth for $\tau$. A synthetic session does: `sc_teacher` simulates
# an `EIRNN` teacher ($\tau_E$ = {glue:text}`teacher_tau_e:.0f` ms, $\tau_I$ =
# {glue:text}`teacher_tau_i:.0f` ms, 41 E and 13 I units as in the document's session, Poisson
# spikes,
# the task's inputs and trial ends) and writes it in the same file schema. A fit with
# population-level learnable $\alpha$ starts at $\tau_E$ = {glue:text}`start_tau_e:.0f` ms and
# $\tau_I$ = {glue:text}`start_tau_i:.0f` ms. An earlier
# version of this chapter recovered both time constants only on a larger session fitted with a
# 10x learning rate for the time constants, changing two things at once. The
# `notebooks/sweeps/04_recovery.yaml` design separates them: 400 or 1043 trials, crossed with
# the time constants' learning rate at 1x or 10x that of the other parameters, three seeds per
# cell, {glue:text}`live_steps` steps each (stored in `results/04_recovery`).

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
glue("recovery_tolerance", recovery_tolerance, display=False)

# %% [markdown]
# The main effect of the trial count (1043 against 400 trials, averaged over both learning
# rates) on the worse of the two relative errors is {glue:text}`effect_trials:+.2f`; the main
# effect of the 10x learning rate (averaged over both trial counts) is
# {glue:text}`effect_lr:+.2f`. Negative is better. Over all {glue:text}`n_recovery_runs` runs the fitted $\tau_E$ ends
# between {glue:text}`tau_e_low:.0f` and {glue:text}`tau_e_high:.0f` ms, short of the teacher's,
# and $\tau_I$ between {glue:text}`tau_i_low:.0f` and {glue:text}`tau_i_high:.0f` ms. The claims
# table states, cell by cell, whether both time constants end within
# {glue:text}`recovery_tolerance:.0%` of the teacher's; at this budget the design separates the
# two factors, but says nothing about longer fits, which remain to be run.
#
# ## 6. What the document claims, and what we measured
#
# Each row states a threshold and is decided by the book's one rule (`hdlib.book.claims`): over
# the seeds, the 95% t-interval of the mean lies wholly on the claim's side (holds), wholly on
# the other side (fails), or contains the threshold (inconclusive). A change "helps" or "hurts"
# by its paired per-seed change of the published metric against the baseline; a change that
# "breaks" training loses more than half of the baseline's score, as in Phase 1.

# %%
claims = sc_analysis.document_claims(phases, recovery, published=published["psth_corr_pooled"],
                                     tolerance=recovery_tolerance, longer=phases_full)
table = evidence_table(claims)
display(table.style.hide(axis="index"))

# %% [markdown]
# The pooled metric reproduced and passed here says more about the recording's trial lengths
# than about the network: a predictor that knows only when trials end already scores above the
# published figure, and above our fits at {glue:text}`live_steps` steps
# ({glue:text}`ref_on:.2f` against {glue:text}`base_psth_corr_pooled_mean:.2f`); the training
# split's pooled PSTH does better than our fits on both metrics. Passing the published figure is
# therefore no
# evidence that the network has learned the task's responses; the per-condition metric, against
# its ceiling and against those references, is the test that remains open. On the book's per-condition metric the fits reach a fraction of a low
# ceiling, and the document's changes are judged on the published metric with their per-seed
# changes; the changes that are within the spread of three seeds are marked inconclusive rather
# than helped or hurt. Scale: every stored run took {glue:text}`live_steps` Adam steps of 64
# trials on one core (book scale); the default of `python -m hdlib fit` is
# {glue:text}`default_steps` steps.

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print_evidence(table)
print(f"stored baseline, published metric: {baseline['psth_corr_pooled'].mean():.3f}")
print(f"ceiling of the per-condition metric: {ceiling['ceiling']:.3f}")
print(f"recording-on predictor, published metric: {float(references.iloc[0, 0]):.3f}")
print(f"live fit, published metric above 0.5: {live['psth_corr_pooled'] > 0.5}")

# %%
results.write_result(result_path, {
    "psth_corr_pooled": live["psth_corr_pooled"], "psth_corr": live["psth_corr"],
    "fraction_of_ceiling": live["fraction_of_ceiling"], "ceiling": ceiling["ceiling"],
    "loss_curve": history["loss"]}, params)

# %% [markdown]
# The line below records how this page was made: the commit and the hash of `hdlib` it ran
# on, the versions of Python, PyTorch and NumPy, the thread count and the running time.

# %% tags=["remove-input"]
print(results.provenance_line())
