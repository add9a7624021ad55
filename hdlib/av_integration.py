"""Training and evaluating a ring attractor on angular-velocity integration.

Losses (``activity`` of shape ``(B, T, N)``, true headings ``(B, T)``):

* heading loss ``1 - cos(theta_hat - theta)``: one minus the cosine similarity between the
  population vector ``sum_i r_i (cos theta_i, sin theta_i)`` and the unit vector of the true
  heading, averaged over samples and steps;
* bump-amplitude loss ``mean (A_t - A*)^2`` with ``A_t`` the population-vector length
  (:func:`hdlib.circular.population_vector_length`): it keeps the bump from fading or exploding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import validate
from .circular import (
    angle_grid,
    argmax_decode,
    circular_error,
    circular_mae,
    population_vector,
    population_vector_length,
    wrap,
)
from .tasks import AVIntegrationDataset


def heading_loss(activity: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos_sim(population vector, (cos theta, sin theta)))``."""
    grid = angle_grid(activity.shape[-1], device=activity.device, dtype=activity.dtype)
    vector = torch.stack([activity @ torch.cos(grid), activity @ torch.sin(grid)], dim=-1)
    target = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    return 1.0 - F.cosine_similarity(vector, target, dim=-1).mean()


def bump_amplitude_loss(activity: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """``mean((A_t - target)^2)`` with ``A_t`` the population-vector length of each state."""
    return ((population_vector_length(activity) - target) ** 2).mean()


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


def check_curriculum(name: str, curriculum) -> list[tuple[int, int]]:
    """A non-empty list of ``[seq_len, iterations]`` pairs of positive integers."""
    expected = f"{name} must be a non-empty list of [seq_len, iterations] pairs; got {curriculum!r}"
    if isinstance(curriculum, (str, bytes)) or not hasattr(curriculum, "__iter__"):
        raise ValueError(expected)
    stages = list(curriculum)
    if not stages or any(isinstance(s, (str, bytes)) or not hasattr(s, "__len__") or len(s) != 2
                         for s in stages):
        raise ValueError(expected)
    return [(validate.positive_int(f"{name}[{i}] seq_len", seq_len),
             validate.positive_int(f"{name}[{i}] iterations", iterations))
            for i, (seq_len, iterations) in enumerate(stages)]


#: Checks for the parameters of the angular-velocity chapter (see its ``parameters`` cell).
CHAPTER_PARAMETERS = {
    "num_neurons": validate.positive_int,
    "alpha": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "activation": lambda n, v: validate.choice(n, v, ("tanh", "relu", "gelu")),
    "hidden_gain_neurons": validate.positive_int,
    "init_scale": lambda n, v: validate.float_in(n, v, 0.0, math.inf),
    "seq_len": validate.positive_int,
    "long_seq_len": validate.positive_int,
    "max_av": validate.positive_float,
    "zero_padding_start_ratio": lambda n, v: validate.float_in(n, v, 0.0, 1.0),
    "zero_ratios_in_rest": validate.ratios,
    "mean_bout_steps": lambda n, v: validate.float_in(n, v, 1.0, math.inf),
    "curriculum": check_curriculum,
    "batch_size": validate.positive_int,
    "learning_rate": validate.positive_float,
    "min_lr_ratio": lambda n, v: validate.float_in(n, v, 0.0, 1.0),
    "amplitude_weight": lambda n, v: validate.float_in(n, v, 0.0, math.inf),
    "eval_batch_size": validate.positive_int,
    "snapshot_every": validate.positive_int,
    "seed": validate.non_negative_int,
    "artifacts_dir": validate.path_string,
}


def weight_snapshot(model) -> dict[str, torch.Tensor]:
    """Copies of the effective maintenance (``J1 W0``) and rotation weights."""
    with torch.no_grad():
        return {"W0": (model.J1 * model.W0).detach().cpu().clone(),
                "WL": model.WL.detach().cpu().clone(), "WR": model.WR.detach().cpu().clone()}


def train_integrator(model, dataset: AVIntegrationDataset, curriculum, *, batch_size: int = 32,
                     learning_rate: float = 3e-3, min_lr_ratio: float = 0.05,
                     weight_decay: float = 0.0,
                     amplitude_weight: float = 0.1, target_amplitude: float = 1.0,
                     grad_clip: float = 1.0, snapshot_every: int = 50,
                     progress: bool = True) -> TrainingHistory:
    """Train with Adam (decoupled ``weight_decay``, AdamW), a cosine-annealed learning rate and
    gradient-norm clipping.

    ``curriculum`` lists ``[seq_len, iterations]`` stages run in order (short sequences first
    keep the gradients through time well conditioned while the ring is still forming). The
    loss is ``heading_loss + amplitude_weight * bump_amplitude_loss``. A non-finite loss stops
    training with ``FloatingPointError`` before the weights are updated.
    """
    stages = check_curriculum("curriculum", curriculum)
    batch_size = validate.positive_int("batch_size", batch_size)
    learning_rate = validate.positive_float("learning_rate", learning_rate)
    min_lr_ratio = validate.float_in("min_lr_ratio", min_lr_ratio, 0.0, 1.0)
    amplitude_weight = validate.float_in("amplitude_weight", amplitude_weight, 0.0, math.inf)
    grad_clip = validate.positive_float("grad_clip", grad_clip)
    weight_decay = validate.float_in("weight_decay", weight_decay, 0.0, math.inf)
    snapshot_every = validate.positive_int("snapshot_every", snapshot_every)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (init='debug_perfect' is frozen)")

    total = sum(n for _, n in stages)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total, eta_min=learning_rate * min_lr_ratio)
    history = TrainingHistory()
    history.snapshots.append((0, weight_snapshot(model)))
    model.train()
    bar = tqdm(total=total, desc="training", disable=not progress, mininterval=2.0)
    step = 0
    for seq_len, iterations in stages:
        for _ in range(iterations):
            av, angles = dataset.generate_batch(batch_size, seq_len)
            activity = model(av, dataset.initial_heading(av, angles))
            h_loss = heading_loss(activity, angles)
            a_loss = bump_amplitude_loss(activity, target_amplitude)
            loss = h_loss + amplitude_weight * a_loss
            if not torch.isfinite(loss):
                bar.close()
                raise FloatingPointError(
                    f"loss became {loss.item()} at iteration {step}; lower learning_rate "
                    f"(now {learning_rate}) or grad_clip (now {grad_clip})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            history.learning_rate.append(scheduler.get_last_lr()[0])
            scheduler.step()
            step += 1
            history.loss.append(loss.item())
            history.heading_loss.append(h_loss.item())
            history.amplitude_loss.append(a_loss.item())
            history.error_deg.append(circular_mae(population_vector(activity.detach()), angles))
            history.seq_len.append(seq_len)
            if step % snapshot_every == 0 or step == total:
                history.snapshots.append((step, weight_snapshot(model)))
            bar.set_postfix(loss=f"{loss.item():.4f}", error=f"{history.error_deg[-1]:.1f}deg",
                            refresh=False)
            bar.update()
    bar.close()
    model.eval()
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
