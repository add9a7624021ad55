"""A generic trainer: Adam, cosine-annealed learning rate, constraints, checkpoints.

``train_model_enhanced`` / ``quick_train`` / ``create_training_config`` / ``AdamCosineTrainer``
follow the interface of the enhanced-training document. Any model can be trained given a *task*
with two methods::

    task.batch(split, batch_size, generator) -> (inputs, targets)   # split: "train" or "val"
    task.loss(model, inputs, targets) -> scalar tensor

When no task is given, :class:`hdlib.tasks.HeadDirectionTrackingTask` is used.

Each epoch runs ``batches_per_epoch`` optimiser steps; its data and the model's noise are drawn
from generators seeded by ``(seed, epoch)``, so a run resumed from a checkpoint repeats the
uninterrupted run exactly. After every step the parameter ``constraints`` are applied by
clamping (``name -> (low, high)``, ``None`` for an open end).
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from . import validate

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
    plot_progress: bool = True
    schedule: str = "cosine"  # or "constant"
    batches_per_epoch: int = 10
    val_batches: int = 2
    val_batch_size: int = 64  # fixed, so that recipes with other batch sizes see the same data
    grad_clip: float = 1.0
    group_lr_scale: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_GROUP_LR_SCALE))
    constraints: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_CONSTRAINTS))
    checkpoint_path: str | None = None
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
        self.batches_per_epoch = validate.positive_int("batches_per_epoch", self.batches_per_epoch)
        self.val_batches = validate.positive_int("val_batches", self.val_batches)
        self.val_batch_size = validate.positive_int("val_batch_size", self.val_batch_size)
        self.grad_clip = validate.positive_float("grad_clip", self.grad_clip)
        self.seed = validate.non_negative_int("seed", self.seed)
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
    """Adam with per-group learning rates, cosine annealing per epoch, constraints, early
    stopping, monitoring and atomic checkpoints (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, config: TrainingConfig | dict | None = None,
                 task=None):
        if config is None:
            config = TrainingConfig()
        elif isinstance(config, dict):
            config = create_training_config(**config)
        self.model, self.config = model, config
        if task is None:
            from .tasks import HeadDirectionTrackingTask
            task = HeadDirectionTrackingTask.for_model(model)
        self.task = task
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._params = dict(named)
        if not named:
            raise ValueError("model has no trainable parameters")
        groups = {}
        for name, p in named:
            groups.setdefault(parameter_group(name), []).append(p)
        self.optimizer = torch.optim.Adam(
            [{"params": ps, "lr": config.learning_rate * config.group_lr_scale[g], "name": g}
             for g, ps in groups.items()], weight_decay=config.weight_decay)
        if config.schedule == "cosine":
            eta_min = config.min_lr / config.learning_rate
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda e: eta_min + (1 - eta_min) * 0.5 * (
                    1 + math.cos(math.pi * min(e, config.max_epochs) / config.max_epochs)))
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: 1.0)
        self.monitored = [n for n, p in named if p.numel() == 1] + [n for n, p in named
                                                                    if p.numel() > 1]
        self.history = {"train_loss": [], "val_loss": [], "learning_rate": [], "grad_norm": [],
                        "grad_norms": {n: [] for n in self.monitored}}
        # A model may report derived quantities (time constants, ...) through ``monitor()``.
        self._monitor = getattr(model, "monitor", None)
        self.param_history = {}
        self._record_parameters()
        self.start_epoch = 0
        self.best_val = math.inf
        self.bad_epochs = 0

    # ------------------------------------------------------------------ helpers
    def _summary(self, name: str) -> float:
        """A parameter's value, or the mean absolute value of a matrix."""
        p = self._params[name].detach()
        return p.item() if p.numel() == 1 else p.abs().mean().item()

    def _record_parameters(self) -> None:
        """Append each monitored parameter (and the model's ``monitor()`` values)."""
        values = {n: self._summary(n) for n in self.monitored}
        values.update(self._monitor() if self._monitor else {})
        for key, value in values.items():
            self.param_history.setdefault(key, []).append(value)

    def _generator(self, epoch: int, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch * 7 + salt)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        for name, (low, high) in self.config.constraints.items():
            if name in self._params:
                self._params[name].clamp_(min=low, max=high)

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        torch.manual_seed(self.config.seed + 99)
        generator = self._generator(-1, 1)
        size = self.config.val_batch_size
        losses = [self.task.loss(self.model, *self.task.batch("val", size, generator)).item()
                  for _ in range(self.config.val_batches)]
        self.model.train()
        return sum(losses) / len(losses)

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch: int) -> float:
        torch.manual_seed(self.config.seed * 1_000_003 + epoch)
        generator = self._generator(epoch, 0)
        self.model.train()
        params = list(self._params.values())
        total, norms, grad_norm = 0.0, {n: 0.0 for n in self.monitored}, 0.0
        for _ in range(self.config.batches_per_epoch):
            inputs, targets = self.task.batch("train", self.config.batch_size, generator)
            loss = self.task.loss(self.model, inputs, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} in epoch {epoch}; the best checkpoint "
                    f"({self.config.checkpoint_path or 'none written'}) is kept. Lower "
                    f"learning_rate (now {self.config.learning_rate}).")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for n in self.monitored:
                g = self._params[n].grad
                norms[n] += 0.0 if g is None else g.norm().item() / self.config.batches_per_epoch
            grad_norm += torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip).item()
            self.optimizer.step()
            self.apply_constraints()
            total += loss.item()
        for n in self.monitored:
            self.history["grad_norms"][n].append(norms[n])
        self.history["grad_norm"].append(grad_norm / self.config.batches_per_epoch)
        return total / self.config.batches_per_epoch

    def train(self, epochs: int | None = None) -> dict:
        """Train from ``start_epoch`` (0, or where :meth:`load_checkpoint` left off) to
        ``max_epochs``, or for at most ``epochs`` epochs in this call."""
        cfg = self.config
        end = cfg.max_epochs
        if epochs is not None:
            end = min(end, self.start_epoch + validate.positive_int("epochs", epochs))
        bar = tqdm(range(self.start_epoch, end), desc="epochs",
                   disable=not cfg.progress, mininterval=2.0)
        for epoch in bar:
            group = self.optimizer.param_groups[0]
            self.history["learning_rate"].append(
                cfg.learning_rate * group["lr"] / group["initial_lr"])
            train_loss = self.train_epoch(epoch)
            val_loss = self.validate()
            if not math.isfinite(val_loss):
                raise FloatingPointError(f"validation loss became {val_loss} in epoch {epoch}")
            self.scheduler.step()
            self.history["train_loss"].append(train_loss)
            self.history["val_loss"].append(val_loss)
            self._record_parameters()
            self.start_epoch = epoch + 1
            if val_loss < self.best_val:
                self.best_val, self.bad_epochs = val_loss, 0
                if cfg.checkpoint_path:
                    self.save_checkpoint(epoch, cfg.checkpoint_path)
            else:
                self.bad_epochs += 1
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", refresh=False)
            if cfg.early_stopping and self.bad_epochs >= cfg.patience:
                break
        bar.close()
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, epoch: int, path) -> Path:
        """Write everything needed to resume after ``epoch``, atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"epoch": epoch, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "history": self.history, "param_history": self.param_history,
                 "best_val": self.best_val, "bad_epochs": self.bad_epochs,
                 "format": "hdlib-trainer-1"}
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        os.close(handle)
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def load_checkpoint(self, path) -> int:
        """Restore a checkpoint; returns the epoch to resume from (the one after it)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint: {error}") from None
        if not isinstance(state, dict) or state.get("format") != "hdlib-trainer-1":
            raise ValueError(f"checkpoint {path} was not written by AdamCosineTrainer")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise ValueError(f"checkpoint {path} does not match the model: {error}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.param_history = state["history"], state["param_history"]
        self.best_val, self.bad_epochs = state["best_val"], state["bad_epochs"]
        self.start_epoch = state["epoch"] + 1
        return self.start_epoch


def train_model_enhanced(model, learning_rate: float = 1e-3, max_epochs: int = 100,
                         min_lr: float = 1e-6, weight_decay: float = 1e-4, batch_size: int = 32,
                         early_stopping: bool = True, patience: int = 20,
                         plot_progress: bool = True, task=None, **config):
    """Train with :class:`AdamCosineTrainer`; returns ``(model, history, trainer)``."""
    cfg = create_training_config(learning_rate=learning_rate, max_epochs=max_epochs,
                                 min_lr=min(min_lr, learning_rate), weight_decay=weight_decay,
                                 batch_size=batch_size, early_stopping=early_stopping,
                                 patience=patience, plot_progress=plot_progress, **config)
    trainer = AdamCosineTrainer(model, cfg, task)
    history = trainer.train()
    if plot_progress:
        from .plots import plot_trainer_history

        plot_trainer_history(trainer)
    return model, history, trainer


def quick_train(model, epochs: int = 50, lr: float = 1e-3, task=None, **config):
    """Short training with defaults and no plots; returns ``(model, history)``."""
    model, history, _ = train_model_enhanced(model, learning_rate=lr, max_epochs=epochs,
                                             plot_progress=False, task=task, **config)
    return model, history


#: Checks for the parameters of the training chapter.
TRAINING_CHAPTER_PARAMETERS = {
    "n_exc": validate.positive_int,
    "n_inh": validate.positive_int,
    "seq_len": validate.positive_int,
    "speed_deg_s": validate.positive_float,
    "cue_strength": validate.positive_float,
    "seeds": validate.list_of(validate.non_negative_int, "seeds (non-negative integers)"),
    "epoch_scale": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "batches_per_epoch": validate.positive_int,
    "resume_epochs": validate.positive_int,
    "checkpoint_dir": validate.path_string,
}
