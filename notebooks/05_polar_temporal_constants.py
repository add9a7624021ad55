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
# $1/\lambda_{\mathrm{fix}}$ during fixation and $1/\lambda_{\mathrm{sac}}$ during a saccade, when
# the old image is cleared faster. The summariser keeps
#
# $$
# m^{\mathrm{fast}}_t = \alpha_{\mathrm{fast}}\, m^{\mathrm{fast}}_{t-1}
#   + (1 - \alpha_{\mathrm{fast}})\, A_t,
# $$
#
# $$
# m^{\mathrm{slow}}_t = \alpha_{\mathrm{slow}}\, m^{\mathrm{slow}}_{t-1}
#   + (1 - \alpha_{\mathrm{slow}})\, A_t,
# $$
#
# with time constants of $1/(1-\alpha)$ frames: a short one for the transient part of a
# response and a long one for the sustained part. The document gives original values for the
# four constants (fixation persistence of about 100 ms, suppression four times faster, averages
# over about 4 and 20 frames at 120 Hz), makes all four learnable, proposes *relaxed* starting
# values and a 10x lower learning rate for them, and lists sanity checks that a trained model
# should pass. It offers three configurations: Option 1 keeps the original values with the two
# alphas fixed, Option 2 starts every constant from *relaxed* values, Option 3 from *very
# relaxed* ones; a fourth use ("conservative") starts from the original values with all four
# constants learnable. This chapter generates spikes from a teacher with known constants, fits
# the model from each of these starts until the constants stop moving by a stated rule, and asks
# where they end, and why. It then measures how much the data can say about each constant at
# all (the loss around the truth and the Fisher information), and what learning the constants
# costs in operations.

# %% tags=["parameters"]
# Data: free-viewing videos at 120 Hz and a teacher population
n_train_trials = 128  # training videos
n_val_trials = 32  # held-out videos
n_frames = 240  # frames per video (2 s at 120 Hz)
n_neurons = 32  # recorded neurons
window = 36  # pixels of image each frame shows (4 pixels per degree)
teacher_config = "polar_v1"  # the teacher's constants (the document's original values)
# Fits (the live run fits Option 2; the stored sweep fits every start)
initial_configs = ["polar_v1_relaxed"]  # starts fitted with the constants at the lower rate
full_rate_configs = []  # starts also fitted with the constants at the readout's rate
temporal_lr_scale = 0.1  # learning rate of the constants relative to the readout's
learning_rate = 0.05  # Adam, constant
batch_size = 16  # videos per step
max_steps = 4000  # a fit that has not converged by then stops here
convergence_rtol = 0.01  # the convergence rule (see the text)
convergence_window = 200
n_flop_cases = 3  # random batches on which the operation count is compared
stored_results = "../results/05_polar_constants"  # the multi-seed sweep ("" to skip)
seed = 0
result_path = ""  # where a sweep run writes its metrics ("" writes nothing)

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from hdlib import validate
from hdlib.book import chapter_claims, claims, parameters, plots, results, tables
from hdlib.datasets import stimuli
from hdlib.fitters import polar_fit
from hdlib.models import polar, polar_v1

params = validate.parameters(globals(), parameters.POLAR)
recovery_tolerance = parameters.POLAR_TARGETS["recovery_polar_v1"].threshold
for name in [teacher_config, *initial_configs, *full_rate_configs]:
    polar.load_config(name)  # an unknown configuration stops here, before any work
plots.set_style()
plt = plots.plt


def note(**values):
    """Glue each value for the prose (as a plain Python number), without showing it."""
    for key, value in values.items():
        glue(key, getattr(value, "item", lambda: value)(), display=False)


# %% [markdown]
# ## Free viewing at 120 Hz
#
# The stimulus is synthetic but has the two statistics that matter here: natural-image
# structure and a natural pattern of eye movements (`hdlib.datasets.stimuli`). Each trial
# views its own image with a $1/f$ amplitude spectrum (the average spectrum of natural scenes,
# with random phases) through a square window centred on the gaze. The gaze drifts slowly
# during fixations (a random walk) and jumps in saccades planned at
# {glue:text}`planned_rate:.0f` per second, with gamma-distributed intervals, amplitudes
# drawn uniformly between {glue:text}`amp_low:.0f` and {glue:text}`amp_high:.0f` degrees,
# durations from the main sequence (duration growing linearly with amplitude) and a
# raised-cosine velocity profile. The saccade gate $q_t$ is a ramp of gaze speed: 0 below
# {glue:text}`gate_low:.0f` deg/s, 1 above {glue:text}`gate_high:.0f` deg/s. One seeded
# generator makes every video, so a seed fixes the whole data set.

# %%
video = stimuli.free_viewing_video(n_train_trials + n_val_trials, n_frames, window=window,
                                   seed=seed)
gaze = stimuli.GazeModel()
note(saccade_rate=video.saccade_rate_hz(), gate_open_pct=100 * video.gate_open_fraction(),
     planned_rate=gaze.saccade_rate_hz, amp_low=gaze.saccade_amplitude_deg[0],
     amp_high=gaze.saccade_amplitude_deg[1], gate_low=gaze.gate_low_deg_s,
     gate_high=gaze.gate_high_deg_s)

# %% mystnb={"image": {"alt": "Gaze position and saccade gate over time in the synthetic free-viewing video"}} tags=["hide-input"]
plots.plot_free_viewing(video)
plt.show()

# %% [markdown]
# Across all videos the simulated gaze makes {glue:text}`saccade_rate:.1f` saccades per second,
# a little below the planned rate because every video opens with a full inter-saccade interval
# (over long recordings the generator reaches the planned rate; a unit test checks this). The
# gate is more than half open in only {glue:text}`gate_open_pct:.1f`% of the frames: most of
# the time the model is in its fixation regime, and $\lambda_{\mathrm{sac}}$ shapes a small
# part of the data, a first hint that it will be hard to pin down.
#
# ## What the four constants do
#
# The teacher uses the document's original values. In time constants they are:
# $1/\lambda_{\mathrm{fix}} =$ {glue:text}`tau_fix_ms:.0f` ms,
# $1/\lambda_{\mathrm{sac}} =$ {glue:text}`tau_sac_ms:.0f` ms,
# $1/(1-\alpha_{\mathrm{fast}}) =$ {glue:text}`tau_fast_frames:.1f` frames and
# $1/(1-\alpha_{\mathrm{slow}}) =$ {glue:text}`tau_slow_frames:.0f` frames. The figure shows
# the response of each stage: the relaxation's response to a step of its drive with the gate
# closed and fully open, $1 - e^{-\lambda (t+1) \Delta t}$, and the weight
# $(1-\alpha)\,\alpha^k$ each average gives the frame $k$ frames back.

# %%
truth = {k: polar.load_config(teacher_config)[k] for k in polar_fit.CONSTANTS}
note(**polar.time_constants(**truth))

# %% mystnb={"image": {"alt": "Step responses of the fixation and saccade dynamics and the fast and slow temporal kernels against time in milliseconds"}} tags=["hide-input"]
dynamics = polar.PolarDynamics(truth["lambda_fix"], truth["lambda_sac"])
fast, slow = polar.TemporalSummarizer(truth["alpha_fast"], truth["alpha_slow"]).kernels(60)
plots.plot_stage_responses(
    np.arange(60) * 1000 / video.fps,
    {r"fixation ($\lambda_{fix}$)": dynamics.step_response(60, gate=0.0),
     r"saccade ($\lambda_{sac}$)": dynamics.step_response(60, gate=1.0)},
    {r"$\alpha_{fast}$": fast, r"$\alpha_{slow}$": slow})
plt.show()

# %% [markdown]
# An average that starts at zero is too small for its first few time constants: after $t+1$
# frames of a constant input $x$ it holds $(1-\alpha^{t+1})\,x$. The summariser divides by that
# factor, so a constant input is summarised as itself from the first frame (a unit test checks
# this). Without the correction the slow trace would spend its first
# {glue:text}`tau_slow_frames:.0f` frames of every recording ramping up, and the fit would
# have to explain that ramp with the constants.
#
# Both stages are linear recurrences, $s_t = d_t\, s_{t-1} + (1 - d_t)\, x_t$. Their
# definition in hdlib is the frame loop the document writes,
# `hdlib.models.polar.amplitude_relaxation` and `hdlib.models.polar.exponential_average`;
# the models run the same equations through a `backend` (`hdlib.models.backends`). On the CPU
# the default is compiled kernels that read each input once; the `"torch"` backend, for a GPU,
# uses the closed form: with $c_t = \sum_{k \le t} \log d_k$, every state is
# $s_t = e^{c_t} s_{-1} + \sum_{k \le t} e^{c_t - c_k} (1 - d_k) x_k$, a lower-triangular
# matrix product per block of frames in which no exponent is positive. The unit tests check
# every backend's values and gradients against the frame loop, and `benchmarks/polar_speed.py`
# measures what each gains.
#
# ## A teacher with known constants
#
# Each frame is filtered by quadrature (complex Gabor) filters at three wavelengths and four
# orientations, each placed at four positions of the window: {glue:text}`n_features` features,
# each an amplitude and a phase. Amplitudes are divided by their mean over all videos, so a
# typical amplitude is 1. The teacher relaxes them with its constants, summarises them, and
# reads out each neuron's rate as a scaled softplus of a sparse linear mix: every neuron reads
# a random quarter of the relaxed amplitudes and of both averages, with weights of both signs
# so that some neurons are transient (fast minus slow) and others sustained, and a bias that
# sets the drive to 1 when every amplitude sits at its mean. Spike counts are Poisson draws,
# one per frame and neuron, with mean rate times frame duration. The first
# {glue:text}`n_train_trials` videos are for training, the rest are held out.

# %%
features = polar_v1.encode_video(video)
teacher = polar_fit.make_teacher(features.amplitude.shape[-1], n_neurons, seed=seed, **truth)
data = polar_fit.simulate(teacher, features, seed=seed + 1)
train = data.trials(slice(0, n_train_trials))
val = data.trials(slice(n_train_trials, None))
ceiling = polar_fit.evaluate(teacher, val)["ceiling_bits_per_spike"]
note(n_features=features.amplitude.shape[-1], n_train_trials=n_train_trials,
     mean_rate=data.rates.mean().item(), n_train_spikes=int(train.counts.sum().item()),
     ceiling_bits=ceiling)

# %% mystnb={"image": {"alt": "Teacher firing rates and spike counts of one held-out trial, with saccades marked"}} tags=["hide-input"]
plots.plot_teacher_spikes(data.rates, data.counts, video.gate, video.fps, trial=n_train_trials)
plt.show()

# %% [markdown]
# The teacher fires at {glue:text}`mean_rate:.1f` spikes/s on average; the training set holds
# {glue:text}`n_train_spikes` spikes. Fits are scored on the held-out videos by the Poisson
# log-likelihood gain over a null model that gives each neuron its mean rate, in bits per spike:
# $\big(\log L(r) - \log L(\bar r)\big) / (N_{\mathrm{spikes}} \ln 2)$. The true rates gain
# {glue:text}`ceiling_bits:.3f` bits per spike: no model can expect to do better on these
# data, and a model that does is fitting the held-out set's noise by chance.

# %% [markdown]
# ## Fitting the constants back, until they stop moving
#
# A student with the teacher's architecture and a fresh random readout (seeded) is fitted to
# the training spikes by `hdlib.fitters.polar_fit.fit` on the book's training engine
# (`hdlib.train.Trainer`). Each step draws {glue:text}`batch_size` training videos at random,
# from a generator seeded by the fit's seed and the step number, and takes one Adam step on the
# Poisson negative log-likelihood of their counts, $\overline{r\,\Delta t - k \log(r\,\Delta t)}$
# over all frames and neurons. The optimiser holds two parameter groups at constant rates: the
# readout at {glue:text}`learning_rate`, and the learnable constants at
# {glue:text}`temporal_lr_scale` times that, the document's advice. The constants are stored as
# $\log\lambda$ and $\operatorname{logit}\alpha$, so an Adam step of size $\eta$ changes a rate
# by a factor of at most about $e^{\eta}$ and keeps every $\alpha$ in $(0, 1)$; a rate cannot
# turn negative, which the document's "enforced by initialization" does not guarantee for a
# rate kept as a raw parameter. Which constants learn follows the configuration: Option 1
# (`learnable_alphas: false`) learns the two rates and keeps both alphas at their original
# values.
#
# **Convergence rule.** The learning rate stays constant, so a fit cannot look settled merely
# because its rate has been annealed away. At a constant rate a constant jitters from minibatch
# to minibatch, so the rule reads trailing means: with $m_c(t)$ the mean of constant $c$ over
# the last $k =$ {glue:text}`conv_window` steps, a fit stops at the first step $t \ge 2k$ at
# which $\max_{j \le k} |m_c(t) - m_c(t-j)| / |m_c(t)| <$ {glue:text}`conv_rtol` for every
# learnable constant $c$ (`hdlib.train.Converged` on these means). A fit that has not met it
# after {glue:text}`max_steps` steps stops there and is reported as not converged.
#
# The live run fits the start(s) named in the parameters, here the document's recommended
# Option 2 (relaxed), on seed {glue:text}`seed`; a later section loads the fits of every start
# over the stored seeds.

# %%
settings = dict(learning_rate=learning_rate, batch_size=batch_size, max_steps=max_steps,
                rtol=convergence_rtol, window=convergence_window, seed=seed, progress=False)
plan = ([(start, temporal_lr_scale) for start in initial_configs]
        + [(start, 1.0) for start in full_rate_configs])
fits = {(start, scale): polar_fit.fit(start, train, temporal_lr_scale=scale, **settings)
        for start, scale in plan}
summaries = {key: polar_fit.summarize_fit(model, history, truth, val, window=convergence_window)
             for key, (model, history) in fits.items()}
note(batch_size=batch_size, learning_rate=learning_rate, temporal_lr_scale=temporal_lr_scale,
     conv_window=convergence_window, conv_rtol=convergence_rtol, max_steps=max_steps, seed=seed)

# %% mystnb={"image": {"alt": "Trajectories of the four temporal constants during the live fits until the convergence rule stopped them, with the true values dashed"}} tags=["hide-input"]
histories = {polar_fit.start_name(polar_fit.fit_label(start, scale)): history["constants"]
             for (start, scale), (_, history) in fits.items()}
plots.plot_constant_trajectories(histories, truth, polar_fit.CONSTANTS)
plt.show()

# %%
live = pd.DataFrame([{"start": polar_fit.START_NAMES.get(start, start), "lr scale": scale,
                      **{k: s[k] for k in polar_fit.CONSTANTS},
                      "largest error": s["largest_error"], "steps": s["steps"],
                      "converged": s["converged"], "val bits/spike": s["bits_per_spike"]}
                     for (start, scale), s in summaries.items()])
tables.show(live.set_index("start"), units=polar_fit.UNITS)
first = next(iter(summaries.values()))
note(live_steps=first["steps"], live_error_pct=100 * first["largest_error"],
     live_tau_error_pct=100 * first["largest_tau_error"],
     live_converged="met" if first["converged"] else "did not meet")

# %% [markdown]
# The first live fit {glue:text}`live_converged` the rule, after {glue:text}`live_steps` steps.
# Its constants settle, but not at the teacher's values: the largest relative error of a
# constant is {glue:text}`live_error_pct:.0f`%, and {glue:text}`live_tau_error_pct:.0f`% in the
# time constants $1/\lambda$ and $1/(1-\alpha)$ (an $\alpha$ near 1 hides a large error of its
# time constant behind a small error of $\alpha$ itself, since
# $d\tau/\tau = d\alpha/(1-\alpha)$). Is that the data's fault or the fit's? The next section
# asks how much these spikes can say about each constant.
#
# ## How much the spikes say about each constant
#
# **The loss around the truth.** With the readout and both alphas held at the teacher's values,
# the total Poisson negative log-likelihood of the training spikes (in nats, summed over every
# frame and neuron) is evaluated on a grid of $\lambda_{\mathrm{fix}}$ and
# $\lambda_{\mathrm{sac}}$ from half to twice their true values (`polar_fit.loss_slice`). A
# likelihood-ratio interval at 95% for one constant with everything else known spans the values
# within 1.92 nats of the minimum.
#
# **The Fisher information.** The curvature of the expected loss at the truth measures the
# same thing for all four constants at once and, unlike a slice, lets the readout adapt.
# `polar_fit.fisher_information` computes the expected Fisher information of the counts about
# the constants in their stored forms, $I_{cc}$, and the part that survives when each neuron's
# readout (its {glue:text}`n_readout` weights and bias) is estimated from the same spikes, the
# Schur complement $I_{cc} - \sum_n I_{cw}^{(n)} \big(I_{ww}^{(n)}\big)^{-1} I_{wc}^{(n)}$. Its
# inverse bounds the variance of any unbiased estimate (Cramér–Rao). We report the bound as a
# standard error of each time constant's relative error, $\mathrm{se}(d\tau/\tau)$: equal to
# $\mathrm{se}(\log\lambda)$ for a rate and to $\alpha\,\mathrm{se}(\operatorname{logit}\alpha)$
# for an average.

# %%
factors = np.geomspace(0.5, 2.0, 9)
grid_fix, grid_sac = truth["lambda_fix"] * factors, truth["lambda_sac"] * factors
slice_nll = polar_fit.loss_slice(teacher, train, grid_fix, grid_sac)
delta = (slice_nll - slice_nll[4, 4]).numpy()
info = polar_fit.fisher_information(teacher, train)
se_known = polar_fit.standard_errors(info["constants"], truth)
se_learned = polar_fit.standard_errors(info["profiled"], truth)
identifiability = pd.DataFrame({"se, readout known (%)": {k: 100 * v for k, v in se_known.items()},
                                "se, readout learned (%)": {k: 100 * v
                                                            for k, v in se_learned.items()}})
display(identifiability.style.format(precision=1))
live_z = max(abs(np.log1p(first[f"error_{k}"])) / se_learned[k]
             for k in ("lambda_fix", "lambda_sac"))
correlation = {key: torch.linalg.inv(matrix) for key, matrix in info.items()}
correlation = {key: (c / c.diag().sqrt()[:, None] / c.diag().sqrt()[None]).numpy()
               for key, c in correlation.items()}
curvatures, directions = torch.linalg.eigh(info["profiled"])
weakest = directions[:, 0] * torch.sign(directions[:, 0].sum())  # least-determined direction


def stored_form(name, value):
    """log lambda or logit alpha, the coordinates the fit learns in."""
    return np.log(value) if name.startswith("lambda") else np.log(value / (1 - value))


moved = torch.tensor([stored_form(k, first[k]) - stored_form(k, truth[k])
                      for k in polar_fit.CONSTANTS], dtype=torch.float64)
live_cosine = float(moved @ weakest / moved.norm())
note(n_readout=3 * features.amplitude.shape[-1], grid_step=float(factors[4] / factors[3]),
     se_sac_pct=100 * se_learned["lambda_sac"], se_fix_pct=100 * se_learned["lambda_fix"],
     se_worst_pct=100 * max(se_learned.values()),
     se_worst_name=max(se_learned, key=se_learned.get),
     inflation=max(se_learned[k] / se_known[k] for k in se_known),
     two_se_pct=196 * max(se_learned.values()),
     cut_fix_low=float(delta[3, 4]), cut_sac_low=float(delta[4, 3]),
     live_z=float(live_z), rate_corr_known=float(correlation["constants"][0, 1]),
     rate_corr_learned=float(correlation["profiled"][0, 1]),
     weakest_main=polar_fit.CONSTANTS[int(weakest.abs().argmax())],
     weakest_se=float(1 / curvatures[0].sqrt()),
     weakest_signs=("moves all four constants the same way" if bool((weakest > 0).all())
                    else "moves some constants up and others down"),
     live_cosine=live_cosine,
     live_alignment=("points along" if live_cosine > 0.7 else "is not aligned with"),
     live_along_se=float((moved @ weakest) * curvatures[0].sqrt()))

# %% mystnb={"image": {"alt": "Training loss over a grid of the fixation and saccade rates around the true values, with the live fit's end point marked, and the two cuts through the truth"}} tags=["hide-input"]
ends = {polar_fit.start_name(polar_fit.fit_label(start, scale)): (s["lambda_fix"], s["lambda_sac"])
        for (start, scale), s in summaries.items()}
plots.plot_loss_slice(grid_fix, grid_sac, delta, truth, ends)
plt.show()

# %% [markdown]
# Along each rate alone the loss is steep: one grid step below the truth (a factor of
# {glue:text}`grid_step:.2f`) costs {glue:text}`cut_fix_low:.0f` nats along
# $\lambda_{\mathrm{fix}}$ and {glue:text}`cut_sac_low:.0f` nats along $\lambda_{\mathrm{sac}}$,
# far beyond the 1.92 nats of a 95% interval. With the readout known, the two rates are
# nearly independent (their estimates would correlate at {glue:text}`rate_corr_known:.2f`).
# That changes once the readout is learned with them: the Cramér–Rao standard errors grow up to
# {glue:text}`inflation:.1f` times, to {glue:text}`se_fix_pct:.1f`% for
# $\lambda_{\mathrm{fix}}$ and {glue:text}`se_sac_pct:.1f`% for $\lambda_{\mathrm{sac}}$ and
# {glue:text}`se_worst_pct:.1f`% for the least determined constant
# ({glue:text}`se_worst_name`), and the two rates' estimates correlate at
# {glue:text}`rate_corr_learned:.2f`: a faster fixation decay can be traded against a faster
# saccadic one once the readout reweights the traces. The least determined combination of the
# four constants (the Fisher information's smallest eigenvector, in the stored forms) is
# dominated by {glue:text}`weakest_main` and {glue:text}`weakest_signs`; along it the
# standard error is {glue:text}`weakest_se:.2f` in log or logit units.
#
# The live fit's displacement from the truth, in the same units,
# {glue:text}`live_alignment` that direction (cosine {glue:text}`live_cosine:.2f`), and it has
# gone {glue:text}`live_along_se:.1f`
# standard errors along it, and {glue:text}`live_z:.1f` standard errors on the worse of the
# two rates: further than sampling noise in the spikes would carry an efficient estimate
# (twice the largest standard error is {glue:text}`two_se_pct:.0f`%).
#
# The reason for the valley is visible in the equations. With a linear readout, each feature
# reaches the neurons through three kernels: the relaxation alone, and the relaxation followed
# by each average. Convolving two exponential kernels gives a difference of the same two
# exponentials, so the readout can rebuild nearly the same response from other time constants;
# fitting sums of exponentials is a classically ill-conditioned problem. Only the saccade gate,
# which changes $\lambda$ but not $\alpha$, breaks the symmetry, and it is open in a small
# fraction of the frames.

# %% [markdown]
# ## What learning the constants costs
#
# The document expects "negligible overhead (4 extra parameters)". The parameters are few, but
# learning them means back-propagating through both recurrences over every frame; with the
# constants frozen, only the readout needs gradients. Seconds depend on the machine and its
# load (`benchmarks/polar_speed.py` times them), so the chapter counts operations instead:
# `polar_fit.step_operations` counts the floating-point operations of one training step's
# forward and backward pass with `hdlib.operations.OperationCounter`, which counts matrix
# products (PyTorch's formulas) and element-wise arithmetic (one operation per element). It
# counts on the model's reference form, the frame-by-frame recurrences as the document writes
# them, so the count is the model's arithmetic, not that of whichever fast backend trains it
# (compiled kernels are invisible to any counter that watches PyTorch operations). It compares
# a model whose four constants learn with one whose constants are frozen, on
# {glue:text}`n_flop_cases` random batches of {glue:text}`batch_size` training videos.

# %%
n_features = features.amplitude.shape[-1]
learnable_model = polar_v1.PolarV1(n_features, n_neurons, **truth, seed=seed)
frozen_model = polar_v1.PolarV1(n_features, n_neurons, **truth, learnable_alphas=False,
                                learnable_lambdas=False, seed=seed)
picker = torch.Generator().manual_seed(seed)
flop_ratios = []
for case in range(n_flop_cases):
    batch = train.trials(torch.randperm(n_train_trials, generator=picker)[:batch_size])
    learned_ops = polar_fit.step_operations(learnable_model, batch)
    flop_ratios.append(learned_ops / polar_fit.step_operations(frozen_model, batch))
print(f"operations per step, constants learnable: {learned_ops / 1e6:.1f} MFLOP; "
      f"learnable / frozen: {', '.join(f'{r:.3f}' for r in flop_ratios)}")
note(flop_ratio=flop_ratios[0], n_flop_cases=n_flop_cases)

# %% [markdown]
# A step that learns the constants takes {glue:text}`flop_ratio:.2f` times the counted
# operations of a step that learns the readout alone. With the constants frozen, the backward
# pass stops at the readout: its inputs (the relaxed amplitudes and both averages) need no
# gradient. With the constants learnable, the backward pass runs back through both recurrences
# over every frame, element-wise updates that the frozen step never makes: four parameters
# whose cost is the ratio above, paid by every step.

# %% tags=["hide-input"]
metrics = {"ceiling_bits_per_spike": float(ceiling),
           "gate_open_pct": 100 * video.gate_open_fraction(),
           "flop_ratio": flop_ratios, "slice_delta": delta.tolist(),
           **{f"se_known_{k}": v for k, v in se_known.items()},
           **{f"se_learned_{k}": v for k, v in se_learned.items()}}
for (start, scale), summary in summaries.items():
    label = polar_fit.fit_label(start, scale)
    metrics.update({f"{label}/{key}": value for key, value in summary.items()})

# %% [markdown]
# ## Every start over seeds (stored runs)
#
# One seed cannot tell a real difference between starts from noise, and fitting every start
# on every seed takes longer than a chapter may run. The sweep
# `notebooks/sweeps/05_polar_constants.yaml` ran this chapter once per seed, by the looks of
# the sequential design (each seed
# a new video set, teacher readout, spike draw and student initialisation) with every start
# at the lower rate (Options 1, 2 and 3 and the original values with all four constants
# learnable) and Option 2 also at the readout's full rate, each fit stopped by the convergence
# rule above, with
#
# ```
# OMP_NUM_THREADS=1 python -m hdlib sweep notebooks/05_polar_temporal_constants.py \
#     -f notebooks/sweeps/05_polar_constants.yaml -o results/05_polar_constants --workers 1
# ```
#
# The chapter reads the stored result files back; seed 0 of the sweep is the live run above at
# more starts.

# %%
if stored_results:
    stored = results.load_results(stored_results).sort_values("seed")
    print(results.describe_provenance(stored))
else:  # a sweep run: only this run's own numbers
    stored = pd.DataFrame([{**metrics, "seed": seed}])
labels = polar_fit.stored_fits(stored)
endpoints = polar_fit.endpoint_table(stored)
tables.show(endpoints.set_index("start"), units=polar_fit.UNITS)

# %% [markdown]
# The table gives, for each start, the learned constants as mean ± standard deviation over the
# seeds, and the means of the largest relative error (of the learnable constants and of their
# time constants), of the steps to convergence and of the held-out score; "converged" counts
# the seeds whose fit met the rule. The teacher's true rates score
# {glue:text}`stored_ceiling:.3f` bits per spike on the held-out videos (mean over seeds).

# %% mystnb={"image": {"alt": "Trajectories of the four constants for every start and seed in the stored runs, with the true values dashed"}} tags=["hide-input"]
runs = {polar_fit.start_name(label): [{k: stored[f"{label}/trajectory_{k}"].iloc[i]
                             for k in polar_fit.CONSTANTS} for i in range(len(stored))]
        for label in labels}
plots.plot_constant_runs(runs, truth, every=20)
plt.show()

# %% mystnb={"image": {"alt": "Signed relative error of each constant at the end of each fit, one point per seed, for every start, with the tolerance band shaded"}} tags=["hide-input"]
errors = {polar_fit.start_name(label): {k: polar_fit.per_seed(stored, label, f"error_{k}")
                                        for k in polar_fit.CONSTANTS} for label in labels}
plots.plot_endpoint_errors(errors, tolerance=recovery_tolerance)
plt.show()

# %%
def mean_of(label, key):
    """Mean over the stored seeds of one fit's metric (NaN when the fit is not stored)."""
    if f"{label}/{key}" not in stored:
        return float("nan")
    return float(np.mean(polar_fit.per_seed(stored, label, key)))


O1, ORIGINAL = "polar_v1@0.1", "polar_v1_conservative@0.1"
O2, O3, O2_FULL = "polar_v1_relaxed@0.1", "polar_v1_very_relaxed@0.1", "polar_v1_relaxed@1"

all_four = [label for label in labels if not label.startswith("polar_v1@")]
se_worst = [max(float(stored[f"se_learned_{k}"].iloc[i]) for k in polar_fit.CONSTANTS)
            for i in range(len(stored))]
note(stored_ceiling=float(stored["ceiling_bits_per_spike"].mean()),
     opt1_error_pct=100 * mean_of(O1, "largest_tau_error"),
     opt1_worst_pct=100 * max(polar_fit.per_seed(stored, O1, "largest_tau_error")),
     opt2_error_pct=100 * mean_of(O2, "largest_tau_error"),
     opt3_error_pct=100 * mean_of(O3, "largest_tau_error"),
     orig_error_pct=100 * mean_of(ORIGINAL, "largest_tau_error"),
     opt2_steps=mean_of(O2, "steps"),
     opt3_steps=mean_of(O3, "steps"),
     jitter_ratio=mean_of(O2_FULL, "jitter") / mean_of(O2, "jitter"),
     stored_two_se_pct=196 * float(np.mean(se_worst)),
     tolerance_pct=100 * recovery_tolerance, n_readout_plus_bias=3 * n_features + 1,
     o1_bits=mean_of(O1, "bits_per_spike"), o2_bits=mean_of(O2, "bits_per_spike"),
     orig_bits=mean_of(ORIGINAL, "bits_per_spike"),
     n_all_four=len(all_four) * len(stored),
     n_fast_above=int(sum(v > 0 for label in all_four
                          for v in polar_fit.per_seed(stored, label, "error_alpha_fast"))))

# %% [markdown]
# Where the constants end depends on what learns. The document states its constants as time
# constants in ms, so recovery is judged on those: the largest relative error of the learnable
# constants' time constants. Option 1 keeps the alphas at their original values, which here are
# the teacher's, and learns only the two rates: its largest error is
# {glue:text}`opt1_error_pct:.1f`% on average (its worst seed {glue:text}`opt1_worst_pct:.0f`%).
# The starts in which all four constants learn end at {glue:text}`orig_error_pct:.0f`% from the
# teacher's own values, {glue:text}`opt2_error_pct:.0f`% from the relaxed start and
# {glue:text}`opt3_error_pct:.0f`% from the very relaxed one, against a recovery tolerance of
# {glue:text}`tolerance_pct:.0f`%; the claims table gives each verdict. Starting at the
# teacher's own values does not keep a fit there: the readout starts random, and while it is
# wrong the constants move away and then settle elsewhere. The very relaxed start needs
# {glue:text}`opt3_steps:.0f` steps on average against {glue:text}`opt2_steps:.0f` for the
# relaxed one. At the readout's full rate the constants jitter {glue:text}`jitter_ratio:.1f`
# times as much over the last window as at the lower rate (mean of the per-seed ratios in the
# table). Both averages start equal in Option 3, and nothing in the model ties a name to a
# role, so "alpha_slow ends above alpha_fast" is a question of which average takes which job.
#
# The Cramér–Rao bound says how much the spikes could tell: twice the largest standard error
# is {glue:text}`stored_two_se_pct:.0f`% on average over the seeds, and an efficient estimate
# would scatter around the truth by about one standard error. $\alpha_{\mathrm{fast}}$ ended
# above the truth in {glue:text}`n_fast_above` of the {glue:text}`n_all_four` fits that learn
# all four constants. On the held-out videos Option 1, whose constants stay near the truth,
# scores {glue:text}`o1_bits:.4f` bits per spike, against {glue:text}`o2_bits:.4f` for Option 2
# and {glue:text}`orig_bits:.4f` for the original start with all four constants learnable. Where
# the fits end away from the truth, two explanations remain, and this chapter does not separate
# them: the joint minibatch fit may stop in the long valley of the slice before it reaches the
# likelihood's maximum (the rule stops a fit whose constants creep by less than 1% per window),
# or the maximum itself may sit away from the truth at this data size, because each neuron's
# {glue:text}`n_readout_plus_bias` readout parameters are estimated from the same spikes and
# soak up part of what the constants should explain.

# %% [markdown]
# ## What the document claims, and what we measured
#
# Each row's threshold is fixed before the runs in `hdlib.book.parameters.POLAR_TARGETS`, and
# each row is decided by the book's rule (`hdlib.book.claims`, stated in the introduction): the
# row's p-value over the seeds, corrected for the looks of the sequential design and adjusted
# by Holm over the table, must be at most 0.05, and the mean's side decides between *holds* and
# *fails*. Recovery is measured on the time constants in ms. Under the table, the checks: the
# operation count is deterministic (the same in every random batch), and the order of the two
# rates is the teacher's own ($\lambda_{\mathrm{sac}} > \lambda_{\mathrm{fix}}$ there), so a
# fit inherits it; neither is evidence for a claim.

# %%
rows, check_rows = chapter_claims.polar(stored, flop_ratios)
evidence = claims.evidence_table(rows)
display(claims.styled(evidence))
checks = claims.checks_table(check_rows)
display(checks.style.hide(axis="index"))
for key, verdict in claims.verdicts_by_key(rows, evidence, parameters.POLAR_TARGETS).items():
    glue(f"verdict_{key}", verdict, display=False)
glue("op_ratio", float(np.mean(flop_ratios)), display=False)

# %% [markdown]
# The claims table summarises the chapter. The constants converge by the stated rule
# (*{glue:text}`verdict_converge`*); where they converge to is another matter. Option 1, which
# fixes half of the constants at the right values beforehand, recovers its time constants:
# *{glue:text}`verdict_recovery_polar_v1`*. With all four constants learnable, recovery from the
# original values is *{glue:text}`verdict_recovery_polar_v1_conservative`*, from the relaxed
# start *{glue:text}`verdict_recovery_polar_v1_relaxed`* and from the very relaxed start
# *{glue:text}`verdict_recovery_polar_v1_very_relaxed`*. The document recommends Option 2;
# that it predicts the held-out spikes better than Option 1 is
# *{glue:text}`verdict_option2_beats_option1`*. Agreement between starts, settled
# trajectories and passed sanity checks are not evidence of recovery; the learned constants
# should be reported with the slice or the Fisher information beside them, which show which
# combinations of constants the spikes pin down and which they leave free. Learning the
# constants is not free either: a step that learns them costs {glue:text}`op_ratio:.2f` times
# the operations of a frozen step.

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
claims.print_evidence(evidence)
claims.print_checks(checks)
print("stored, mean largest error per start:",
      {label: round(mean_of(label, "largest_error"), 3) for label in labels})
print("live: Cramér-Rao se (%, readout learned):",
      {k: round(100 * v, 1) for k, v in se_learned.items()})
print(f"live: loss one grid step below the truth: lambda_fix {delta[3, 4]:.0f} nats, "
      f"lambda_sac {delta[4, 3]:.0f} nats")
print(f"live: operations learnable / frozen above 1.1 in every case: {min(flop_ratios) > 1.1}")
print(f"live fit misses the truth by more than {recovery_tolerance:.0%}: "
      f"{first['largest_error'] > recovery_tolerance}")

# %% tags=["remove-cell"]
results.write_result(result_path, metrics, params)

# %% [markdown]
# The line below records how this page was made: the commit and the hash of `hdlib` it ran
# on, the versions of Python, PyTorch and NumPy, the thread count and the running time.

# %% tags=["remove-input"]
print(results.provenance_line())
