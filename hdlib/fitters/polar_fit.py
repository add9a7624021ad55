"""Fitting a :class:`~hdlib.models.polar_v1.PolarV1` to spikes: a teacher with known constants,
Poisson spike counts from it, the fit itself, held-out scores, and tables of how well the fits
recover the teacher's constants."""
from __future__ import annotations

import dataclasses
import math
import statistics
import time

import pandas as pd
import torch

from .. import losses, validate
from ..models.polar import load_config, time_constants
from ..models.polar_v1 import PolarFeatures, PolarV1
from ..train import Step, Trainer

#: The four learnable temporal constants of :class:`PolarV1`.
CONSTANTS = ("lambda_fix", "lambda_sac", "alpha_fast", "alpha_slow")
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


def fit(initial: str | dict, train: SpikeData, *, steps: int = 800,
        learning_rate: float = 5e-2, temporal_lr_scale: float = 0.1, batch_size: int = 16,
        learnable: bool = True, seed: int = 0, progress: bool = True):
    """Fit a :class:`PolarV1` with constants started from ``initial`` (a configuration name or
    dict) to the spikes of ``train`` on :class:`hdlib.train.Trainer`.

    Each step draws ``batch_size`` trials (from the engine's generator seeded by ``(seed,
    step)``) and takes one Adam step on the Poisson negative log-likelihood
    ``mean(r dt - k log(r dt))`` of their counts ``k``. Two parameter groups: the readout at
    ``learning_rate`` and the four constants at ``temporal_lr_scale * learning_rate``; each is
    cosine-annealed to 1% of its own rate, ``lr_t = lr_0 (0.01 + 0.99 (1 + cos(pi t / steps))
    / 2)``. ``learnable=False`` freezes the constants (only the readout learns). ``seed`` also
    sets the readout's initial weights.

    Returns ``(model, history)``: ``history["loss"]`` per step, ``history["constants"]``, each
    of :meth:`PolarV1.constants` before training and after every step (``steps + 1`` values),
    and ``history["seconds"]``, the wall-clock time of the training loop."""
    values = load_config(initial) if isinstance(initial, str) else dict(initial)
    values.update(learnable_alphas=learnable, learnable_lambdas=learnable)
    model = PolarV1(train.features.amplitude.shape[-1], train.counts.shape[-1], **values,
                    seed=seed)
    learning_rate = validate.positive_float("learning_rate", learning_rate)
    temporal_lr_scale = validate.positive_float("temporal_lr_scale", temporal_lr_scale)
    steps = validate.positive_int("steps", steps)
    batch_size = validate.positive_int("batch_size", batch_size)
    temporal = model.temporal_parameters()
    readout = [p for p in model.parameters() if all(p is not q for q in temporal)]
    groups = [{"params": readout}]
    if temporal:
        groups.append({"params": temporal, "lr": learning_rate * temporal_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t / steps)))
    n_trials = train.counts.shape[0]
    constants = {key: [value] for key, value in model.constants().items()}

    def step(ctx) -> Step:
        part = train.trials(torch.randperm(n_trials, generator=ctx.generator)[:batch_size])
        rates = model(part.features.amplitude, part.features.gate)
        return Step(losses.poisson_nll(rates * model.dt, part.counts))

    class RecordConstants:
        def on_step_end(self, engine):
            for key, value in model.constants().items():
                constants[key].append(value)

    engine = Trainer(model, optimizer, step, scheduler=scheduler, callbacks=[RecordConstants()],
                     seed=seed, progress=progress, desc="fit")
    engine.run(steps)
    return model, {"loss": engine.history["loss"], "constants": constants,
                   "seconds": engine.elapsed}


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


def results_table(fits: dict, truth: dict, val: SpikeData, tolerance: float) -> pd.DataFrame:
    """One row per fit of ``fits = {(start, lr_scale): (model, history)}`` (as :func:`fit`
    returns them): the learned constants; the largest relative error of the four constants,
    ``max_k |c_k - c*_k| / c*_k`` against ``truth``, and of their time constants
    (:func:`relative_errors`); ``recovered`` when every constant is within ``tolerance``; how
    many of :meth:`PolarV1.sanity_checks` pass; the held-out scores of :func:`evaluate` on
    ``val``; and the seconds per training step."""
    tolerance = validate.float_in("tolerance", tolerance, 0.0, math.inf)
    rows = []
    for (start, scale), (model, history) in fits.items():
        learned = model.constants()
        errors = relative_errors(learned, truth)
        largest = max(errors[k] for k in CONSTANTS)
        checks = model.sanity_checks()
        scores = evaluate(model, val)
        rows.append({"start": start, "lr scale": scale, **{k: learned[k] for k in CONSTANTS},
                     "largest error": largest,
                     "largest tau error": max(errors[k] for k in TIME_CONSTANTS),
                     "recovered": largest <= tolerance,
                     "checks passed": f"{sum(checks.values())}/{len(checks)}",
                     "val bits/spike": scores["bits_per_spike"],
                     "rate correlation": scores["rate_correlation"],
                     "s per step": history["seconds"] / len(history["loss"])})
    return pd.DataFrame(rows)


def checks_table(fits: dict) -> pd.DataFrame:
    """Each fit of ``fits = {(start, lr_scale): (model, history)}`` against each of
    :meth:`PolarV1.sanity_checks` (True when it passes)."""
    return pd.DataFrame([{"start": start, "lr scale": scale, **model.sanity_checks()}
                         for (start, scale), (model, _) in fits.items()])


def step_seconds(models: dict, data: SpikeData, repeats: int = 10) -> dict:
    """Median wall-clock seconds of one training step's work (forward pass, Poisson loss,
    backward pass) of each of ``models = {name: PolarV1}`` on all trials of ``data``. The models
    take turns, ``repeats`` rounds after one warm-up round, so that a change in the machine's
    load falls on all of them alike. Gradients are cleared afterwards."""
    repeats = validate.positive_int("repeats", repeats)
    times = {name: [] for name in models}
    for round_ in range(repeats + 1):
        for name, model in models.items():
            start = time.perf_counter()
            rates = model(data.features.amplitude, data.features.gate)
            losses.poisson_nll(rates * model.dt, data.counts).backward()
            if round_:
                times[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return {name: statistics.median(values) for name, values in times.items()}
