"""Training and evaluating a ring attractor on angular-velocity integration.

The loss is ``heading_loss + amplitude_weight * bump_amplitude_loss`` (:mod:`hdlib.losses`):
the heading term aligns the population vector with the true heading, the amplitude term keeps
the bump from fading or exploding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .. import losses, validate
from ..circular import (
    angle_grid,
    argmax_decode,
    circular_error,
    circular_mae,
    population_vector,
    population_vector_length,
    wrap,
)
from ..datasets.tasks import AVIntegrationDataset
from ..train import Step, Trainer


@dataclass
class TrainingHistory:
    """Per-iteration record of a run, plus weight snapshots for the evolution figure."""

    loss: list[float] = field(default_factory=list)
    heading_loss: list[float] = field(default_factory=list)
    amplitude_loss: list[float] = field(default_factory=list)
    error_deg: list[float] = field(default_factory=list)
    seq_len: list[int] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)



def weight_snapshot(model) -> dict[str, torch.Tensor]:
    """Copies of the effective maintenance (``J1 W0``) and rotation weights."""
    with torch.no_grad():
        return {"W0": (model.J1 * model.W0).detach().cpu().clone(),
                "WL": model.WL.detach().cpu().clone(), "WR": model.WR.detach().cpu().clone()}


def train_integrator(model, dataset: AVIntegrationDataset, curriculum, *, batch_size: int = 32,
                     learning_rate: float = 3e-3, min_lr_ratio: float = 0.05,
                     weight_decay: float = 0.0,
                     amplitude_weight: float = 0.1, target_amplitude: float = 1.0,
                     grad_clip: float = 1.0, snapshot_every: int = 50, seed: int = 0,
                     progress: bool = True) -> TrainingHistory:
    """Train with AdamW (decoupled ``weight_decay``), ``CosineAnnealingLR`` from
    ``learning_rate`` to ``min_lr_ratio * learning_rate`` over the whole curriculum and
    gradient-norm clipping, on :class:`hdlib.train.Trainer`.

    ``curriculum`` lists ``[seq_len, iterations]`` stages run in order (short sequences first
    keep the gradients through time well conditioned while the ring is still forming). The
    loss is ``heading_loss + amplitude_weight * bump_amplitude_loss``. Step ``t`` draws its
    batch from a generator seeded by ``(seed, t)``. A non-finite loss stops training with
    ``FloatingPointError`` before the weights are updated.
    """
    stages = validate.curriculum("curriculum", curriculum)
    batch_size = validate.positive_int("batch_size", batch_size)
    learning_rate = validate.positive_float("learning_rate", learning_rate)
    min_lr_ratio = validate.float_in("min_lr_ratio", min_lr_ratio, 0.0, 1.0)
    amplitude_weight = validate.float_in("amplitude_weight", amplitude_weight, 0.0, math.inf)
    weight_decay = validate.float_in("weight_decay", weight_decay, 0.0, math.inf)
    snapshot_every = validate.positive_int("snapshot_every", snapshot_every)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (init='debug_perfect' is frozen)")
    seq_lens = [seq_len for seq_len, iterations in stages for _ in range(iterations)]
    total = len(seq_lens)

    def step(ctx) -> Step:
        seq_len = seq_lens[ctx.step]
        av, angles = dataset.generate_batch(batch_size, seq_len, generator=ctx.generator)
        activity = model(av, dataset.initial_heading(av, angles))
        h_loss = losses.heading_loss(activity, angles)
        a_loss = losses.bump_amplitude_loss(activity, target_amplitude)
        error = circular_mae(population_vector(activity.detach()), angles)
        return Step(h_loss + amplitude_weight * a_loss,
                    {"heading_loss": h_loss.item(), "amplitude_loss": a_loss.item(),
                     "error_deg": error, "seq_len": seq_len})

    history = TrainingHistory()
    history.snapshots.append((0, weight_snapshot(model)))

    class Snapshots:
        def on_step_end(self, engine):
            if engine.step % snapshot_every == 0 or engine.step == total:
                history.snapshots.append((engine.step, weight_snapshot(model)))

    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total, eta_min=learning_rate * min_lr_ratio)
    engine = Trainer(model, optimizer, step, scheduler=scheduler, grad_clip=grad_clip,
                     callbacks=[Snapshots()], seed=seed, progress=progress)
    engine.run(total)
    model.eval()
    steps = engine.history
    history.loss, history.learning_rate = steps["loss"], steps["lr"]
    history.heading_loss, history.amplitude_loss = steps["heading_loss"], steps["amplitude_loss"]
    history.error_deg = steps["error_deg"]
    history.seq_len = [int(s) for s in steps["seq_len"]]
    return history


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_tracking(model, dataset: AVIntegrationDataset, seq_len: int, batch_size: int = 256):
    """Mean absolute circular error (degrees) on fresh sequences of ``seq_len`` steps.

    Returns a dict with the population-vector decoder (``'population_vector'``), the argmax
    decoder (``'argmax'``) and the null baseline that always answers the initial heading
    (``'null'``), plus the raw arrays of one batch for plotting.
    """
    av, angles = dataset.generate_batch(batch_size, seq_len)
    heading0 = dataset.initial_heading(av, angles)
    activity = model(av, heading0)
    decoded = population_vector(activity)
    return {
        "population_vector": circular_mae(decoded, angles),
        "argmax": circular_mae(argmax_decode(activity), angles),
        "null": circular_mae(heading0[:, None].expand_as(angles), angles),
        "av": av, "angles": angles, "activity": activity, "decoded": decoded,
    }


def bump_width(activity: torch.Tensor) -> torch.Tensor:
    """Fraction of the ring above half height, ``mean_i [r_i > (max r + min r) / 2]``.

    About 1/3 or less for a localised bump; 1/2 for a pattern that splits the ring in two.
    """
    top = activity.amax(dim=-1, keepdim=True)
    bottom = activity.amin(dim=-1, keepdim=True)
    return (activity > (top + bottom) / 2).float().mean(dim=-1)


@torch.no_grad()
def zero_input_drift(model, steps: int = 1200, num_headings: int = 36) -> dict[str, float]:
    """Bump drift with zero angular velocity, from ``num_headings`` evenly spaced headings.

    Returns the mean absolute displacement after ``steps`` divided by ``steps`` (degrees per
    step), the largest one, and the final bump amplitude relative to the starting one.
    """
    device = model.grid.device
    heading = wrap(angle_grid(num_headings, device=device))
    activity = model(torch.zeros(num_headings, steps, device=device), heading)
    moved = circular_error(population_vector(activity[:, -1]), heading).abs()
    return {"mean_deg_per_step": math.degrees(moved.mean().item()) / steps,
            "max_deg_per_step": math.degrees(moved.max().item()) / steps,
            "final_amplitude": population_vector_length(activity[:, -1]).mean().item()}


@torch.no_grad()
def velocity_gain(model, av_values: torch.Tensor, steps: int = 200, settle: int = 50):
    """Bump speed (rad/step) under each constant input velocity in ``av_values``.

    Speed is the mean unwrapped step of the decoded heading after ``settle`` steps, averaged
    over the ring by starting each velocity at a different heading.
    """
    av = av_values[:, None].expand(-1, steps).contiguous()
    heading = wrap(angle_grid(av_values.shape[0], device=av_values.device))
    decoded = population_vector(model(av, heading))
    return circular_error(decoded[:, settle + 1:], decoded[:, settle:-1]).mean(dim=1)
