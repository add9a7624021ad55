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
# # Learnable temporal constants in a Polar V1 model
#
# During free viewing the eyes hold still for a few hundred milliseconds (fixations) and then
# jump (saccades, a few tens of milliseconds). A V1 neuron's response to what it sees during a
# fixation outlasts the frame that drove it (**fixation persistence**), and around a saccade the
# visual signal is briefly cut down (**saccadic suppression**). The Polar V1 model of the source
# document (`004`) represents each visual feature in polar form, an amplitude and a phase, and
# builds both effects into how the amplitudes evolve; a temporal summariser then keeps a fast and a
# slow running average of them. Four constants set the time scales:
#
# $$
# A_t = \bar a_t + (A_{t-1} - \bar a_t)\, e^{-\lambda_t \Delta t},
# $$
#
# $$
# \lambda_t = (1 - q_t)\,\lambda_{\mathrm{fix}} + q_t\,\lambda_{\mathrm{sac}},
# $$
#
# where $\bar a_t$ is the amplitude the current frame drives and $q_t \in [0, 1]$ is the saccade
# gate, computed from gaze speed. The amplitude therefore follows the image with a time constant
# $1/\lambda_{\mathrm{fix}}$ (100 ms in the original model) during fixation and $1/\lambda_{\mathrm{sac}}$
# (25 ms) during a saccade, when the old image is cleared four times faster. The summariser keeps
#
# $$
# m^{\mathrm{fast}}_t = \alpha_{\mathrm{fast}}\, m^{\mathrm{fast}}_{t-1} + (1 - \alpha_{\mathrm{fast}})\, A_t,
# $$
#
# $$
# m^{\mathrm{slow}}_t = \alpha_{\mathrm{slow}}\, m^{\mathrm{slow}}_{t-1} + (1 - \alpha_{\mathrm{slow}})\, A_t,
# $$
#
# with time constants of $1/(1-\alpha)$ frames: about 4 frames (32 ms at 120 Hz) for the transient
# part of a response and 20 frames (170 ms) for the sustained part. The document makes all four
# constants learnable, proposes *relaxed* starting values and a 10x lower learning rate for them,
# and lists sanity checks. This chapter generates spikes from a teacher with known constants and
# asks whether, how fast and how well the constants are learned back.

# %% tags=["parameters"]
# Data: free-viewing videos at 120 Hz and a teacher population
n_train_trials = 128  # training videos
n_val_trials = 32  # held-out videos
n_frames = 240  # frames per video (2 s at 120 Hz)
n_neurons = 32  # recorded neurons
window = 36  # pixels of image each frame shows (4 pixels per degree)
teacher_config = "polar_v1"  # the teacher's constants (the document's original values)
# Fits
initial_configs = ["polar_v1", "polar_v1_relaxed", "polar_v1_very_relaxed"]
temporal_lr_scales = [1.0, 0.1]  # learning rate of the constants relative to the readout's
steps = 800  # optimiser steps per fit
batch_size = 16  # videos per step
learning_rate = 0.05  # Adam, cosine-annealed to 1% over the fit
recovery_tolerance = 0.15  # a constant is "recovered" within this relative error
seed = 0

# %%
import time

import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue
from tqdm import tqdm

from hdlib import validate
from hdlib.book import plots
from hdlib.book.claims import claims_table
from hdlib.datasets import stimuli
from hdlib.models import polar, polar_v1

params = validate.parameters(globals(), polar_v1.CHAPTER_PARAMETERS)
for name in [teacher_config, *initial_configs]:
    polar.load_config(name)  # an unknown configuration stops here, before any work
plots.set_style()
plt = plots.plt
torch.manual_seed(seed)
CONSTANTS = ["lambda_fix", "lambda_sac", "alpha_fast", "alpha_slow"]

# %% [markdown]
# ## Free viewing at 120 Hz
#
# Each video is a window of a different 1/f image (the amplitude spectrum of natural scenes)
# that follows a simulated gaze: fixations with a slow drift, saccades at about three per second
# with amplitudes of 2-8 degrees and durations from the main sequence (21 ms + 2.2 ms per degree).
# The saccade gate ramps from 0 to 1 between 10 and 60 degrees per second of gaze speed.

# %%
video = stimuli.free_viewing_video(n_train_trials + n_val_trials, n_frames, window=window,
                                   seed=seed)
onsets = (video.saccading[:, 1:] & ~video.saccading[:, :-1]).sum().item()
saccade_rate = onsets / (video.frames.shape[0] * n_frames / video.fps)
gate_open = (video.gate > 0.5).float().mean().item()
glue("saccade_rate", saccade_rate, display=False)
glue("gate_open_pct", 100 * gate_open, display=False)
plots.plot_free_viewing(video)
plt.show()

# %% [markdown]
# The simulated gaze makes {glue:text}`saccade_rate:.1f` saccades per second, and the gate is
# more than half open in {glue:text}`gate_open_pct:.1f`% of the frames.
#
# ## What the four constants do
#
# The response of each stage to a step in its input: the relaxation with the gate closed and
# open, and the two averages (bias-corrected, see below).

# %%
truth = polar.load_config(teacher_config)
dynamics = polar.PolarDynamics(truth["lambda_fix"], truth["lambda_sac"])
summarizer = polar.TemporalSummarizer(truth["alpha_fast"], truth["alpha_slow"])
T_demo = 60
step_input = torch.ones(1, T_demo, 1)
t_ms = np.arange(T_demo) * 1000 / video.fps
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
with torch.no_grad():
    for q, label in [(0.0, r"fixation ($\lambda_{fix}$)"), (1.0, r"saccade ($\lambda_{sac}$)")]:
        response = dynamics(step_input, torch.full((1, T_demo), q), initial=torch.zeros(1, 1))
        axes[0].plot(t_ms, response[0, :, 0], label=label)
    impulse = torch.zeros(1, T_demo, 1)
    impulse[0, 5] = 1.0
    for logit, label in [(summarizer.alpha_fast_logit, r"$\alpha_{fast}$"),
                         (summarizer.alpha_slow_logit, r"$\alpha_{slow}$")]:
        weights = polar.linear_recurrence(torch.nn.functional.logsigmoid(logit).expand(T_demo),
                                          (1 - torch.sigmoid(logit)) * impulse)
        axes[1].plot(t_ms, weights[0, :, 0], label=label)
axes[0].set(title="relaxation: step response", xlabel="time (ms)", ylabel="A")
axes[1].set(title="moving averages: impulse at 42 ms", xlabel="time (ms)", ylabel="weight")
for ax in axes:
    ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %% [markdown]
# An average that starts at zero is too small for its first few time constants: after $t+1$
# frames of a constant input $x$ it holds $(1-\alpha^{t+1})\,x$. The summariser divides by that
# factor, so a constant input is summarised as itself from the first frame (a unit test checks
# this). Without the correction the slow trace would spend its first 20 frames (170 ms) of every
# recording ramping up.
#
# Both stages are linear recurrences, so `hdlib.models.polar.linear_recurrence` evaluates all frames
# at once, as a lower-triangular matrix of decay products per block of frames, instead of a
# Python loop over frames; the unit tests check it against the loop, and
# `benchmarks/polar_speed.py` measures the gain.
#
# ## A teacher with known constants
#
# Each frame is filtered by quadrature (complex Gabor) filters at 3 wavelengths, 4 orientations
# and 4 positions: 48 features, each an amplitude and a phase. Amplitudes are normalised by
# their mean over the videos. The teacher relaxes them with the original constants, summarises
# them, and reads out each neuron's rate from a sparse mix of the relaxed amplitude and both
# averages; spikes are Poisson counts per frame.

# %%
features = polar_v1.encode_video(video)
n_features = features.amplitude.shape[-1]
teacher = polar_v1.make_teacher(n_features, n_neurons, seed=seed, **{
    k: truth[k] for k in CONSTANTS})
data = polar_v1.simulate(teacher, features, seed=seed + 1)
train = data.trials(slice(0, n_train_trials))
val = data.trials(slice(n_train_trials, None))
ceiling = polar_v1.evaluate(teacher, val)
mean_rate = data.rates.mean().item()
glue("mean_rate", mean_rate, display=False)
glue("n_train_spikes", int(train.counts.sum().item()), display=False)
glue("ceiling_bits", ceiling["ceiling_bits_per_spike"], display=False)

fig, axes = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True)
trial = n_train_trials  # a held-out video
t_s = np.arange(n_frames) / video.fps
for n in range(3):
    axes[0].plot(t_s, data.rates[trial, :, n], lw=1, label=f"neuron {n}")
spikes = np.nonzero(data.counts[trial, :, :12].numpy().T)
axes[1].scatter(t_s[spikes[1]], spikes[0], s=4, marker="|", color="k")
for ax in axes:
    ax.fill_between(t_s, 0, 1, where=video.gate[trial].numpy() > 0.5, color="0.8",
                    transform=ax.get_xaxis_transform(), step="mid")
axes[0].set(ylabel="rate (spikes/s)", title="teacher rates; saccades shaded")
axes[0].legend(fontsize="x-small", ncol=3)
axes[1].set(ylabel="neuron", xlabel="time (s)", title="Poisson spikes")
fig.tight_layout()
plt.show()

# %% [markdown]
# The teacher fires at {glue:text}`mean_rate:.1f` spikes/s on average; the training set holds
# {glue:text}`n_train_spikes` spikes. On held-out videos the true rates explain
# {glue:text}`ceiling_bits:.3f` bits per spike more than each neuron's mean rate: no model can
# do better on these data.
#
# ## Fitting the constants back
#
# A student with the teacher's architecture and a fresh random readout is fitted to the training
# spikes (Poisson likelihood) with the book's trainer, `hdlib.fitters.training.AdamCosineTrainer`: Adam,
# cosine annealing, one step per epoch so that the trainer's parameter history holds every
# constant after every step. The constants start from each of the document's three
# configurations; each start is fitted with the constants at the readout's learning rate, and at
# the 10x lower rate the document advises (the trainer's `temporal` parameter group). A last fit
# freezes the constants at the teacher's values and learns only the readout: the reference for
# the fit and for the cost of learning the constants.

# %%
runs = {}
plan = [(c, s) for c in initial_configs for s in temporal_lr_scales]
for initial, scale in tqdm(plan, desc="fits", mininterval=5.0):
    start = time.perf_counter()
    model, trainer = polar_v1.fit(initial, train, val, steps=steps, learning_rate=learning_rate,
                                  temporal_lr_scale=scale, batch_size=batch_size, seed=seed,
                                  progress=False)
    runs[(initial, scale)] = {"model": model, "trainer": trainer,
                              "seconds": time.perf_counter() - start}
start = time.perf_counter()
oracle, oracle_trainer = polar_v1.fit(teacher_config, train, val, steps=steps,
                                      learning_rate=learning_rate, batch_size=batch_size,
                                      learnable=False, seed=seed, progress=False)
oracle_seconds = time.perf_counter() - start

# %% [markdown]
# ### How each constant moves during training
#
# One panel per constant; the teacher's value is dashed.

# %%
for scale in temporal_lr_scales:
    histories = {initial: runs[(initial, scale)]["trainer"].param_history
                 for initial in initial_configs}
    fig = plots.plot_constant_trajectories(histories, truth, CONSTANTS)
    fig.suptitle(f"constants at {scale:g} x the readout's learning rate", y=1.02)
    plt.show()

# %% [markdown]
# ### Where the fits end

# %%
rows = []
for (initial, scale), run in runs.items():
    model = run["model"]
    c = model.constants()
    errors = {k: abs(c[k] - truth[k]) / truth[k] for k in CONSTANTS}
    tau_errors = [abs(c[k] - t) / t for k, t in [
        ("tau_fix_ms", 1000 / truth["lambda_fix"]), ("tau_sac_ms", 1000 / truth["lambda_sac"]),
        ("tau_fast_frames", 1 / (1 - truth["alpha_fast"])),
        ("tau_slow_frames", 1 / (1 - truth["alpha_slow"]))]]
    scores = polar_v1.evaluate(model, val)
    checks = model.sanity_checks()
    rows.append({"start": initial, "lr scale": scale, **{k: c[k] for k in CONSTANTS},
                 "largest error": max(errors.values()),
                 "largest tau error": max(tau_errors),
                 "recovered": max(errors.values()) <= recovery_tolerance,
                 "checks passed": f"{sum(checks.values())}/{len(checks)}",
                 "val bits/spike": scores["bits_per_spike"],
                 "rate correlation": scores["rate_correlation"],
                 "s per step": run["seconds"] / steps})
oracle_scores = polar_v1.evaluate(oracle, val)
rows.append({"start": "teacher's, frozen", "lr scale": 0.0,
             **{k: truth[k] for k in CONSTANTS}, "largest error": 0.0, "largest tau error": 0.0,
             "recovered": True, "checks passed": "-",
             "val bits/spike": oracle_scores["bits_per_spike"],
             "rate correlation": oracle_scores["rate_correlation"],
             "s per step": oracle_seconds / steps})
results = pd.DataFrame(rows)
display(results.style.format(precision=3).hide(axis="index"))

# %%
relaxed_slow = results[(results["start"] == "polar_v1_relaxed") & (results["lr scale"] == 0.1)]
relaxed_fast = results[(results["start"] == "polar_v1_relaxed") & (results["lr scale"] == 1.0)]
relaxed_error = float(relaxed_slow["largest error"].iloc[0])
relaxed_tau_error = float(relaxed_slow["largest tau error"].iloc[0])
fast_error = float(relaxed_fast["largest error"].iloc[0])
bits_gap = float(relaxed_fast["val bits/spike"].iloc[0] - relaxed_slow["val bits/spike"].iloc[0])
learned = results[results["lr scale"] > 0]
cost_ratio = float(learned["s per step"].mean() / (oracle_seconds / steps))
glue("relaxed_error_pct", 100 * relaxed_error, display=False)
glue("relaxed_tau_error_pct", 100 * relaxed_tau_error, display=False)
glue("fast_error_pct", 100 * fast_error, display=False)
glue("bits_gap", bits_gap, display=False)
glue("oracle_bits", oracle_scores["bits_per_spike"], display=False)
glue("cost_ratio", float(cost_ratio), display=False)
glue("tolerance_pct", 100 * recovery_tolerance, display=False)

# %% [markdown]
# From the relaxed start at the document's lower learning rate, the largest error of the four
# constants is {glue:text}`relaxed_error_pct:.1f`% (the target:
# {glue:text}`tolerance_pct:.0f`%). In time
# constants, $1/\lambda$ and $1/(1-\alpha)$, the largest error of that fit is
# {glue:text}`relaxed_tau_error_pct:.1f`%: an $\alpha$ near 1 hides a large error in its time
# constant behind a small one in $\alpha$.
#
# At the full learning rate the same start ends far from the truth (largest error
# {glue:text}`fast_error_pct:.0f`%), yet predicts the held-out spikes just as well: its held-out
# likelihood differs from the slow fit's by {glue:text}`bits_gap:+.4f` bits per spike, and
# matches the readout-only fit at the teacher's own constants. All three starts at the full rate
# end at nearly the same wrong constants: agreement between starts is not evidence of
# recovery. **The
# four constants are only weakly identifiable from spikes when the readout is learned with them.**
# The reason is visible in the equations: with a linear readout, each feature reaches the
# neurons through three kernels (the relaxation alone, and the relaxation followed by each
# average). Convolving two exponentials gives a difference of the same two exponentials, so the
# readout can rebuild nearly the same response from quite different time constants; fitting
# sums of exponentials is a classically ill-conditioned problem. Only the saccade gate, which
# changes $\lambda$ but not $\alpha$, breaks the symmetry. The lower rate for the constants
# works here as a brake that keeps them near where the data pulls them first; it is not
# guaranteed to find the teacher's values, and longer training at either rate drifts along the
# same valley.
#
# ### Sanity checks, and what happens when one fails
#
# The document's checks: both rates positive and between 1 and 100 per second,
# $\lambda_{sac} > \lambda_{fix}$, both alphas between 0.5 and 0.99 and
# $\alpha_{slow} > \alpha_{fast}$.

# %%
check_rows = []
for (initial, scale), run in runs.items():
    check_rows.append({"start": initial, "lr scale": scale, **run["model"].sanity_checks()})
checks = pd.DataFrame(check_rows)
display(checks.style.hide(axis="index"))
failed = [(r["start"], r["lr scale"], k) for r in check_rows for k, v in r.items()
          if v is False]
n_failed_runs = len({(s, sc) for s, sc, _ in failed})
very = runs[("polar_v1_very_relaxed", min(temporal_lr_scales))]["model"].constants()
alpha_gap = very["alpha_slow"] - very["alpha_fast"]
glue("n_failed_runs", n_failed_runs, display=False)
glue("n_runs", len(runs), display=False)
glue("very_alpha_gap", alpha_gap, display=False)

# %% [markdown]
# {glue:text}`n_failed_runs` of {glue:text}`n_runs` fits fail at least one check. Passing them
# says little here: the full-rate fits pass every check while sitting far from the truth. The very
# relaxed start puts both averages at the same $\alpha$, so the two traces are interchangeable
# and only the random readout decides which becomes "fast"; at the lower rate that fit ends with
# $\alpha_{slow} - \alpha_{fast} =$ {glue:text}`very_alpha_gap:.3f`. Nothing in the model ties
# the names to the roles: a fit that ends with $\alpha_{slow} < \alpha_{fast}$ (we saw this in
# development with larger batches) describes the same responses with the labels swapped. A
# check that fails for that reason is harmless; read the two traces by their time constants
# rather than by their names.
#
# The document says positivity of the rates is "enforced by initialization". It is not: a rate
# stored as a raw parameter becomes negative as soon as a gradient step pushes it below zero, and
# then the relaxation *amplifies* instead of decaying. `PolarDynamics` stores
# $\log\lambda$, so a rate cannot change sign. What a negative rate would do to two seconds of
# fixation:

# %%
negative = polar.PolarDynamics(10.0, 40.0)
with torch.no_grad():
    drive = torch.ones(1, n_frames, 1)
    decay_ok = negative(drive, torch.zeros(1, n_frames), initial=torch.zeros(1, 1))
    # The same recurrence with lambda_fix = -10/s, as a raw parameter could reach.
    log_d = torch.full((n_frames,), 10.0 * negative.dt)
    blown_up = polar.linear_recurrence(log_d[None], -torch.expm1(log_d)[None, :, None] * drive)
growth = blown_up.abs().max().item()
glue("negative_growth", growth, display=False)
print(f"lambda_fix = +10/s: amplitude after 2 s = {decay_ok[0, -1, 0]:.3f} (drive 1.0)")
print(f"lambda_fix = -10/s: amplitude after 2 s = {growth:.3g}")

# %% [markdown]
# With $\lambda_{fix} = -10$/s the amplitude grows by a factor $e^{10 \cdot 2} \approx$
# {glue:text}`negative_growth:.2g` in two seconds. With the log parameterisation the rates stay
# positive in every fit above, whatever the learning rate.
#
# ### What learning the constants costs
#
# The document expects "negligible overhead (4 extra parameters)". The parameters are few, but
# learning them means back-propagating through both recurrences over every frame; with the
# constants frozen, only the readout needs gradients. Averaged over the fits above, a step with
# learnable constants took {glue:text}`cost_ratio:.1f` times as long as a readout-only step
# (`benchmarks/polar_speed.py` measures the same on the two stages alone). The readout-only fit
# at the teacher's constants reaches {glue:text}`oracle_bits:.3f` bits per spike on held-out
# videos.
#
# ## What the document claims, and what we measured

# %%
by_start = results.set_index(["start", "lr scale"])
orig_slow = by_start.loc[("polar_v1", 0.1)]
relax_slow = by_start.loc[("polar_v1_relaxed", 0.1)]
very_slow = by_start.loc[("polar_v1_very_relaxed", 0.1)]
slow_errors = results[results["lr scale"] == 0.1]["largest error"]
full_errors = results[results["lr scale"] == 1.0]["largest error"]
positive = all(r["rates positive"] for r in check_rows)
claims = claims_table([
    ("Learnable constants converge to the true values (relaxed start, within "
     f"{recovery_tolerance:.0%})",
     f"largest error {relaxed_error:.1%} at 0.1x rate; {fast_error:.0%} at 1x with equal "
     f"held-out fit ({bits_gap:+.4f} bits/spike)", relaxed_error <= recovery_tolerance),
    ("The model learns the data's temporal dynamics (the data determine the constants)",
     f"two fits {fast_error:.0%} and {relaxed_error:.0%} from the truth differ by "
     f"{abs(bits_gap):.4f} bits/spike", abs(bits_gap) > 0.01),
    ("A relaxed initialisation recovers the constants better than the original values",
     f"largest error {relax_slow['largest error']:.1%} (relaxed) vs "
     f"{orig_slow['largest error']:.1%} (original start); held-out fit "
     f"{relax_slow['val bits/spike']:.4f} vs {orig_slow['val bits/spike']:.4f} bits/spike",
     relax_slow["largest error"] < orig_slow["largest error"]),
    ("A very relaxed start may need more training time",
     f"largest error {very_slow['largest error']:.1%} after {steps} steps "
     f"(relaxed: {relax_slow['largest error']:.1%})",
     very_slow["largest error"] > relax_slow["largest error"]),
    ("A 10x lower learning rate keeps the constants stable",
     f"median largest error {slow_errors.median():.1%} (0.1x) vs {full_errors.median():.1%} (1x)",
     slow_errors.median() < full_errors.median()),
    ("Positivity of the rates is enforced by initialisation",
     f"a raw rate that crosses zero amplifies by {growth:.2g} in 2 s; the log form keeps all "
     f"{len(runs)} fits positive", False),
    ("lambda_sac > lambda_fix and alpha_slow > alpha_fast after training",
     f"{len(runs) - n_failed_runs}/{len(runs)} fits pass every check",
     n_failed_runs == 0),
    ("Learning the constants adds negligible time (4 extra parameters)",
     f"{cost_ratio:.1f}x the time per step of a readout-only fit", cost_ratio < 1.1),
])
display(claims.style.hide(axis="index"))

# %% [markdown]
# The recovery figures depend on the seed and on the length of the fits; the regression test
# checks the verdicts that the chapter's argument rests on.

# %%
# NBVAL_CHECK_OUTPUT
print(f"relaxed start, 0.1x rate: every constant within {recovery_tolerance:.0%}: "
      f"{relaxed_error <= recovery_tolerance}")
print(f"rates positive in every fit: {positive}")
print(f"learning the constants costs more than 10% per step: {cost_ratio > 1.1}")
