"""Fitting a :class:`~hdlib.models.polar_v1.PolarV1` to spikes: a teacher with known constants,
Poisson spike counts from it, the fitting task, held-out scores and the fit itself."""
from __future__ import annotations

import dataclasses
import math

import torch

from .. import losses, validate
from ..models.polar import load_config
from ..models.polar_v1 import PolarFeatures, PolarV1
from ..train import Step, Trainer


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
    dict) to the spikes of ``train`` on :class:`hdlib.train.Trainer`: Adam on the Poisson
    likelihood of ``batch_size`` trials drawn each step, ``CosineAnnealingLR`` down to 1% of
    the rate, the four constants at ``temporal_lr_scale`` times the readout's rate.
    ``learnable=False`` freezes the constants (only the readout learns).

    Returns ``(model, history)``: ``history["loss"]`` per step and ``history["constants"]``,
    each of :meth:`PolarV1.constants` before training and after every step."""
    values = load_config(initial) if isinstance(initial, str) else dict(initial)
    model = PolarV1(train.features.amplitude.shape[-1], train.counts.shape[-1], **values,
                    learnable_alphas=learnable, learnable_lambdas=learnable, seed=seed)
    learning_rate = validate.positive_float("learning_rate", learning_rate)
    temporal = model.temporal_parameters()
    groups = [{"params": [p for p in model.parameters()
                          if all(p is not q for q in temporal)]}]
    if temporal:
        groups.append({"params": temporal, "lr": learning_rate * validate.positive_float(
            "temporal_lr_scale", temporal_lr_scale)})
    optimizer = torch.optim.Adam(groups, lr=learning_rate)
    steps = validate.positive_int("steps", steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps,
                                                           eta_min=learning_rate / 100)
    n_trials = train.counts.shape[0]
    batch_size = validate.positive_int("batch_size", batch_size)
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
    return model, {"loss": engine.history["loss"], "constants": constants}
