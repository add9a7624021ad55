"""The enhanced-training document's interface (Adam, cosine annealing, constraints, resumable
checkpoints) as a thin layer on the book's one engine, :class:`hdlib.train.Trainer`.

``train_model_enhanced`` / ``quick_train`` / ``create_training_config`` / ``AdamCosineTrainer``
follow the interface of the enhanced-training document. Any model can be trained given a *task*
with two methods::

    task.batch(split, batch_size, generator) -> (inputs, targets)   # split: "train" or "val"
    task.loss(model, inputs, targets, generator) -> scalar tensor   # generator: the model's noise

When no task is given, :class:`hdlib.datasets.tasks.HeadDirectionTrackingTask` is used.

Each epoch runs ``batches_per_epoch`` optimiser steps; each step's data and noise come from a
generator seeded by ``(seed, step)``, so a run resumed from a checkpoint repeats the
uninterrupted run exactly. After every step the parameter ``constraints`` are applied by
clamping (``name -> (low, high)``, ``None`` for an open end).

The document's "automatic model saving at best validation loss" is ``keep_best=True``: after
every epoch whose validation loss is the lowest so far, the trainer keeps a copy of the model's
state (``best_state``, ``best_epoch``, ``best_val_loss``) and, given ``best_path``, writes it
there atomically; :meth:`AdamCosineTrainer.restore_best` loads it back, and
:func:`train_model_enhanced` does so when training ends.

Two options carry the tracking document's training-loop fixes (both off by default):

* ``regularisation = c > 0`` adds ``c * sum_p mean(p^2)`` over every trainable parameter to the
  loss (each parameter, scalar or matrix, weighs the same), a term that reaches every parameter
  (the document's "regularization terms to encourage training of all parameters");
* ``state_passing=True`` hands the network's final state and the task's trajectories from one
  step to the next (truncated backpropagation through consecutive segments, through the
  engine's ``carry``); after ``segments_per_sequence`` segments a fresh batch starts from the
  task's initial state. It needs a task with ``segment`` and ``run`` (as
  :class:`~hdlib.datasets.tasks.HeadDirectionTrackingTask`).

The training chapter's measurements sit beside the trainer: :func:`scaled_recipe` (a recipe
shortened by ``epoch_scale``), :func:`parameter_movement`, :func:`constraint_violations`, and
:func:`run_table` / :func:`seeds_where_lower` for comparisons of recipes paired by seed.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import torch

from .. import io, validate
from ..datasets.tasks import HeadDirectionTrackingTask
from ..train import EarlyStopping, Step, Trainer

DEFAULT_CONSTRAINTS = {
    "g_ee": (0.1, 10.0), "g_ei": (0.1, 10.0), "g_ie": (0.1, 10.0),
    "noise_rate_e": (0.1, 20.0), "noise_rate_i": (0.1, 20.0),
    "W_IE": (None, 0.5), "W_EI": (-0.5, 2.0),
}

#: Learning-rate multipliers of the parameter groups (``temporal``: rates and decay constants
#: such as the Polar model's ``lambda``/``alpha``, 10x lower as its document advises).
DEFAULT_GROUP_LR_SCALE = {"noise": 5.0, "connectivity": 2.0, "temporal": 0.1, "other": 1.0}

PRESETS = {
    "conservative": {"learning_rate": 5e-4, "max_epochs": 200, "weight_decay": 1e-3,
                     "patience": 30, "batch_size": 16},
    "aggressive": {"learning_rate": 2e-3, "max_epochs": 50, "weight_decay": 1e-5,
                   "patience": 10, "batch_size": 64},
}

#: The recipes the training chapter compares: the defaults, the same with a constant learning
#: rate (the control the cosine schedule needs), and the two presets.
RECIPES = {"cosine (default)": {}, "constant rate": {"schedule": "constant"}, **PRESETS}

#: The keyword arguments of :func:`train_model_enhanced` that a recipe sets.
RECIPE_KEYS = ("learning_rate", "max_epochs", "weight_decay", "patience", "batch_size",
               "schedule")


@dataclasses.dataclass
class TrainingConfig:
    """Every knob of :class:`AdamCosineTrainer` (see :func:`create_training_config`)."""

    learning_rate: float = 1e-3
    max_epochs: int = 100
    min_lr: float = 1e-6
    weight_decay: float = 1e-4
    batch_size: int = 32
    early_stopping: bool = True
    patience: int = 20
    schedule: str = "cosine"  # or "constant"
    optimizer: str = "adam"  # or "sgd" (SGD with momentum 0.9, the control for Adam)
    batches_per_epoch: int = 10
    val_batches: int = 2
    val_batch_size: int = 64  # fixed, so that recipes with other batch sizes see the same data
    grad_clip: float = 1.0
    group_lr_scale: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_GROUP_LR_SCALE))
    constraints: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_CONSTRAINTS))
    regularisation: float = 0.0  # coefficient of the parameter regulariser (see _step)
    state_passing: bool = False  # carry the state between steps (truncated backpropagation)
    segments_per_sequence: int = 4  # segments of one carried sequence before a fresh start
    checkpoint_path: str | None = None
    keep_best: bool = False  # keep (and, with best_path, save) the best-validation state
    best_path: str | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        self.learning_rate = validate.positive_float("learning_rate", self.learning_rate)
        self.max_epochs = validate.positive_int("max_epochs", self.max_epochs)
        self.min_lr = validate.float_in("min_lr", self.min_lr, 0.0, self.learning_rate)
        self.weight_decay = validate.float_in("weight_decay", self.weight_decay, 0.0, math.inf)
        self.batch_size = validate.positive_int("batch_size", self.batch_size)
        self.patience = validate.positive_int("patience", self.patience)
        self.schedule = validate.choice("schedule", self.schedule, ("cosine", "constant"))
        self.optimizer = validate.choice("optimizer", self.optimizer, ("adam", "sgd"))
        self.batches_per_epoch = validate.positive_int("batches_per_epoch", self.batches_per_epoch)
        self.val_batches = validate.positive_int("val_batches", self.val_batches)
        self.val_batch_size = validate.positive_int("val_batch_size", self.val_batch_size)
        self.grad_clip = validate.positive_float("grad_clip", self.grad_clip)
        self.seed = validate.non_negative_int("seed", self.seed)
        self.regularisation = validate.float_in("regularisation", self.regularisation, 0.0,
                                                math.inf)
        self.state_passing = validate.boolean("state_passing", self.state_passing)
        self.keep_best = validate.boolean("keep_best", self.keep_best)
        if self.best_path is not None and not self.keep_best:
            raise ValueError("best_path needs keep_best=True")
        self.segments_per_sequence = validate.positive_int("segments_per_sequence",
                                                           self.segments_per_sequence)
        unknown = set(self.group_lr_scale) - set(DEFAULT_GROUP_LR_SCALE)
        if unknown:
            raise ValueError(f"group_lr_scale has unknown group(s) {sorted(unknown)}; "
                             f"expected {sorted(DEFAULT_GROUP_LR_SCALE)}")
        scales = {**DEFAULT_GROUP_LR_SCALE, **self.group_lr_scale}
        self.group_lr_scale = {k: validate.positive_float(f"group_lr_scale[{k!r}]", v)
                               for k, v in scales.items()}
        for name, bounds in self.constraints.items():
            if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
                raise ValueError(f"constraints[{name!r}] must be a (low, high) pair; "
                                 f"got {bounds!r}")
            low, high = bounds
            if low is not None and high is not None and low > high:
                raise ValueError(f"constraints[{name!r}] has low {low} above high {high}")
        self.constraints = {k: tuple(v) for k, v in self.constraints.items()}


def create_training_config(preset: str | None = None, **overrides) -> TrainingConfig:
    """A :class:`TrainingConfig` from an optional preset (``'conservative'``, ``'aggressive'``)
    and keyword overrides; an unknown keyword is a ``ValueError`` naming it."""
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown training config key(s): {', '.join(unknown)}")
    base = dict(PRESETS[validate.choice("preset", preset, PRESETS)]) if preset else {}
    return TrainingConfig(**{**base, **overrides})


def parameter_group(name: str) -> str:
    """``'noise'`` for noise rates, ``'temporal'`` for relaxation rates and decay constants
    (names containing ``lambda`` or ``alpha``), ``'connectivity'`` for weights, widths and gains,
    else ``'other'``."""
    if "noise" in name:
        return "noise"
    leaf = name.rsplit(".", 1)[-1]  # the parameter's own name, without its module path
    if "lambda" in leaf or "alpha" in leaf:
        return "temporal"
    if leaf.startswith(("W", "g_", "sigma", "J")):
        return "connectivity"
    return "other"


class AdamCosineTrainer:
    """The document's trainer on :class:`hdlib.train.Trainer`: Adam with per-group learning
    rates, cosine annealing per epoch (``CosineAnnealingLR``: in epoch ``e`` a group with
    scale ``s`` steps at ``min_lr + (s * learning_rate - min_lr) (1 + cos(pi e / max_epochs))
    / 2``), gradient clipping, constraints, early stopping on the validation loss and a
    checkpoint after every epoch (see the module docstring).

    ``history`` holds one value per epoch (``train_loss``, ``val_loss``, ``learning_rate``,
    ``grad_norm`` and ``grad_norms[name]`` before clipping); ``param_history`` each monitored
    parameter (and the model's ``monitor()`` values) before training and after every epoch.
    """

    def __init__(self, model: torch.nn.Module, config: TrainingConfig | dict | None = None,
                 task=None):
        if config is None:
            config = TrainingConfig()
        elif isinstance(config, dict):
            config = create_training_config(**config)
        self.model, self.config = model, config
        if task is None:
            task = HeadDirectionTrackingTask.for_model(model)
        self.task = task
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        self.parameters = dict(named)
        self.initial_parameters = {n: p.detach().clone() for n, p in named}
        if config.state_passing and not all(hasattr(task, m) for m in ("segment", "run")):
            raise ValueError("state_passing=True needs a task with segment() and run() "
                             f"methods; {type(task).__name__} has not both")
        groups = {}
        for name, p in named:
            groups.setdefault(parameter_group(name), []).append(p)
        group_list = [{"params": ps, "lr": config.learning_rate * config.group_lr_scale[g],
                       "name": g} for g, ps in groups.items()]
        if config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(group_list, lr=config.learning_rate, momentum=0.9,
                                             weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(group_list, weight_decay=config.weight_decay)
        scheduler = None
        if config.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=config.max_epochs, eta_min=config.min_lr)
        self.monitored = [n for n, p in named if p.numel() == 1] + [n for n, p in named
                                                                    if p.numel() > 1]
        self.param_history = {}
        self.grad_norms = {n: [] for n in self.monitored}
        self.best_state, self.best_epoch, self.best_val_loss = None, None, math.inf
        self._record_parameters()
        per_epoch = config.batches_per_epoch
        self.engine = Trainer(
            model, self.optimizer, self._step, scheduler=scheduler, schedule_every=per_epoch,
            grad_clip=config.grad_clip, after_step=lambda _: self.apply_constraints(),
            evaluate=self.validate, eval_every=per_epoch,
            stoppers=[EarlyStopping("val_loss", config.patience)] if config.early_stopping else
            [], callbacks=[self], seed=config.seed, checkpoint_path=config.checkpoint_path,
            checkpoint_every=per_epoch, progress=config.progress, desc="steps")

    # ------------------------------------------------------------------ engine hooks
    def _step(self, ctx) -> Step:
        device, size = self.engine.device, self.config.batch_size
        carry = None
        if self.config.state_passing:
            fresh = ctx.carry is None or ctx.carry["segment"] >= self.config.segments_per_sequence
            start = None if fresh else ctx.carry["trajectory"]
            inputs, targets, _, end = self.task.segment("train", size, ctx.generator, start)
            inputs, targets = inputs.to(device), targets.to(device)
            h0 = self.task.initial_state(self.model, targets) if fresh else ctx.carry["state"]
            loss, state = self.task.run(self.model, inputs, targets, h0,
                                        generator=ctx.device_generator)
            carry = {"state": state, "trajectory": end,
                     "segment": 1 if fresh else ctx.carry["segment"] + 1}
        else:
            inputs, targets = self.task.batch("train", size, ctx.generator)
            inputs, targets = inputs.to(device), targets.to(device)
            loss = self.task.loss(self.model, inputs, targets, generator=ctx.device_generator)
        if self.config.regularisation == 0.0:
            return Step(loss, carry=carry)
        penalty = sum(p.square().mean() for p in self.parameters.values())
        return Step(loss + self.config.regularisation * penalty,
                    logs={"task_loss": loss.item(), "penalty": penalty.item()}, carry=carry)

    def on_backward(self, engine) -> None:
        for name in self.monitored:
            grad = self.parameters[name].grad
            self.grad_norms[name].append(0.0 if grad is None else grad.norm().item())

    def on_evaluate(self, engine) -> None:
        self._record_parameters()
        val_loss = engine.evaluations["val_loss"][-1]
        if self.config.keep_best and val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, self.epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.config.best_path:
                with io.atomic_path(self.config.best_path, suffix=".pt") as tmp:
                    torch.save({"model": self.best_state, "epoch": self.best_epoch,
                                "val_loss": self.best_val_loss}, tmp)

    def restore_best(self) -> int | None:
        """Load the best-validation state into the model (``keep_best``); returns its epoch
        (the number of epochs trained when it was reached), or None when none was kept."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.best_epoch

    def state_dict(self) -> dict:
        return {"param_history": self.param_history, "grad_norms": self.grad_norms,
                "initial_parameters": self.initial_parameters,
                "best": {"state": self.best_state, "epoch": self.best_epoch,
                         "val_loss": self.best_val_loss}}

    def load_state_dict(self, state: dict) -> None:
        self.param_history, self.grad_norms = state["param_history"], state["grad_norms"]
        self.initial_parameters = state.get("initial_parameters", self.initial_parameters)
        best = state.get("best", {})
        self.best_state = best.get("state")
        self.best_epoch = best.get("epoch")
        self.best_val_loss = best.get("val_loss", math.inf)

    def _summary(self, name: str) -> float:
        """A parameter's value, or the mean absolute value of a matrix."""
        p = self.parameters[name].detach()
        return p.item() if p.numel() == 1 else p.abs().mean().item()

    def _record_parameters(self) -> None:
        values = {n: self._summary(n) for n in self.monitored}
        monitor = getattr(self.model, "monitor", None)
        values.update(monitor() if monitor else {})
        for key, value in values.items():
            self.param_history.setdefault(key, []).append(value)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        for name, (low, high) in self.config.constraints.items():
            if name in self.parameters:
                self.parameters[name].clamp_(min=low, max=high)

    def validate(self) -> dict:
        """Mean loss over ``val_batches`` fixed batches (the same ones after every epoch)."""
        size = self.config.val_batch_size
        data = self.engine.generator(-1)
        noise = self.engine.generator(-1, stream=1, device=self.engine.device)
        losses = []
        for _ in range(self.config.val_batches):
            inputs, targets = self.task.batch("val", size, data)
            losses.append(self.task.loss(self.model, inputs.to(self.engine.device),
                                         targets.to(self.engine.device), generator=noise).item())
        return {"val_loss": sum(losses) / len(losses)}

    # ------------------------------------------------------------------ training
    @property
    def epoch(self) -> int:
        return self.engine.step // self.config.batches_per_epoch

    @property
    def history(self) -> dict:
        """Per-epoch view of the engine's per-step history."""
        per_epoch = self.config.batches_per_epoch
        n = self.epoch

        def epoch_means(values):
            return [sum(values[e * per_epoch:(e + 1) * per_epoch]) / per_epoch for e in range(n)]

        steps = self.engine.history
        group = self.optimizer.param_groups[0]
        scale = self.config.group_lr_scale[group["name"]]
        return {"train_loss": epoch_means(steps.get("loss", [])),
                "val_loss": list(self.engine.evaluations.get("val_loss", [])),
                "learning_rate": [lr / scale for lr in steps.get("lr", [])[::per_epoch]],
                "grad_norm": epoch_means(steps.get("grad_norm", [])),
                "grad_norms": {k: epoch_means(v) for k, v in self.grad_norms.items()}}

    def train(self, epochs: int | None = None) -> dict:
        """Train from the current epoch (0, or where :meth:`load_checkpoint` left off) to
        ``max_epochs``, or for at most ``epochs`` epochs in this call."""
        end = self.config.max_epochs
        if epochs is not None:
            end = min(end, self.epoch + validate.positive_int("epochs", epochs))
        self.engine.run(end * self.config.batches_per_epoch)
        return self.history

    def save_checkpoint(self, epoch, path=None) -> Path:
        """Write everything needed to resume, atomically (see :meth:`hdlib.train.Trainer.save`).

        The document's call is ``save_checkpoint(epoch, path)`` with ``epoch`` the last
        completed epoch (0-based). The checkpoint always holds the trainer's current state, so
        ``epoch`` must equal ``self.epoch - 1`` (a ``ValueError`` otherwise);
        ``save_checkpoint(path)`` saves without the check.
        """
        if path is None:
            path = epoch
        elif epoch != self.epoch - 1:
            raise ValueError(f"epoch {epoch} is not the last completed epoch ({self.epoch - 1}); "
                             "a checkpoint holds the trainer's current state")
        self.engine.save(path)
        return Path(path)

    def load_checkpoint(self, path) -> int:
        """Restore a checkpoint; returns the epoch to resume from (the one after the last
        completed epoch)."""
        self.engine.resume(path)
        return self.epoch


def train_model_enhanced(model, learning_rate: float = 1e-3, max_epochs: int = 100,
                         min_lr: float = 1e-6, weight_decay: float = 1e-4, batch_size: int = 32,
                         early_stopping: bool = True, patience: int = 20,
                         plot_progress: bool = True, task=None, **config):
    """Train with :class:`AdamCosineTrainer`; returns ``(model, history, trainer)``, the model
    in its best-validation state when ``keep_best=True``."""
    cfg = create_training_config(learning_rate=learning_rate, max_epochs=max_epochs,
                                 min_lr=min(min_lr, learning_rate), weight_decay=weight_decay,
                                 batch_size=batch_size, early_stopping=early_stopping,
                                 patience=patience, **config)
    trainer = AdamCosineTrainer(model, cfg, task)
    history = trainer.train()
    trainer.restore_best()
    if plot_progress:
        from ..book.plots import plot_trainer_history

        plot_trainer_history(trainer)
    return model, history, trainer


def quick_train(model, epochs: int = 50, lr: float = 1e-3, task=None, **config):
    """Short training with defaults and no plots; returns ``(model, history)``."""
    model, history, _ = train_model_enhanced(model, learning_rate=lr, max_epochs=epochs,
                                             plot_progress=False, task=task, **config)
    return model, history


# ---------------------------------------------------------------------------- comparisons
def scaled_recipe(overrides: dict, epoch_scale: float = 1.0) -> dict:
    """A recipe's :data:`RECIPE_KEYS` (the :class:`TrainingConfig` defaults, then
    ``overrides``), with ``max_epochs`` and ``patience`` multiplied by ``epoch_scale`` and
    rounded (at least 1), so that a short run keeps each recipe's proportions."""
    defaults = TrainingConfig()
    recipe = {key: getattr(defaults, key) for key in RECIPE_KEYS}
    recipe.update(overrides)
    scale = validate.float_in("epoch_scale", epoch_scale, 0.0, 1.0, low_open=True)
    for key in ("max_epochs", "patience"):
        recipe[key] = max(1, round(recipe[key] * scale))
    return recipe


def relative_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """``||after - before|| / ||before||`` (Frobenius norms): how far a parameter moved."""
    return ((after - before).norm() / before.norm().clamp_min(1e-12)).item()


def parameter_movement(trainer: AdamCosineTrainer) -> pd.DataFrame:
    """One row per monitored parameter: its gradient norm averaged over the first epoch, its
    value before training and after the last epoch (the mean absolute value for a matrix), and
    the relative change :func:`relative_change` of the whole parameter (every entry of a
    matrix, so that entries moving in opposite directions count)."""
    rows = {name: {"gradient norm (epoch 1)": trainer.history["grad_norms"][name][0],
                   "start": trainer.param_history[name][0],
                   "end": trainer.param_history[name][-1],
                   "relative change": relative_change(trainer.initial_parameters[name],
                                                      trainer.parameters[name].detach())}
            for name in trainer.monitored}
    return pd.DataFrame(rows).T


def constraint_violations(model: torch.nn.Module, constraints: dict,
                          tol: float = 1e-6) -> list[str]:
    """Names of the parameters with an entry outside their ``(low, high)`` bounds by more than
    ``tol`` (``None`` is an open end)."""
    params = dict(model.named_parameters())
    broken = []
    for name, (low, high) in constraints.items():
        if name not in params:
            continue
        value = params[name].detach()
        if ((low is not None and value.min().item() < low - tol)
                or (high is not None and value.max().item() > high + tol)):
            broken.append(name)
    return broken


def sequences_to_target(val_loss, target: float, sequences_per_epoch: int) -> float:
    """Training sequences seen when the validation loss first reaches ``target``:
    ``(e + 1) * sequences_per_epoch`` for the first epoch ``e`` with ``val_loss[e] <= target``,
    ``inf`` if it never does."""
    for epoch, value in enumerate(val_loss):
        if value <= target:
            return float((epoch + 1) * sequences_per_epoch)
    return math.inf


def run_table(runs: dict, reference: str) -> pd.DataFrame:
    """One row per run of a recipe comparison.

    ``runs[(recipe, seed)]`` holds the run's per-epoch ``history`` (of
    :class:`AdamCosineTrainer`), ``sequences_per_epoch`` (``batches_per_epoch * batch_size``),
    ``seconds`` and ``error`` (a tracking error). Columns: the final validation loss, the
    number of epochs run, the number of epochs whose validation loss rose above the previous
    one (``rises``), the final validation/training loss ratio, and ``sequences to target``:
    the training sequences a run needed to reach the final validation loss of the
    ``reference`` recipe on the same seed (:func:`sequences_to_target`; ``inf`` if it never
    did).
    """
    target = {seed: run["history"]["val_loss"][-1] for (name, seed), run in runs.items()
              if name == reference}
    if not target:
        raise ValueError(f"reference recipe {reference!r} has no runs")
    rows = []
    for (name, seed), run in runs.items():
        val, train = run["history"]["val_loss"], run["history"]["train_loss"]
        rows.append({"recipe": name, "seed": seed, "final val loss": val[-1],
                     "epochs run": len(val),
                     "rises": sum(b > a for a, b in zip(val, val[1:])),
                     "val / train (final)": val[-1] / train[-1],
                     "sequences to target": sequences_to_target(val, target[seed],
                                                                run["sequences_per_epoch"]),
                     "tracking error (deg)": run["error"], "seconds": run["seconds"]})
    return pd.DataFrame(rows).set_index(["recipe", "seed"])


def seeds_where_lower(table: pd.DataFrame, column: str, recipe: str, other: str) -> int:
    """Number of seeds on which ``recipe``'s ``column`` in a :func:`run_table` is strictly
    below ``other``'s (a comparison paired by seed)."""
    a, b = table.loc[recipe, column], table.loc[other, column]
    return int((a < b.reindex(a.index)).sum())
