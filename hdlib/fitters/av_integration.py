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
    von_mises_bump,
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
    grad_norm: list[float] = field(default_factory=list)
    stage: list[int] = field(default_factory=list)
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)
    #: why training stopped early (a non-finite loss or gradient), or "" when it ran to the end
    stopped: str = ""


def validate_stage_factors(factors, num_stages: int) -> list[float]:
    """``None`` (every factor 1) or one positive learning-rate factor per curriculum stage."""
    if factors is None:
        return [1.0] * num_stages
    factors = validate.list_of(validate.positive_float, "positive numbers")("stage_lr_factors",
                                                                          factors)
    if len(factors) != num_stages:
        raise ValueError(f"stage_lr_factors must have one entry per curriculum stage "
                         f"({num_stages}); got {len(factors)}")
    return factors


def weight_snapshot(model) -> dict[str, torch.Tensor]:
    """Copies of the effective maintenance (``J1 W0``) and rotation weights."""
    with torch.no_grad():
        return {"W0": (model.J1 * model.W0).detach().cpu().clone(),
                "WL": model.WL.detach().cpu().clone(), "WR": model.WR.detach().cpu().clone()}


def train_integrator(model, dataset: AVIntegrationDataset, curriculum, *, batch_size: int = 32,
                     learning_rate: float = 3e-3, min_lr_ratio: float = 0.05,
                     stage_lr_factors=None, weight_decay: float = 0.0,
                     amplitude_weight: float = 0.1, target_amplitude: float = 1.0,
                     grad_clip: float = 1.0, snapshot_every: int = 50, seed: int = 0,
                     stop_after: int | None = None, stop_on_nonfinite: bool = False,
                     progress: bool = True) -> TrainingHistory:
    """Train with AdamW (decoupled ``weight_decay``), a cosine-annealed learning rate scaled per
    curriculum stage, and gradient-norm clipping, on :class:`hdlib.train.Trainer`.

    ``curriculum`` lists ``[seq_len, iterations]`` stages run in order (short sequences first
    keep the gradients through time well conditioned while the ring is still forming). The
    loss is ``heading_loss + amplitude_weight * bump_amplitude_loss``. Over ``T`` steps in all,
    step ``t`` of stage ``s`` uses

    ``lr_t = f_s * lr_0 * (rho + (1 - rho) * (1 + cos(pi t / T)) / 2)``

    with ``lr_0 = learning_rate``, ``rho = min_lr_ratio`` and ``f_s`` the stage's entry of
    ``stage_lr_factors`` (all 1 by default: plain cosine annealing). Longer sequences make the
    loss sharper in the recurrent weights, so a rate that is safe on short sequences can throw
    a trained ring off its attractor on long ones; a factor below 1 for the long stages keeps
    the steps small there. Step ``t`` draws its batch from a generator seeded by ``(seed, t)``.
    A non-finite loss or gradient stops training with ``FloatingPointError`` before the weights
    are updated; with ``stop_on_nonfinite`` the run ends there instead, the model keeps its last
    finite weights, and ``history.stopped`` holds the message (a diverged run is a result too).
    ``stop_after`` ends the run after that many iterations, on the schedule of the whole
    curriculum (a diagnostic run that only needs the first part of training).
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
    factors = validate_stage_factors(stage_lr_factors, len(stages))
    seq_lens = [seq_len for seq_len, iterations in stages for _ in range(iterations)]
    stage_of = [s for s, (_, iterations) in enumerate(stages) for _ in range(iterations)]
    total = len(seq_lens)
    run_for = total if stop_after is None else min(
        total, validate.positive_int("stop_after", stop_after))

    def rate_factor(t: int) -> float:
        t = min(t, total - 1)
        cosine = min_lr_ratio + (1.0 - min_lr_ratio) * (1.0 + math.cos(math.pi * t / total)) / 2
        return factors[stage_of[t]] * cosine

    def step(ctx) -> Step:
        seq_len = seq_lens[ctx.step]
        activity, angles, h_loss, a_loss = batch_losses(
            model, dataset, batch_size, seq_len, ctx.generator, target_amplitude)
        error = circular_mae(population_vector(activity.detach()), angles)
        return Step(h_loss + amplitude_weight * a_loss,
                    {"heading_loss": h_loss.item(), "amplitude_loss": a_loss.item(),
                     "error_deg": error, "seq_len": seq_len, "stage": stage_of[ctx.step]})

    history = TrainingHistory()
    history.snapshots.append((0, weight_snapshot(model)))

    class Snapshots:
        def on_step_end(self, engine):
            if engine.step % snapshot_every == 0 or engine.step == run_for:
                history.snapshots.append((engine.step, weight_snapshot(model)))

    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate_factor)
    engine = Trainer(model, optimizer, step, scheduler=scheduler, grad_clip=grad_clip,
                     callbacks=[Snapshots()], seed=seed, progress=progress)
    try:
        engine.run(run_for)
    except FloatingPointError as error:
        if not stop_on_nonfinite:
            raise
        history.stopped = str(error)
    model.eval()
    steps = engine.history
    history.loss, history.learning_rate = steps["loss"], steps["lr"]
    history.heading_loss, history.amplitude_loss = steps["heading_loss"], steps["amplitude_loss"]
    history.error_deg, history.grad_norm = steps["error_deg"], steps["grad_norm"]
    history.seq_len = [int(s) for s in steps["seq_len"]]
    history.stage = [int(s) for s in steps["stage"]]
    return history


def batch_losses(model, dataset: AVIntegrationDataset, batch_size: int, seq_len: int,
                 generator: torch.Generator, target_amplitude: float = 1.0):
    """One batch of the task through ``model``, started from a bump on each sequence's initial
    heading: ``(activity, angles, heading_loss, bump_amplitude_loss)``."""
    av, angles = dataset.generate_batch(batch_size, seq_len, generator=generator)
    activity = model(av, dataset.initial_heading(av, angles))
    return (activity, angles, losses.heading_loss(activity, angles),
            losses.bump_amplitude_loss(activity, target_amplitude))


def largest_first_gradient(model, dataset: AVIntegrationDataset, seq_len: int,
                           batch_size: int = 16, amplitude_weight: float = 0.1,
                           seed: int = 0) -> float:
    """``max |dL/dp|`` over every parameter ``p`` of ``model`` for the training loss of
    :func:`train_integrator` on one batch: 0 exactly means that no optimiser can move the
    model from where it starts (e.g. ReLU units whose input is exactly 0, where ReLU's
    gradient is 0)."""
    model.zero_grad(set_to_none=True)
    _, _, h_loss, a_loss = batch_losses(model, dataset, batch_size, seq_len,
                                        torch.Generator().manual_seed(seed))
    (h_loss + amplitude_weight * a_loss).backward()
    largest = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    return largest


# --------------------------------------------------------------------------- training record
def stage_summary(history: TrainingHistory, window: int = 50) -> list[dict]:
    """One row per curriculum stage of a run: its sequence length and iterations, the mean
    training error (degrees) over its first and last ``window`` iterations, the largest error
    within it, ``peak_vs_previous = peak_error / (previous stage's last_error)`` (NaN for the
    first stage) and the largest gradient norm (before clipping).

    A stage that starts well (its first-window error close to the previous stage's last-window
    error) and still shows a peak far above both has been thrown off by an update, not by the
    longer sequences themselves.
    """
    window = validate.positive_int("window", window)
    rows, start = [], 0
    stage = history.stage
    while start < len(stage):
        stop = start
        while stop < len(stage) and stage[stop] == stage[start]:
            stop += 1
        errors = history.error_deg[start:stop]
        previous = rows[-1]["last_error"] if rows else math.nan
        rows.append({"seq_len": history.seq_len[start], "iterations": stop - start,
                     "first_error": sum(errors[:window]) / len(errors[:window]),
                     "peak_error": max(errors),
                     "last_error": sum(errors[-window:]) / len(errors[-window:]),
                     "peak_vs_previous": max(errors) / previous,
                     "max_grad_norm": max(history.grad_norm[start:stop])})
        start = stop
    return rows


def instability_record(history: TrainingHistory, grad_clip: float = 1.0,
                       window: int = 50) -> dict:
    """What a run's training record says about a blow-up, for the stored-runs comparison.

    ``worst_jump`` is the largest ``peak_vs_previous`` of :func:`stage_summary` (how far a
    stage's worst batch rose above the previous stage's final error); ``peak_iteration`` the
    iteration of the worst batch after the first stage; ``lr_at_peak`` and ``grad_norm_at_peak``
    the learning rate and gradient norm (before clipping) there; ``clipped_fraction`` the
    fraction of iterations after the first stage whose gradient norm exceeded ``grad_clip``
    (clipping acted); ``amplitude_share_at_peak`` the amplitude term's share of the loss at the
    worst batch, ``a / (h + a)`` with ``a = amplitude_weight * amplitude_loss`` recovered as
    ``loss - heading_loss``.
    """
    grad_clip = validate.positive_float("grad_clip", grad_clip)
    rows = stage_summary(history, window=window)
    first_stage_end = rows[0]["iterations"]
    later = range(first_stage_end, len(history.error_deg))
    if not later:
        raise ValueError("history has a single curriculum stage; nothing to compare")
    peak = max(later, key=lambda t: history.error_deg[t])
    amplitude = history.loss[peak] - history.heading_loss[peak]
    return {"worst_jump": max(r["peak_vs_previous"] for r in rows[1:]),
            "peak_iteration": peak, "peak_error": history.error_deg[peak],
            "lr_at_peak": history.learning_rate[peak],
            "grad_norm_at_peak": history.grad_norm[peak],
            "clipped_fraction": sum(history.grad_norm[t] > grad_clip for t in later) / len(later),
            "amplitude_share_at_peak": amplitude / history.loss[peak]}


def block_means(values, block: int) -> list[float]:
    """Means of consecutive blocks of ``block`` values (a last, shorter block included): a
    training curve short enough to store with a run."""
    block = validate.positive_int("block", block)
    values = list(values)
    return [sum(values[i:i + block]) / len(values[i:i + block])
            for i in range(0, len(values), block)]


def config_of(run_name: str) -> str:
    """The configuration of a sweep run named ``CONFIG_seedS`` (``CONFIG`` itself otherwise)."""
    head, sep, tail = run_name.rpartition("_seed")
    return head if sep and tail.isdigit() else run_name


def by_config(table, column: str) -> dict[str, list[float]]:
    """``{config: [value of column, one per seed in seed order]}`` from a stored-results table
    (:func:`hdlib.book.results.load_results`, index ``CONFIG_seedS``)."""
    if column not in table:
        raise KeyError(f"stored results have no column {column!r}")
    out: dict[str, list[float]] = {}
    for name, row in table.sort_values("seed").iterrows():
        out.setdefault(config_of(str(name)), []).append(row[column])
    return out


def config_overview(per_config: dict, columns):
    """One row per configuration: the number of seeds and, for each of ``columns``, the mean
    over seeds with the smallest and largest seed in brackets (text, 3 significant digits).
    ``per_config[column][config]`` lists one value per seed (:func:`by_config`)."""
    import pandas as pd

    configs = list(per_config[columns[0]])
    rows = {}
    for config in configs:
        row = {"seeds": len(per_config[columns[0]][config])}
        for column in columns:
            values = pd.Series(per_config[column][config], dtype=float)
            row[column] = f"{values.mean():.3g} [{values.min():.3g}, {values.max():.3g}]"
        rows[config] = row
    return pd.DataFrame(rows).T


def add_derived(per_config: dict, seq_len: int) -> dict:
    """Add the per-seed quantities the chapter's claims use to ``per_config`` (in place, and
    returned): ``percent_of_null`` (``100 * error_short / null_short``),
    ``drift_per_sequence`` (``drift_deg_per_step * seq_len``), ``argmax_excess``
    (``argmax_error - error_short``) and ``log10_worst_jump`` (a ratio judged on a log scale,
    where seeds that jump 60- and 160-fold are alike)."""
    def combine(name, fn, *columns):
        per_config[name] = {config: [fn(*values) for values in
                                     zip(*(per_config[c][config] for c in columns))]
                            for config in per_config[columns[0]]}

    combine("percent_of_null", lambda e, n: 100.0 * e / n, "error_short", "null_short")
    combine("drift_per_sequence", lambda d: d * seq_len, "drift_deg_per_step")
    combine("argmax_excess", lambda a, e: a - e, "argmax_error", "error_short")
    combine("log10_worst_jump", math.log10, "worst_jump")
    return per_config


def instability_summary(per_config: dict, config: str, blow_up: float = 10.0) -> dict:
    """Plain floats about one configuration's stored runs (``{}`` if it has none): ``seeds``,
    ``blown`` (seeds whose ``worst_jump`` reached ``blow_up``), ``jump_max``, ``peak_it``
    (mean iteration of the worst batch after the first stage), ``gn_peak`` (largest gradient
    norm there), ``clipped`` (largest percentage of clipped iterations) and ``amp_share``
    (largest percentage of the loss from the amplitude term at the worst batch)."""
    jumps = per_config["worst_jump"].get(config)
    if not jumps:
        return {}
    iterations = per_config["peak_iteration"][config]
    return {"seeds": float(len(jumps)), "blown": float(sum(j >= blow_up for j in jumps)),
            "jump_max": float(max(jumps)), "peak_it": float(sum(iterations) / len(iterations)),
            "gn_peak": float(max(per_config["grad_norm_at_peak"][config])),
            "clipped": 100.0 * float(max(per_config["clipped_fraction"][config])),
            "amp_share": 100.0 * float(max(per_config["amplitude_share_at_peak"][config]))}


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_tracking(model, dataset: AVIntegrationDataset, seq_len: int, batch_size: int = 256,
                      generator: torch.Generator | None = None):
    """Mean absolute circular error (degrees) on fresh sequences of ``seq_len`` steps.

    Returns a dict with the population-vector decoder (``'population_vector'``), the argmax
    decoder (``'argmax'``) and the null baseline that always answers the initial heading
    (``'null'``), plus the raw arrays of one batch for plotting. ``generator`` (CPU) draws the
    sequences instead of the dataset's own stream.
    """
    av, angles = dataset.generate_batch(batch_size, seq_len, generator=generator)
    heading0 = dataset.initial_heading(av, angles)
    activity = model(av, heading0)
    decoded = population_vector(activity)
    return {
        "population_vector": circular_mae(decoded, angles),
        "argmax": circular_mae(argmax_decode(activity), angles),
        "null": circular_mae(heading0[:, None].expand_as(angles), angles),
        "av": av, "angles": angles, "activity": activity, "decoded": decoded,
    }


def compare_tracking(networks: dict, dataset: AVIntegrationDataset, lengths,
                     batch_size: int = 256, seed: int = 0) -> dict:
    """:func:`evaluate_tracking` of every network at every sequence length, keyed
    ``(name, length)``. At a given length every network sees the same sequences (drawn from a
    generator seeded by ``seed``), so their errors and the null baseline are paired."""
    return {(name, length): evaluate_tracking(net, dataset, length, batch_size,
                                              generator=torch.Generator().manual_seed(seed))
            for length in lengths for name, net in networks.items()}


def error_table(results: dict) -> dict[str, dict[str, float]]:
    """Population-vector errors from :func:`compare_tracking` as ``{'T = length': {name:
    error, ..., 'null baseline': error}}`` (columns by length, rows by network)."""
    table: dict[str, dict[str, float]] = {}
    for (name, length), result in results.items():
        column = table.setdefault(f"T = {length}", {})
        column[name] = result["population_vector"]
        column["null baseline"] = result["null"]
    for column in table.values():
        column["null baseline"] = column.pop("null baseline")
    return table


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


def gain_error(av_values: torch.Tensor, speeds: torch.Tensor, max_av: float,
               slow_fraction: float = 0.05) -> float:
    """Largest relative speed error inside the training range, in percent:
    ``100 * max |speed / av - 1|`` over ``slow_fraction * max_av < |av| <= max_av``.

    The slowest velocities are left out because there the ratio is dominated by the bump's
    drift, not by its gain.
    """
    max_av = validate.positive_float("max_av", max_av)
    inside = (av_values.abs() <= max_av) & (av_values.abs() > slow_fraction * max_av)
    if not inside.any():
        raise ValueError("no velocity of av_values lies inside the training range")
    return 100.0 * (speeds[inside] / av_values[inside] - 1.0).abs().max().item()


def grid_decoding_bias(num_neurons: int, samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Population-vector error (degrees) on ideal von Mises bumps at uniformly drawn headings,
    decoded with the ring grid ``theta_i = 2 pi i / N`` (``'ring grid'``) and with
    ``linspace(0, 2 pi, N)`` (``'linspace grid'``), whose last point duplicates the first and
    whose spacing ``2 pi / (N - 1)`` is too wide: it decodes a bump at ``phi`` about
    ``pi / N`` off."""
    generator = torch.Generator().manual_seed(seed)
    headings = wrap(torch.rand(samples, generator=generator) * 2 * math.pi)
    bumps = von_mises_bump(headings, num_neurons)
    wrong = torch.linspace(0, 2 * math.pi, num_neurons)
    decoded = torch.atan2(bumps @ torch.sin(wrong), bumps @ torch.cos(wrong))
    return {"ring grid": circular_mae(population_vector(bumps), headings),
            "linspace grid": circular_mae(decoded, headings)}
