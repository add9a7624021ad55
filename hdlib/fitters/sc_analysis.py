"""The analyses of the superior-colliculus chapter: from a session, a fitted model or the
stored runs of a seeded sweep of :func:`hdlib.fitters.sc_fit.fit` to the tables and figures that
answer the document's questions.

* The recording: :func:`describe_session`, :func:`condition_counts`, :func:`unit_ceilings` (the
  per-unit split-half ceiling of the per-condition metric).
* The model: :func:`selectivity_figure` (recorded against fitted selectivity per factor) and
  :func:`diagnose_time_constants` (the document's four hypotheses on why learning ``tau`` broke
  its fits, measured, and a fifth one, ``alpha = dt / tau > 1``).
* Stored runs (rows ``NAME_seedS`` of :func:`hdlib.book.results.load_results`):
  :func:`by_configuration`, :func:`paired_table` (means, intervals and changes paired by seed,
  descriptive), :func:`paired_changes`, :func:`recovery_errors`, :func:`recovery_summary`,
  :func:`main_effects` and :func:`document_claims`.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import torch

from .. import losses as fl
from ..datasets import sessions
from ..models.eirnn import EIRNN


# ---------------------------------------------------------------------------- the data
def describe_session(session: sessions.Session) -> str:
    """Two lines: name, trials, neurons (E/I), bins; the split, the recorded share of bins
    and the mean recorded rate."""
    n_exc = int(session.is_excitatory.sum())
    K, B, N = session.rates.shape
    return (f"{session.info['session_name']} ({session.info['pipeline_version']}): {K} trials, "
            f"{N} neurons ({n_exc} E, {N - n_exc} I), {B} bins of {session.bin_size_ms:g} ms\n"
            f"train/validation/test trials: {len(session.train_idx)}/{len(session.val_idx)}/"
            f"{len(session.test_idx)}; "
            f"{session.mask.float().mean():.0%} of bins recorded; mean rate "
            f"{session.rates[session.mask].mean():.1f} spikes/s")


# ---------------------------------------------------------------------------- the model
# ---------------------------------------------------------------------------- time constants
def tau_gradient(model: EIRNN, batch: dict, seed: int = 0) -> torch.Tensor:
    """``dL_neuron / d tau_raw`` on ``batch`` (the recorded units' rates), with the network's
    noise drawn from a generator seeded by ``seed``."""
    rates = model(batch["inputs"], generator=torch.Generator().manual_seed(seed))
    loss = fl.compute_L_neuron(rates[..., :batch["rates"].shape[-1]], batch["rates"],
                               batch["mask"], batch["condition"])
    (grad,) = torch.autograd.grad(loss, model.tau_raw)
    return grad


def bound_gradients(is_excitatory, batch: dict, tau: float = 50.0,
                    seed: int = 0) -> dict[str, tuple[float, float]]:
    """For ``tau_mode`` ``'clamp'`` and ``'smooth'``: ``max |dL_neuron / d tau_raw|`` with both
    population time constants at ``tau``, and again with the raw parameter pushed to the upper
    bound: ``tau_raw = 1.25 tau_max`` (clamp, beyond it) or a logit of 8 (smooth,
    ``tau = tau_min + (tau_max - tau_min) sigmoid(8)``, within 0.04% of ``tau_max``)."""
    out = {}
    for mode in ("clamp", "smooth"):
        model = EIRNN(is_excitatory, batch["inputs"].shape[-1], learnable_tau="population",
                      tau_mode=mode, tau_e=tau, tau_i=tau, seed=seed)
        inside = tau_gradient(model, batch, seed).abs().max().item()
        with torch.no_grad():
            model.tau_raw.fill_(1.25 * model.tau_max if mode == "clamp" else 8.0)
        out[mode] = (inside, tau_gradient(model, batch, seed).abs().max().item())
    return out


def noise_variances(is_excitatory, n_inputs: int, alphas=(0.2, 0.8), noise_alpha: str = "unit",
                    n_trials: int = 256, n_steps: int = 200, burn_in: int = 50,
                    seed: int = 0) -> tuple[float, float]:
    """Mean rate variance of the E and of the I units of a network with population alphas
    ``(alpha_E, alpha_I)``, no recurrence (``w_scale = 0``), zero input and bias, driven by its
    noise alone: ``x_t = (1 - a) x_{t-1} + s sqrt(a') xi_t`` with ``a'`` the unit's own ``a``
    (``noise_alpha='unit'``) or the mean over units (``'mean'``), whose stationary variance is
    ``s^2 a' / (a (2 - a))``. Variances over trials and the steps after ``burn_in``; the model
    and its noise are seeded by ``seed`` and ``seed + 1``."""
    model = EIRNN(is_excitatory, n_inputs, learnable_alpha="population", noise_alpha=noise_alpha,
                  seed=seed)
    with torch.no_grad():
        model.alpha_logit.copy_(torch.logit(torch.tensor(alphas, dtype=torch.float32)))
        model.w_scale.zero_()
        rates = model(torch.zeros(n_trials, n_steps, n_inputs),
                      generator=torch.Generator().manual_seed(seed + 1))
    variance = rates[:, burn_in:].var(dim=(0, 1))
    return (variance[model.excitatory].mean().item(),
            variance[~model.excitatory].mean().item())


def reversal_fraction(rates: torch.Tensor) -> float:
    """Share of steps along time (dim 1) that reverse direction:
    ``mean(sign(r[t+1] - r[t]) != sign(r[t] - r[t-1]))`` over trials, times and units."""
    step = torch.diff(rates, dim=1)
    return (torch.sign(step[:, 1:]) != torch.sign(step[:, :-1])).float().mean().item()


def inhibitory_reversals(is_excitatory, inputs: torch.Tensor, tau_i_values=(50.0, 20.0),
                         tau_e: float = 50.0, tau_min: float = 10.0,
                         seed: int = 0) -> dict[float, float]:
    """:func:`reversal_fraction` of the inhibitory units' noise-free rates on ``inputs`` for
    each ``tau_I`` (``tau_min`` lowered below one bin, so that ``alpha_I = dt / tau_I`` can
    exceed 1)."""
    out = {}
    for tau_i in tau_i_values:
        model = EIRNN(is_excitatory, inputs.shape[-1], tau_min=tau_min, tau_e=tau_e,
                      tau_i=tau_i, seed=seed)
        with torch.no_grad():
            rates = model(inputs, noise=False)[..., ~model.excitatory]
        out[float(tau_i)] = reversal_fraction(rates)
    return out


@dataclasses.dataclass
class TimeConstantDiagnosis:
    """What :func:`diagnose_time_constants` measured (see its docstring)."""

    gradients: dict  # tau_mode -> (max |grad| inside the bounds, at/beyond the upper bound)
    alpha_shape: tuple
    n_units: int
    variances: dict  # noise_alpha -> (E variance, I variance)
    devices: set
    reversals: dict  # tau_I (ms) -> share of reversing steps of the I units
    dt: float

    @property
    def clamp_blocks_gradient(self) -> bool:
        """A clamped ``tau`` beyond its bound receives exactly zero gradient."""
        return self.gradients["clamp"][1] == 0.0

    def table(self) -> pd.DataFrame:
        """One row per measurement, formatted for reading."""
        n = self.n_units
        rows = {f"tau gradient ({mode}) inside / beyond the bound": f"{a:.2e} / {b:.2e}"
                for mode, (a, b) in self.gradients.items()}
        rows["alpha shape"] = (f"{self.alpha_shape}, state (trials, {n}); a column alpha with "
                               f"{n} trials broadcasts silently to ({n}, {n})")
        for how, label in (("unit", "per-unit noise"), ("mean", "mean-alpha noise")):
            rows[f"rate variance E / I, {label}"] = "{:.2f} / {:.2f}".format(
                *self.variances[how])
        rows["devices of parameters and buffers"] = ", ".join(sorted(self.devices))
        for tau_i, share in self.reversals.items():
            rows[f"I units, tau_I = {tau_i:g} ms (alpha {self.dt / tau_i:.2f}): steps "
                 "reversing direction"] = f"{share:.0%}"
        return pd.Series(rows, name="measured").to_frame()


def diagnose_time_constants(is_excitatory, batch: dict, seed: int = 0,
                            dt: float = 25.0) -> TimeConstantDiagnosis:
    """The document's four hypotheses, each measured on ``batch``: (1) the gradient through
    ``torch.clamp`` inside and beyond the bounds, against the smooth form
    (:func:`bound_gradients`); (2) the shape of ``alpha`` (one entry per unit) against the state
    ``(trials, units)``; (3) the rate variances with per-unit and mean-alpha noise at
    ``alpha_E = 0.2``, ``alpha_I = 0.8`` (:func:`noise_variances`); (4) the devices of every
    parameter and buffer. And (5): the inhibitory units' reversing steps with ``tau_I`` at 50
    and 20 ms, ``alpha_I`` = 0.5 and 1.25 (:func:`inhibitory_reversals`)."""
    n_inputs = batch["inputs"].shape[-1]
    model = EIRNN(is_excitatory, n_inputs, learnable_tau="neuron", dt=dt, seed=seed)
    return TimeConstantDiagnosis(
        gradients=bound_gradients(is_excitatory, batch, seed=seed),
        alpha_shape=tuple(model.alpha.shape), n_units=model.n_total,
        variances={how: noise_variances(is_excitatory, n_inputs, noise_alpha=how, seed=seed)
                   for how in ("unit", "mean")},
        devices={t.device.type for t in [*model.parameters(), *model.buffers()]},
        reversals=inhibitory_reversals(is_excitatory, batch["inputs"], seed=seed), dt=dt)


# ---------------------------------------------------------------------------- the sweep


# ---------------------------------------------------------------------------- the recorded session
#: The published figure for the shipped session (``data/README.md``): the recording lab's own
#: model and metric, the best of 827 epochs chosen on the validation split, 17 minutes.
PUBLISHED = {"psth_corr_pooled": 0.3608, "psth_corr_pooled_e": 0.3518,
             "psth_corr_pooled_i": 0.3735, "epochs": 827, "minutes": 17}


def condition_counts(session: sessions.Session) -> pd.DataFrame:
    """Trials per condition (target identity x location) in the training, validation and test
    splits, and the median recorded length of the condition's trials (ms)."""
    rows = []
    names = {1: "face", 2: "non-face", 3: "bullseye"}
    for c in torch.unique(session.condition).tolist():
        trials = torch.nonzero(session.condition == c).flatten()
        row = {"condition": f"{names.get(c // 4 + 1, c // 4 + 1)}, location {c % 4 + 1}"}
        for label, part in (("training", session.train_idx), ("validation", session.val_idx),
                            ("test", session.test_idx)):
            row[f"{label} trials"] = int(torch.isin(trials, part).sum())
        row["median length (ms)"] = float(session.mask[trials].sum(1).float().median()
                                          * session.bin_size_ms)
        rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def unit_ceilings(target, mask, condition, n_splits: int = 20, seed: int = 0) -> torch.Tensor:
    """Per-unit split-half ceiling of the book's per-condition metric, ``(N,)``: the PSTH
    correlation between random halves of each condition's trials, averaged over conditions and
    ``n_splits`` splits (``r``), corrected to the full trial count, ``sqrt(2r / (1 + r))``
    (0 where ``r <= 0``); :func:`hdlib.losses.split_half_ceiling` per unit."""
    rng = np.random.default_rng(seed)
    labels = torch.unique(condition)
    total = torch.zeros(target.shape[-1], dtype=torch.float64)
    for _ in range(n_splits):
        half = fl.stratified_half(condition, rng)
        a, counts_a, _ = fl.psth(target[half], mask[half], condition[half], labels)
        b, counts_b, _ = fl.psth(target[~half], mask[~half], condition[~half], labels)
        valid = ((counts_a >= 1) & (counts_b >= 1))[..., None].expand_as(a)
        corr = fl.masked_correlation(a, b, valid)  # (C, N)
        used = valid.any(1)
        total += ((corr * used).sum(0) / used.sum(0).clamp(min=1)).double()
    r = (total / n_splits).clamp(min=0)
    return (2 * r / (1 + r)).sqrt().float()


# ---------------------------------------------------------------------------- stored sweeps
def by_configuration(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Runs of a seeded sweep (rows ``NAME_seedS``) grouped by configuration ``NAME``, each
    indexed by seed."""
    names = table.index.str.rsplit("_seed", n=1).str[0]
    return {name: group.set_index("seed").sort_index()
            for name, group in table.assign(config=names).groupby("config", sort=False)}


def paired_table(table: pd.DataFrame, baseline: str = "baseline",
                 metrics=("bits_per_spike", "psth_r_smooth", "pooled_metric")) -> pd.DataFrame:
    """One row per configuration of a seeded sweep, describing its runs: the mean of each of
    ``metrics`` over seeds with its interval, and the change of ``metrics[0]`` against
    ``baseline`` paired by seed (mean and interval of the per-seed differences). ``n``: the
    seeds both runs have. The intervals are those of :func:`hdlib.book.claims.interval` (the
    level of one look of the sequential design, named in the columns); a quantity with the
    same value in every run is shown as such, not as an interval. Nothing here is a verdict:
    the chapter's claims table decides, with the book's rule."""
    from ..book.claims import LOOK_CONFIDENCE, format_number, interval

    label = f"{100 * LOOK_CONFIDENCE:.1f}% CI"

    def described(values, signed=False):
        _, low, high = interval(values)
        if low == high:
            return "same in all runs"
        ends = [("+" if signed and x >= 0 else "") + format_number(x, 3) for x in (low, high)]
        return f"[{ends[0]}, {ends[1]}]"

    groups = by_configuration(table)
    base = groups[baseline][metrics[0]]
    rows = {}
    for name, group in groups.items():
        row = {"n": len(group)}
        for metric in metrics:
            row[metric] = float(group[metric].mean())
            row[f"{metric} {label}"] = described(group[metric])
        if name != baseline:
            seeds = group.index.intersection(base.index)
            change = group.loc[seeds, metrics[0]] - base.loc[seeds]
            row.update({"n": len(seeds), "change": float(change.mean()),
                        f"change {label}": described(change, signed=True)})
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def missing_configurations(table: pd.DataFrame, expected) -> list[str]:
    """Those of ``expected`` (configuration names) with fewer than 3 seeds in ``table``."""
    groups = by_configuration(table)
    return [name for name in expected if name not in groups or len(groups[name]) < 3]


def paired_changes(table: pd.DataFrame, name: str, baseline: str = "baseline",
                   metric: str = "bits_per_spike", relative: bool = False) -> list[float]:
    """Per-seed change of ``metric`` of configuration ``name`` against ``baseline`` (paired by
    seed), absolute or relative (``value / baseline - 1``)."""
    groups = by_configuration(table)
    run, base = groups[name][metric], groups[baseline][metric]
    seeds = run.index.intersection(base.index)
    change = run.loc[seeds] - base.loc[seeds]
    return (change / base.loc[seeds] if relative else change).tolist()


# ---------------------------------------------------------------------------- figures
def recording_figure(session: sessions.Session, units, ceilings: torch.Tensor):
    """Top row: the PSTHs of ``units`` per target location (face targets, all trials of the
    session, recorded bins only), and the per-unit split-half ceilings, E and I apart. Bottom
    row: each unit's raster, spike counts per bin (``rate * bin_size_ms / 1000``) of every
    face-target trial, grouped by location (red lines between groups), unrecorded bins blank.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(units) + 1, figsize=(4 * (len(units) + 1), 6.4),
                             gridspec_kw={"height_ratios": [1, 1.2]})
    psths, counts, labels = fl.psth(session.rates, session.mask, session.condition)
    time_s = session.time_ms / 1000
    face = [(c, label) for c, label in enumerate(labels.tolist()) if label // 4 == 0]  # locations
    for ax, unit in zip(axes[0], units):
        for c, label in face:
            shown = counts[c] >= 2
            ax.plot(time_s[shown], psths[c, shown, unit], label=f"location {label % 4 + 1}")
        kind = "E" if session.is_excitatory[unit] else "I"
        ax.set_title(f"unit {unit} ({kind})", fontsize=10)
    axes[0, 0].set_ylabel("spikes/s")
    axes[0, 0].legend(fontsize=7)
    groups = [torch.nonzero(session.condition == label).flatten() for _, label in face]
    trials = torch.cat(groups)
    bounds = np.cumsum([len(group) for group in groups])[:-1]
    spikes = session.rates[trials] * (session.bin_size_ms / 1000)
    blank = ~session.mask[trials]
    extent = (time_s[0], time_s[-1], len(trials), 0)
    for ax, top, unit in zip(axes[1], axes[0], units):
        counts_shown = np.ma.masked_array(spikes[:, :, unit].numpy(), blank.numpy())
        image = ax.imshow(counts_shown, aspect="auto", cmap="Greys", interpolation="nearest",
                          extent=extent, vmin=0, vmax=max(1.0, float(counts_shown.max())))
        for bound in bounds:
            ax.axhline(bound, color="tab:red", lw=0.6)
        ax.set_xlim(top.get_xlim())
        ax.set_xlabel("time in trial (s)")
        fig.colorbar(image, ax=ax, label="spikes per bin", fraction=0.05)
    axes[1, 0].set_ylabel("face-target trials, by location")
    exc = session.is_excitatory
    bins = np.linspace(0, 1, 21)
    axes[0, -1].hist([ceilings[exc].numpy(), ceilings[~exc].numpy()], bins=bins,
                     label=["E units", "I units"], stacked=True)
    axes[0, -1].set_xlabel("split-half ceiling of the per-condition correlation")
    axes[0, -1].set_ylabel("units")
    axes[0, -1].legend(fontsize=8)
    axes[1, -1].axis("off")
    fig.tight_layout()
    return fig


def training_figure(history: dict):
    """Left: the training loss per step (minibatches); right: the validation bits per spike at
    every check, with the kept (best) state marked."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax_loss.plot(np.arange(1, len(history["loss"]) + 1), history["loss"], lw=0.8)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (minibatch)")
    checks = history["monitor"]
    ax_val.plot(checks["step"], checks["val_bits_per_spike"], "o-", ms=3)
    ax_val.axvline(history["best_step"], color="k", ls="--", lw=0.8, label="kept state")
    ax_val.set_xlabel("step")
    ax_val.set_ylabel("validation bits/spike")
    ax_val.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_points_figure(table: pd.DataFrame, order, lines: dict):
    """Each configuration's runs as points (one per seed) and their mean as a bar, one panel
    per metric of ``lines`` (metric -> ``(label, reference value drawn as a dashed line)``)."""
    import matplotlib.pyplot as plt

    groups = by_configuration(table)
    order = [name for name in order if name in groups]
    fig, axes = plt.subplots(1, len(lines), figsize=(6.5 * len(lines), 0.3 * len(order) + 1.5),
                             sharey=True)
    for ax, (metric, (label, reference)) in zip(np.atleast_1d(axes), lines.items()):
        for y, name in enumerate(order):
            values = groups[name][metric].to_numpy()
            ax.barh(y, values.mean(), color="0.85")
            ax.plot(values, np.full(len(values), y), "o", color="C0", ms=4)
        ax.axvline(reference[1], color="k", ls="--", lw=0.8, label=reference[0])
        ax.set_xlabel(f"test {label}")
        ax.legend(fontsize=8, loc="lower right")
    first = np.atleast_1d(axes)[0]
    first.set_yticks(range(len(order)), order)
    first.invert_yaxis()
    fig.tight_layout()
    return fig


def recovery_figure(table: pd.DataFrame):
    """Final ``tau_E`` and ``tau_I`` of every run of the recovery design (one point per seed),
    with the teacher's values as lines."""
    import matplotlib.pyplot as plt

    groups = by_configuration(table)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    names = list(groups)
    for ax, key, truth_key, label in ((axes[0], "tau_e_ms", "teacher_tau_e_ms", "tau_E"),
                                      (axes[1], "tau_i_ms", "teacher_tau_i_ms", "tau_I")):
        for y, name in enumerate(names):
            ax.plot(groups[name][key], np.full(len(groups[name]), y), "o", color="C0")
        ax.axvline(float(table[truth_key].iloc[0]), color="k", ls="--", lw=0.8,
                   label="teacher")
        ax.set_xlabel(f"fitted {label} (ms)")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- chapter tables
@torch.no_grad()
def selectivity_figure(model: EIRNN, session: sessions.Session, fitted, index):
    """Per factor with two or more levels: each recorded neuron's selectivity (target epoch,
    :func:`hdlib.metrics.selectivity`, averaged over the factor's rows) on the trials
    ``index``, against the fit's (noise off) and the Poisson GLM's; the panel titles give the
    correlations across neurons."""
    import matplotlib.pyplot as plt

    from .. import metrics
    from .sc_fit import target_epoch

    trials = session.trials(index)
    epoch = target_epoch(session, trials)
    fit_rates = model.eval()(trials["inputs"])[..., :session.n_neurons]
    glm_rates = fitted.predict(trials["inputs"], trials["condition"])["Poisson GLM"]
    recorded = metrics.epoch_rates(trials["rates"], epoch)
    predicted = {"E-I RNN fit": fit_rates, "Poisson GLM": glm_rates}
    factors = [(metrics.FACTORS[name], values[index.numpy()])
               for name, values in session.labels.items()
               if len(np.unique(values[index.numpy()])) >= 2]
    fig, axes = plt.subplots(1, len(factors), figsize=(3.2 * len(factors), 3.3))
    for ax, (name, levels) in zip(np.atleast_1d(axes), factors):
        x = metrics.selectivity(recorded, levels).nanmean(0)
        title = []
        for (label, rates), color in zip(predicted.items(), ("C3", "C0")):
            y = metrics.selectivity(metrics.epoch_rates(rates, epoch), levels).nanmean(0)
            ax.scatter(x, y, s=12, color=color, label=label, alpha=0.8)
            match = metrics.selectivity_match(rates, trials["rates"], epoch,
                                              {name: levels})[name]
            title.append(f"{'fit' if label.startswith('E') else 'GLM'} r={match:.2f}")
        ax.axline((0, 0), slope=1, color="0.6", lw=0.8)
        ax.set_title(f"{name}\n{', '.join(title)}", fontsize=9)
        ax.set_xlabel("recorded selectivity")
    np.atleast_1d(axes)[0].set_ylabel("predicted selectivity")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def recovery_errors(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (runs of the recovery sweep) with the relative errors of the fitted time
    constants against the teacher's, ``error_e``, ``error_i`` and the worse of the two."""
    out = table.copy()
    for key in ("e", "i"):
        truth = out[f"teacher_tau_{key}_ms"]
        out[f"error_{key}"] = (out[f"tau_{key}_ms"] - truth).abs() / truth
    out["worst_error"] = out[["error_e", "error_i"]].max(axis=1)
    return out


def recovery_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the recovery design: mean fitted time constants, mean relative
    errors and the number of seeds (``table`` from :func:`recovery_errors`)."""
    return pd.DataFrame({
        name: {"tau_E (ms)": g["tau_e_ms"].mean(), "tau_I (ms)": g["tau_i_ms"].mean(),
               "error E": g["error_e"].mean(), "error I": g["error_i"].mean(),
               "worst error (max over E, I)": g["worst_error"].mean(), "seeds": len(g)}
        for name, g in by_configuration(table).items()}).T.astype({"seeds": int})


def main_effects(table: pd.DataFrame, column: str = "worst_error") -> dict[str, float]:
    """Main effects of the 2 x 2 recovery design on the mean of ``column``: ``trials`` (1043
    minus 400 trials, averaged over both learning rates) and ``lr`` (10x minus 1x, averaged over
    both trial counts). Cells are named ``trials_{n}_lr_{k}x``."""
    cells = {name: g[column].mean() for name, g in by_configuration(table).items()}

    def mean(names):  # NaN while a cell is missing
        return float(np.mean([cells.get(n, math.nan) for n in names]))

    return {"trials": mean(["trials_1043_lr_1x", "trials_1043_lr_10x"])
            - mean(["trials_400_lr_1x", "trials_400_lr_10x"]),
            "lr": mean(["trials_400_lr_10x", "trials_1043_lr_10x"])
            - mean(["trials_400_lr_1x", "trials_1043_lr_1x"])}


def document_claims(phases: pd.DataFrame, recovery: pd.DataFrame, fit_runs: pd.DataFrame,
                    baselines: dict, ceiling: dict, targets: dict, *,
                    longer: pd.DataFrame | None = None) -> list:
    """The claims of the chapter (:class:`hdlib.book.claims.Claim` rows, thresholds from
    ``targets``, :data:`hdlib.book.parameters.SUPERIOR_COLLICULUS_TARGETS`), every score on the
    same held-out test trials, each row with the versions of its runs.

    The book's targets, on the seeds of the fit command (``fit_runs``): beating the best
    baseline of ``baselines`` (:func:`hdlib.fitters.sc_fit.score_baselines`) on bits/spike and
    on the smoothed per-condition PSTH ``r`` (per-seed differences), reaching 0.6 of the
    smoothed ``ceiling``, selectivity matches, single-trial ``r`` above that of resampled
    recorded trials. The document's items, from the stored sweep ``phases``: each by its
    per-seed change of bits/spike against the baseline paired by seed (the Phase-1 losses
    against the document's own correlation loss, the Poisson distance of ``L_trial`` against
    ``L_trial`` with its Euclidean one; "breaks training" as a relative loss of more than half
    of the *last* state's validation bits/spike, since the kept best state could be the
    untrained start); and, per cell of the recovery design (``recovery`` from
    :func:`recovery_errors`), whether both time constants end within the tolerance. Rows whose
    configuration is missing are left out (see :func:`missing_configurations`). ``longer``
    (runs of the same defaults at a larger step budget, its step count in ``steps``) adds the
    two beat-the-baseline rows at that budget."""
    import dataclasses

    from ..book.claims import Claim
    from .sc_fit import best_baseline

    groups = by_configuration(phases)

    def claim(key, values, table=phases, names=("baseline",), **changes):
        """A row of ``targets[key]`` (its text changed by ``changes``) with the versions of
        the runs of ``table`` (of its configurations ``names``, if given)."""
        if not len(values):
            return None
        target = dataclasses.replace(targets[key], **changes) if changes else targets[key]
        runs = pd.concat([groups[n] for n in names if n in groups]) if names else table
        return Claim(target, list(values),
                     versions=list(runs["version"]) if "version" in runs else None)

    def change(name, metric="bits_per_spike", baseline="baseline", relative=False):
        if name not in groups or baseline not in groups:
            return []
        return paired_changes(phases, name, baseline=baseline, metric=metric,
                              relative=relative)

    def item(key, name=None, **options):
        name = name or key
        baseline = options.get("baseline", "baseline")
        return claim(key, change(name, **options), names=(name, baseline))

    def against(metric, runs):
        best = best_baseline(baselines, metric)
        return best, [v - baselines[best][metric] for v in runs[metric]]

    rows = []
    for runs, budget in ((fit_runs, "3-minute"), *(() if longer is None else (
            (longer, f"{int(longer['steps'].max())}-step"),))):
        for key, metric in (("beats_baseline_bps", "bits_per_spike"),
                            ("beats_baseline_r", "psth_r_smooth")):
            best, gap = against(metric, runs)
            rows.append(claim(key, gap, table=runs, names=(), claim=targets[key].claim.replace(
                "The fit", f"The {budget} fit").replace("best baseline",
                                                        f"best baseline ({best})")))
    rows.append(claim("ceiling", [v / ceiling["psth_r_smooth"]
                                  for v in fit_runs["psth_r_smooth"]], table=fit_runs, names=()))
    for factor in ("reward", "salience", "location"):
        if f"selectivity_{factor}" in fit_runs:
            rows.append(claim("selectivity", list(fit_runs[f"selectivity_{factor}"]),
                              table=fit_runs, names=(), claim=targets["selectivity"].claim
                              .replace("selectivity", f"{factor} selectivity (reliability "
                                       f"{ceiling[f'selectivity_{factor}']:.2f})")))
    resampled = baselines["resampled trials"]["single_trial_r"]
    rows.append(claim("single_trial", [v - resampled for v in fit_runs["single_trial_r"]],
                      table=fit_runs, names=()))
    rows += [item("raw_inputs"), item("scalar_gain"),
             claim("correlation_lneuron", [-v for v in change("correlation_lneuron")],
                   names=("correlation_lneuron", "baseline")),
             claim("correlation_lneuron_r",
                   [-v for v in change("correlation_lneuron", metric="psth_r_smooth")],
                   names=("correlation_lneuron", "baseline")),
             *[item(f"hybrid_{w}", baseline="correlation_lneuron") for w in ("0.3", "0.5")],
             item("pooled_term_metric", "pooled_term", metric="pooled_metric"),
             item("pooled_term"),
             *[claim(f"learnable_tau_{kind}",
                     change(f"learnable_tau_{kind}", metric="final_val_bits_per_spike",
                            relative=True), names=(f"learnable_tau_{kind}", "baseline"))
               for kind in ("population", "neuron")],
             item("ltrial_on", metric="single_trial_r"),
             item("ltrial_poisson", baseline="ltrial_on"),
             *[item(f"learnable_alpha_{kind}") for kind in ("scalar", "population", "neuron")],
             item("learnable_tau_smooth"),
             *[item(f"low_rank_{rank}") for rank in (10, 20, 30, 50)],
             *[item(f"cosine_warmup_{w}") for w in (0, 50)],
             *[item(f"activity_reg_{lam}") for lam in ("0.01", "0.001")]]
    for name, group in by_configuration(recovery).items():
        rows.append(claim("recovery", list(group["worst_error"]), table=group, names=(),
                          claim=f"{targets['recovery'].claim} ({name.replace('_', ' ')})"))
    return [row for row in rows if row is not None]
