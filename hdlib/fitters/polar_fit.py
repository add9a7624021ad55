"""Fitting a :class:`~hdlib.models.polar_v1.PolarV1` to spikes: a teacher with known constants,
Poisson spike counts from it, the fit itself, held-out scores, and tables of how well the fits
recover the teacher's constants."""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import statistics

import numpy as np
import pandas as pd
import torch

from .. import losses, validate
from ..models.polar import load_config, time_constants
from ..models.polar_v1 import PolarFeatures, PolarV1
from ..operations import OperationCounter
from ..train import Converged, Step, Trainer

#: The four learnable temporal constants of :class:`PolarV1`.
CONSTANTS = ("lambda_fix", "lambda_sac", "alpha_fast", "alpha_slow")
#: Units of the constants for table headers (the alphas are per-frame decay factors).
UNITS = {"lambda_fix": "1/s", "lambda_sac": "1/s"}
#: Their time constants (:func:`hdlib.models.polar.time_constants`).
TIME_CONSTANTS = ("tau_fix_ms", "tau_sac_ms", "tau_fast_frames", "tau_slow_frames")


def make_teacher(n_features: int, n_neurons: int, seed: int = 0, **constants) -> PolarV1:
    """A teacher with the original constants (unless overridden) and a readout in which every
    neuron mixes the relaxed amplitude and the fast and slow traces of a few features."""
    teacher = PolarV1(n_features, n_neurons, seed=seed, **constants)
    generator = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        weight = torch.randn(n_neurons, 3 * n_features, generator=generator)
        keep = torch.rand(n_neurons, 3 * n_features, generator=generator) < 0.25
        # Mixed signs across the traces make neurons transient (fast minus slow) or
        # sustained, so every time scale shapes the responses.
        weight = weight * keep * 3.0 / math.sqrt(0.25 * 3 * n_features)
        teacher.readout.weight.copy_(weight)
        teacher.readout.bias.copy_(1.0 - weight.sum(dim=1))
    return teacher


@dataclasses.dataclass
class SpikeData:
    """Features, true rates and Poisson counts per frame, ``(trials, T, n_neurons)``."""

    features: PolarFeatures
    rates: torch.Tensor
    counts: torch.Tensor

    def trials(self, index) -> SpikeData:
        return SpikeData(self.features.trials(index), self.rates[index], self.counts[index])


@torch.no_grad()
def simulate(teacher: PolarV1, features: PolarFeatures, seed: int = 0) -> SpikeData:
    """The teacher's rates and Poisson spike counts (one draw, seeded)."""
    rates = teacher(features.amplitude, features.gate)
    generator = torch.Generator().manual_seed(validate.non_negative_int("seed", seed))
    counts = torch.poisson(rates * teacher.dt, generator=generator)
    return SpikeData(features, rates, counts)


@torch.no_grad()
def evaluate(model: PolarV1, data: SpikeData) -> dict:
    """Held-out fit: Poisson log-likelihood gain over each neuron's mean rate in bits per spike
    (model, and the teacher's true rates as the ceiling), and the correlation of the model's
    rates with the true rates (per neuron over trials x frames, averaged)."""
    rates = model(data.features.amplitude, data.features.gate)
    counts = data.counts.flatten(0, 1)
    dt = model.dt

    def log_likelihood(r):
        return -losses.poisson_nll(r.flatten(0, 1) * dt, counts, reduction="sum")

    null = counts.mean(dim=0, keepdim=True).expand_as(counts) / dt
    n_spikes = counts.sum()
    base = log_likelihood(null.reshape(data.counts.shape))
    bits = lambda r: ((log_likelihood(r) - base) / n_spikes / math.log(2)).item()  # noqa: E731
    x = rates.flatten(0, 1) - rates.flatten(0, 1).mean(0)
    y = data.rates.flatten(0, 1) - data.rates.flatten(0, 1).mean(0)
    corr = (x * y).sum(0) / (x.norm(dim=0) * y.norm(dim=0) + 1e-12)
    return {"bits_per_spike": bits(rates), "ceiling_bits_per_spike": bits(data.rates),
            "rate_correlation": corr.mean().item()}


#: The convergence rule of :func:`fit`: the trailing mean of every learnable constant over the
#: last ``window`` steps changes by less than ``rtol`` (relative) over ``window`` steps.
CONVERGENCE = {"rtol": 0.01, "window": 200}


def fit(initial: str | dict, train: SpikeData, *, max_steps: int = 4000,
        learning_rate: float = 5e-2, temporal_lr_scale: float = 0.1, batch_size: int = 16,
        learnable: bool = True, rtol: float = CONVERGENCE["rtol"],
        window: int = CONVERGENCE["window"], seed: int = 0, progress: bool = True):
    """Fit a :class:`PolarV1` with constants started from ``initial`` (a configuration name or
    dict) to the spikes of ``train`` on :class:`hdlib.train.Trainer`, until the constants have
    converged or ``max_steps`` steps have been taken.

    Each step draws ``batch_size`` trials (from the engine's generator seeded by ``(seed,
    step)``) and takes one Adam step on the Poisson negative log-likelihood
    ``mean(r dt - k log(r dt))`` of their counts ``k``. Two parameter groups at constant rates:
    the readout at ``learning_rate`` and the learnable constants (stored as ``log lambda`` and
    ``logit alpha``) at ``temporal_lr_scale * learning_rate``. Which constants learn follows the
    configuration: ``learnable_alphas: false`` keeps both alphas fixed (the document's Option
    1) while the rates learn; ``learnable=False`` freezes all four (only the readout learns).
    ``seed`` also sets the readout's initial weights.

    **Convergence rule** (:class:`hdlib.train.Converged` on trailing means): with
    ``m_c[t] = mean(c[t-window+1 .. t])`` for each learnable constant ``c``, the fit stops at
    the first step ``t >= 2 window`` at which ``max_{k <= window} |m_c[t] - m_c[t-k]| /
    |m_c[t]| < rtol`` for every ``c``. Averaging over a window first keeps the minibatch
    jitter of a constant at a constant learning rate from deciding the rule. With no learnable
    constant, the trailing mean of the loss is watched instead.

    Returns ``(model, history)``: ``history["loss"]`` per step, ``history["constants"]``, each
    of :meth:`PolarV1.constants` before training and after every step (``steps + 1`` values),
    ``history["steps"]``, ``history["converged"]`` (whether the rule fired before
    ``max_steps``) and ``history["stop_reason"]``."""
    values = load_config(initial) if isinstance(initial, str) else dict(initial)
    if not learnable:
        values.update(learnable_alphas=False, learnable_lambdas=False)
    model = PolarV1(train.features.amplitude.shape[-1], train.counts.shape[-1], **values,
                    seed=seed)
    learning_rate = validate.positive_float("learning_rate", learning_rate)
    temporal_lr_scale = validate.positive_float("temporal_lr_scale", temporal_lr_scale)
    max_steps = validate.positive_int("max_steps", max_steps)
    batch_size = validate.positive_int("batch_size", batch_size)
    window = validate.positive_int("window", window)
    temporal = model.temporal_parameters()
    readout = [p for p in model.parameters() if all(p is not q for q in temporal)]
    groups = [{"params": readout}]
    if temporal:
        groups.append({"params": temporal, "lr": learning_rate * temporal_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=learning_rate)
    n_trials = train.counts.shape[0]
    constants = {key: [value] for key, value in model.constants().items()}
    watched = model.learnable_constants() or ["loss"]
    trailing = {key: [] for key in watched}

    def step(ctx) -> Step:
        part = train.trials(torch.randperm(n_trials, generator=ctx.generator)[:batch_size])
        rates = model(part.features.amplitude, part.features.gate)
        return Step(losses.poisson_nll(rates * model.dt, part.counts))

    class RecordConstants:
        """Appends the constants after each step and logs the trailing means the rule reads."""

        def on_step_end(self, engine):
            for key, value in model.constants().items():
                constants[key].append(value)
            for key in watched:
                series = engine.history["loss"] if key == "loss" else constants[key][1:]
                trailing[key].append(statistics.fmean(series[-window:]))
                engine.history.setdefault(f"mean_{key}", []).append(
                    trailing[key][-1] if len(series) >= window else math.nan)

    stopper = Converged([f"mean_{key}" for key in watched],
                        rtol=validate.positive_float("rtol", rtol), window=window)
    engine = Trainer(model, optimizer, step, callbacks=[RecordConstants()],
                     stoppers=[_after(2 * window, stopper)], seed=seed, progress=progress,
                     desc="fit")
    engine.run(max_steps)
    converged = engine.step < max_steps or bool(stopper(engine))
    return model, {"loss": engine.history["loss"], "constants": constants,
                   "steps": engine.step, "converged": converged,
                   "stop_reason": engine.stop_reason}


def _after(first_step: int, stopper):
    """``stopper`` consulted only from step ``first_step`` on."""
    def check(engine):
        return stopper(engine) if engine.step >= first_step else None
    return check


def relative_errors(estimate: dict, truth: dict) -> dict:
    """``|x - x*| / |x*|`` for each of :data:`CONSTANTS` and :data:`TIME_CONSTANTS`, from the
    four constants of ``estimate`` and ``truth`` (time constants are derived from them). An
    alpha near 1 hides a large error of its time constant ``1 / (1 - alpha)`` behind a small
    one of ``alpha``: ``d tau / tau = d alpha / (1 - alpha)``."""
    def full(values):
        four = {k: float(values[k]) for k in CONSTANTS}
        return {**four, **time_constants(**four)}

    x, y = full(estimate), full(truth)
    return {k: abs(x[k] - y[k]) / abs(y[k]) for k in CONSTANTS + TIME_CONSTANTS}


def summarize_fit(model: PolarV1, history: dict, truth: dict, val: SpikeData,
                  window: int = CONVERGENCE["window"], every: int = 20) -> dict:
    """One fit of :func:`fit` as plain numbers: the learned constants; each constant's signed
    relative error ``(c - c*) / c*`` (``error_<name>``); the largest relative error of the
    learnable constants (``largest_error``) and of their time constants
    (``largest_tau_error``, :func:`relative_errors`); ``steps`` and ``converged``; the
    ``jitter``, the largest relative standard deviation ``sd(c) / mean(c)`` of a learnable
    constant over the last ``window`` steps; how many of :meth:`PolarV1.sanity_checks` pass;
    the held-out scores of :func:`evaluate`; and the constants every ``every`` steps
    (``trajectory_<name>``, for figures)."""
    window = validate.positive_int("window", window)
    every = validate.positive_int("every", every)
    learned = model.constants()
    learnable = model.learnable_constants() or list(CONSTANTS)
    errors = relative_errors(learned, truth)
    taus = dict(zip(CONSTANTS, TIME_CONSTANTS))
    checks = model.sanity_checks()
    recent = {k: torch.tensor(history["constants"][k][-window:], dtype=torch.float64)
              for k in learnable}
    out = {k: learned[k] for k in CONSTANTS}
    out.update({f"error_{k}": (learned[k] - truth[k]) / truth[k] for k in CONSTANTS})
    out.update(largest_error=max(errors[k] for k in learnable),
               largest_tau_error=max(errors[taus[k]] for k in learnable),
               steps=int(history["steps"]), converged=bool(history["converged"]),
               jitter=max((v.std() / v.mean()).item() for v in recent.values()),
               checks_passed=int(sum(checks.values())), n_checks=len(checks),
               **evaluate(model, val))
    out.update({f"trajectory_{k}": history["constants"][k][::every] for k in CONSTANTS})
    return out


# ---------------------------------------------------------------------------- identifiability
#: Coordinates in which the constants are stored and learned.
STORED_FORMS = {"lambda_fix": "log", "lambda_sac": "log", "alpha_fast": "logit",
                "alpha_slow": "logit"}


@torch.no_grad()
def total_nll(model: PolarV1, data: SpikeData) -> float:
    """``sum(r dt - k log(r dt))`` over every trial, frame and neuron of ``data``, in nats
    (float64; ``log k!`` dropped, so only differences between models mean something)."""
    exact = copy.deepcopy(model).double()
    rates = exact(data.features.amplitude.double(), data.features.gate.double())
    return losses.poisson_nll(rates * model.dt, data.counts.double(), reduction="sum").item()


def loss_slice(model: PolarV1, data: SpikeData, lambda_fix, lambda_sac) -> torch.Tensor:
    """Total Poisson NLL (:func:`total_nll`, nats) of ``model`` on ``data`` with its rates set
    to each pair of the grid ``lambda_fix x lambda_sac`` and everything else kept:
    ``(len(lambda_fix), len(lambda_sac))``."""
    return torch.tensor([[total_nll(model.with_constants(lambda_fix=float(f),
                                                         lambda_sac=float(s)), data)
                          for s in lambda_sac] for f in lambda_fix], dtype=torch.float64)


def _inputs(model: PolarV1, data: SpikeData, shift: dict | None = None) -> torch.Tensor:
    """Readout inputs ``(bins, 3F)`` in float64 with constants moved by ``shift`` in their
    stored forms (``log lambda``, ``logit alpha``)."""
    values = {}
    for name, delta in (shift or {}).items():
        c = model.constants()[name]
        if STORED_FORMS[name] == "log":
            values[name] = c * math.exp(delta)
        else:
            values[name] = 1 / (1 + math.exp(-(math.log(c / (1 - c)) + delta)))
    moved = copy.deepcopy(model).double().with_constants(**values)  # set in float64
    with torch.no_grad():
        x = moved.readout_inputs(data.features.amplitude.double(),
                                 data.features.gate.double())
    return x.flatten(0, 1)


@torch.no_grad()
def fisher_information(model: PolarV1, data: SpikeData, step: float = 1e-3) -> dict:
    """Expected Fisher information of the Poisson spike counts about the four constants in
    their stored forms (``theta = log lambda`` or ``logit alpha``), at ``model`` (rates ``mu =
    r dt`` on the frames of ``data``; the counts themselves are not used).

    With ``eta_n = w_n . x + b_n`` and ``mu_n = RATE_SCALE dt softplus(eta_n)``, each bin adds
    ``v (d eta / d p)(d eta / d p)^T`` with ``v = (RATE_SCALE dt sigmoid(eta))^2 / mu``. Returns
    ``{"constants": I_cc, "profiled": I_cc - sum_n I_cw(n) I_ww(n)^-1 I_wc(n)}`` (4 x 4, float64,
    in the order of :data:`CONSTANTS`): the information with the readout known, and with the
    readout ``(w_n, b_n)`` of every neuron estimated from the same data (the Schur complement).
    ``d x / d theta`` comes from central differences of size ``step``."""
    from ..models.polar_v1 import RATE_SCALE

    step = validate.positive_float("step", step)
    x = _inputs(model, data)
    dx = torch.stack([(_inputs(model, data, {c: step}) - _inputs(model, data, {c: -step}))
                      / (2 * step) for c in CONSTANTS])  # (4, bins, 3F)
    weight = model.readout.weight.detach().double()  # (N, 3F)
    eta = x @ weight.T + model.readout.bias.detach().double()  # (bins, N)
    scale = RATE_SCALE * model.dt
    mu = scale * torch.nn.functional.softplus(eta)
    v = (scale * torch.sigmoid(eta)) ** 2 / mu  # (bins, N)
    d_eta = torch.einsum("kbi,ni->bnk", dx, weight)  # (bins, N, 4)
    info_cc = torch.einsum("bn,bnk,bnl->kl", v, d_eta, d_eta)
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # (bins, 3F + 1)
    schur = info_cc.clone()
    for n in range(weight.shape[0]):  # neurons have independent readouts: one block each
        weighted = xb * v[:, n, None]
        info_ww = weighted.T @ xb
        info_wc = weighted.T @ d_eta[:, n]  # (3F + 1, 4)
        schur -= info_wc.T @ torch.linalg.solve(info_ww, info_wc)
    return {"constants": info_cc, "profiled": schur}


def standard_errors(info: torch.Tensor, constants: dict) -> dict:
    """Cramer-Rao standard errors of the time constants' relative errors, ``d tau / tau``,
    from a 4 x 4 information matrix in stored forms: ``d log tau = -d log lambda`` for a rate
    and ``d log tau = alpha d logit(alpha)`` for an average. ``{name: se}`` for the diagonal
    of ``info^-1`` (the others estimated too)."""
    covariance = torch.linalg.inv(info)
    factor = [1.0, 1.0, constants["alpha_fast"], constants["alpha_slow"]]
    return {name: float(f * covariance[i, i].sqrt())
            for i, (name, f) in enumerate(zip(CONSTANTS, factor))}


def step_operations(model: PolarV1, data: SpikeData) -> int:
    """Floating-point operations of one training step's forward and backward pass of ``model``
    on all trials of ``data``, counted by :class:`hdlib.operations.OperationCounter` on a copy
    of the model that runs the reference form of both recurrences (the model's arithmetic as
    the document writes it, whichever backend trains it)."""
    reference = copy.deepcopy(model)
    reference.dynamics.backend = reference.summarizer.backend = "reference"
    with OperationCounter() as counter:
        rates = reference(data.features.amplitude, data.features.gate)
        losses.poisson_nll(rates * reference.dt, data.counts).backward()
    return counter.total


# ---------------------------------------------------------------------------- stored runs
#: Display names of the shipped starts (the document's options).
START_NAMES = {"polar_v1": "Option 1", "polar_v1_conservative": "original, all learn",
               "polar_v1_relaxed": "Option 2", "polar_v1_very_relaxed": "Option 3"}


def fit_label(start: str, lr_scale: float) -> str:
    """The key of a fit in stored metrics: ``'<start>@<lr_scale>'``, e.g. ``polar_v1@0.1``."""
    return f"{start}@{lr_scale:g}"


def start_name(label: str) -> str:
    """``'Option 2 at 0.1x'`` for ``'polar_v1_relaxed@0.1'``."""
    start, scale = label.split("@")
    return f"{START_NAMES.get(start, start)} at {scale}x"


def stored_fits(table) -> list[str]:
    """Labels of the fits whose metrics a results table holds (in column order)."""
    return [c.split("/")[0] for c in table.columns if c.endswith("/largest_error")]


def per_seed(table, label: str, key: str) -> list[float]:
    """One stored metric of one fit, one float per row (seed) of ``table``."""
    return [float(v) for v in table[f"{label}/{key}"]]


def endpoint_table(table):
    """Per fit of a results table: the learned constants as ``mean +- sd`` over the seeds, the
    means of the largest errors, steps and held-out bits per spike, and counts of converged
    fits and passed sanity checks."""
    def spread(values):
        if len(values) == 1:
            return f"{values[0]:.3g}"
        return f"{np.mean(values):.3g} ± {np.std(values, ddof=1):.2g}"

    rows = []
    for label in stored_fits(table):
        get = functools.partial(per_seed, table, label)
        rows.append({"start": start_name(label), **{k: spread(get(k)) for k in CONSTANTS},
                     "largest error": np.mean(get("largest_error")),
                     "largest tau error": np.mean(get("largest_tau_error")),
                     "steps": np.mean(get("steps")),
                     "converged": f"{int(sum(get('converged')))}/{len(table)}",
                     "checks passed": f"{np.mean(get('checks_passed')):.1f}/5",
                     "val bits/spike": np.mean(get("bits_per_spike"))})
    return pd.DataFrame(rows)


def claims_of_document(table, flop_ratios, targets: dict) -> tuple[list, list]:
    """``(claims, checks)`` of the chapter (:class:`hdlib.book.claims.Claim` and
    :class:`~hdlib.book.claims.Check`) from a results table (one row per seed, with its
    ``version``), the operation ratios of learnable to frozen steps and the chapter's
    ``targets`` (:data:`hdlib.book.parameters.POLAR_TARGETS`). Recovery is judged on the time
    constants in ms (``largest_tau_error``). A claim whose fits the table lacks is left out."""
    from ..book import claims

    o2, o3 = fit_label("polar_v1_relaxed", 0.1), fit_label("polar_v1_very_relaxed", 0.1)
    o2_full = fit_label("polar_v1_relaxed", 1.0)
    have = set(stored_fits(table))
    get = lambda label, key: per_seed(table, label, key)  # noqa: E731
    versions = list(table["version"]) if "version" in table else None
    measured = {}
    for config in ("polar_v1", "polar_v1_conservative", "polar_v1_relaxed",
                   "polar_v1_very_relaxed"):
        if fit_label(config, 0.1) in have:
            measured[f"recovery_{config}"] = get(fit_label(config, 0.1), "largest_tau_error")
    measured["converge"] = list(table[[f"{label}/converged" for label in have]]
                                .astype(float).mean(axis=1))
    if {o2, o3} <= have:
        measured["relaxed_needs_more"] = list(np.subtract(get(o3, "steps"), get(o2, "steps")))
    if {o2, o2_full} <= have:
        measured["lower_rate_steadier"] = list(np.divide(get(o2_full, "jitter"),
                                                         get(o2, "jitter")))
    if o3 in have:
        measured["alpha_order"] = list(np.subtract(get(o3, "alpha_slow"),
                                                   get(o3, "alpha_fast")))
    measured["identifiable"] = [1.96 * max(float(table[f"se_learned_{k}"].iloc[i])
                                           for k in CONSTANTS) for i in range(len(table))]
    rows = [claims.Claim(targets[key], values, versions=versions)
            for key, values in measured.items()]
    checks = [claims.check(targets["cost"], flop_ratios)]
    if o3 in have:
        checks.insert(0, claims.check(targets["lambda_order"], np.divide(
            get(o3, "lambda_sac"), get(o3, "lambda_fix"))))
    return rows, checks
