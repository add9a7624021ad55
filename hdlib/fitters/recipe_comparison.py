"""Comparing training recipes at equal budgets, paired by seed (the training chapter).

A *recipe* is a set of :func:`hdlib.fitters.training.train_model_enhanced` arguments. Two
recipes are compared on the same seed, with early stopping off, so that each spends its whole
budget:

* at **equal steps** (same batch size and number of epochs), by the final validation loss;
* by **steps (or sequences) to a threshold**: the first epoch ``e`` (0-based) whose validation
  loss is at or below a level ``L``; the run has then taken ``(e + 1) * steps_per_epoch``
  optimiser steps and seen ``(e + 1) * steps_per_epoch * batch_size`` training sequences. The
  level of a seed is the final validation loss of the reference recipe on that seed (what the
  reference ends with). A run that never reaches it is counted at its whole budget plus one
  epoch, a lower bound on its cost: the count can only make such a run look faster than it is,
  so a verdict "slower" resting on it is safe and a verdict "faster" cannot come from it;
* by **stability**: the largest relative rise of the validation loss above its best value so
  far, ``max_e (v_e / min_{e' <= e} v_e' - 1)``, in percent (0 for a loss that never rises).

A run is stored as a flat record (:func:`run_record`, one key per recipe and quantity) so that
the sweep command can write it; :func:`paired_values` reads the stored records back as one
value per seed.
"""
from __future__ import annotations

import math

from .. import validate


def epochs_to_level(val_loss, level: float) -> int | None:
    """Number of epochs run when the validation loss first is ``<= level`` (``None`` if
    never)."""
    for epoch, value in enumerate(val_loss):
        if value <= level:
            return epoch + 1
    return None


def largest_rise_pct(val_loss) -> float:
    """``100 * max_e (v_e / min_{e' <= e} v_e' - 1)``: the largest rise of a loss curve above
    its running best, in percent."""
    values = list(val_loss)
    if not values:
        raise ValueError("val_loss must hold at least one value")
    best, rise = math.inf, 0.0
    for value in values:
        best = min(best, value)
        rise = max(rise, value / best - 1.0)
    return 100.0 * rise


def run_record(name: str, history: dict, steps_per_epoch: int, batch_size: int) -> dict:
    """The stored form of one recipe's run: ``{name}/val_loss`` (per epoch),
    ``{name}/train_loss``, ``{name}/steps_per_epoch``, ``{name}/batch_size``,
    ``{name}/final_val_loss`` and ``{name}/largest_rise_pct``."""
    steps_per_epoch = validate.positive_int("steps_per_epoch", steps_per_epoch)
    batch_size = validate.positive_int("batch_size", batch_size)
    val = list(history["val_loss"])
    return {f"{name}/val_loss": val, f"{name}/train_loss": list(history["train_loss"]),
            f"{name}/steps_per_epoch": steps_per_epoch, f"{name}/batch_size": batch_size,
            f"{name}/final_val_loss": val[-1], f"{name}/largest_rise_pct": largest_rise_pct(val)}


def to_level(record: dict, recipes, reference: str, unit: str = "sequences") -> dict[str, float]:
    """For one seed's record: ``{recipe: steps or sequences to the level}``, the level being the
    final validation loss of ``reference``; a run that never reaches it counts its budget plus
    one epoch (see the module docstring)."""
    unit = validate.choice("unit", unit, ("steps", "sequences"))
    level = record[f"{reference}/final_val_loss"]
    out = {}
    for r in recipes:
        curve = record[f"{r}/val_loss"]
        epochs = epochs_to_level(curve, level) or len(curve) + 1
        steps = epochs * record[f"{r}/steps_per_epoch"]
        out[r] = float(steps if unit == "steps" else steps * record[f"{r}/batch_size"])
    return out


def paired_values(records: list[dict], measure) -> list[float]:
    """``measure(record)`` for each seed's record, in order: one value per seed."""
    return [float(measure(record)) for record in records]


def relative_gap_pct(record: dict, recipe: str, reference: str) -> float:
    """``100 * (final(recipe) - final(reference)) / final(reference)``: by how much ``recipe``
    ends above ``reference`` (positive: ``reference`` converged further)."""
    a, b = record[f"{recipe}/final_val_loss"], record[f"{reference}/final_val_loss"]
    return 100.0 * (a - b) / b


def log2_ratio_to_level(record: dict, recipe: str, reference: str,
                        unit: str = "sequences") -> float:
    """``log2(cost(recipe) / cost(reference))`` to the reference's final validation loss
    (:func:`to_level`): positive when ``recipe`` needs more, negative when it needs fewer."""
    cost = to_level(record, [recipe, reference], reference, unit)
    return math.log2(cost[recipe] / cost[reference])


def paired_measures(records: list[dict], reference: str, controls, presets) -> dict:
    """Every per-seed quantity of the training chapter's verdicts, one list (one value per
    seed) per name:

    * ``'{c} above reference (%)'``: :func:`relative_gap_pct` of each of ``controls``;
    * ``'{p}: log2 sequences ratio'`` and ``'{p}: log2 steps ratio'``:
      :func:`log2_ratio_to_level` of each of ``presets`` other than ``reference``, and
      ``'{p}: reached the level'`` (1 or 0);
    * ``'{p}: rise minus reference (points)'``: its largest rise minus the reference's;
    * ``'largest val / train'``: the largest final validation/training loss ratio of any recipe.
    """
    presets = list(presets)
    if reference not in presets:
        raise ValueError(f"presets must include the reference {reference!r}; got {presets}")
    out = {}
    for c in controls:
        out[f"{c} above reference (%)"] = paired_values(
            records, lambda r, c=c: relative_gap_pct(r, c, reference))
    for p in presets:
        if p == reference:
            continue
        for unit in ("sequences", "steps"):
            out[f"{p}: log2 {unit} ratio"] = paired_values(
                records, lambda r, p=p, unit=unit: log2_ratio_to_level(r, p, reference, unit))
        out[f"{p}: reached the level"] = paired_values(
            records, lambda r, p=p: epochs_to_level(
                r[f"{p}/val_loss"], r[f"{reference}/final_val_loss"]) is not None)
        out[f"{p}: rise minus reference (points)"] = paired_values(
            records, lambda r, p=p: r[f"{p}/largest_rise_pct"]
            - r[f"{reference}/largest_rise_pct"])
    names = [reference, *controls, *(p for p in presets if p != reference)]
    out["largest val / train"] = paired_values(
        records, lambda r: max(r[f"{n}/final_val_loss"] / r[f"{n}/train_loss"][-1]
                               for n in names))
    return out
