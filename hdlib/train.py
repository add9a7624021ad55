"""The one training engine of the book. Every fitter (:mod:`hdlib.fitters`) is a thin layer on
:class:`Trainer`.

A fitter supplies a *step function* ``step_fn(ctx) -> Step``. ``ctx`` carries the step index,
a ``torch.Generator`` seeded by ``(seed, step)`` (so that a resumed run draws the same data and
noise as an uninterrupted one) and the ``carry`` the previous step returned. One step of
:meth:`Trainer.run` is::

    out = step_fn(ctx)                           # forward and loss; may run extra autograd passes
    if not isfinite(out.loss): diverged          # nothing updated
    zero_grad; out.loss.backward(); callbacks.on_backward
    grad_norm = clip_grad_norm_(params, grad_clip)  # ||g||_2 over all parameters, before clipping
    if not isfinite(grad_norm): diverged         # nothing updated
    [keep this state as the last good one]       # only with max_rollbacks > 0
    optimizer.step(); after_step(model)          # e.g. clamp parameters to their constraints
    history; every eval_every steps: evaluate() -> metrics (floats)
    every schedule_every steps: scheduler.step()  (ReduceLROnPlateau: step(plateau metric))
    callbacks.on_step_end; stoppers decide whether to stop
    checkpoint every checkpoint_every steps (atomic; written after the stoppers, so that it holds
    their counts), then stop if a stopper fired

*Diverged* raises ``FloatingPointError`` (naming the step and the learning rate), unless
``max_rollbacks > 0``: then the model, optimiser, carry and history go back to the last good
state (the one before the last update whose loss and gradient were finite), every learning
rate is halved, the event is written to the log and to ``rollbacks``, and training goes on from
there. A non-finite evaluation metric counts as a divergence too. Once ``max_rollbacks`` are
spent, the next divergence raises.

``out.carry`` is detached and handed to the next step: truncated backpropagation through
consecutive segments, or any state a loss keeps between steps. A curriculum is a step function
that picks its data by ``ctx.step``. A ``ReduceLROnPlateau`` scheduler is stepped with the last
value of ``plateau_metric``: an evaluated metric (once per evaluation, the first time at the first
evaluation) or a history entry (every ``schedule_every`` steps).

Stoppers: :class:`EarlyStopping` (a validation metric that stops improving), :class:`Converged`
(every watched value changes by less than a relative tolerance over a window),
:class:`TimeBudget` (wall-clock seconds). Callbacks are objects with any of ``on_backward``,
``on_evaluate``, ``on_step_end`` (each called with the trainer, in list order) and, to be saved
in checkpoints, ``state_dict``/``load_state_dict``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any, Callable

import torch
from tqdm import tqdm

from . import io, validate

CHECKPOINT_FORMAT = "hdlib-train-2"


@dataclasses.dataclass
class StepContext:
    """What a step function receives: the step index, a CPU generator for data
    (``generator``), a generator on the model's device for its noise (``device_generator``;
    the same object when the model is on the CPU), both seeded by ``(seed, step)``, and the
    ``carry`` returned by the previous step."""

    step: int
    generator: torch.Generator
    device_generator: torch.Generator
    carry: Any = None


@dataclasses.dataclass
class Step:
    """What a step function returns: the loss to minimise, floats to record in the history,
    and the state to hand to the next step (detached by the engine)."""

    loss: torch.Tensor
    logs: dict = dataclasses.field(default_factory=dict)
    carry: Any = None


def detach(value):
    """``value`` with every tensor inside (tuples, lists, dicts) detached from the graph."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(detach(v) for v in value)
    if isinstance(value, dict):
        return {k: detach(v) for k, v in value.items()}
    return value


class EarlyStopping:
    """Stop when ``metric`` (from ``evaluate``) has not improved by more than ``min_delta`` for
    ``patience`` evaluations; ``mode`` is ``'min'`` or ``'max'``."""

    def __init__(self, metric: str = "val_loss", patience: int = 20, mode: str = "min",
                 min_delta: float = 0.0):
        self.metric = metric
        self.patience = validate.positive_int("patience", patience)
        self.mode = validate.choice("mode", mode, ("min", "max"))
        self.min_delta = validate.float_in("min_delta", min_delta, 0.0, math.inf)
        self.best, self.bad = (math.inf if mode == "min" else -math.inf), 0

    def __call__(self, trainer: Trainer) -> str | None:
        values = trainer.evaluations.get(self.metric)
        if not values or trainer.evaluations["step"][-1] != trainer.step:
            return None
        value = values[-1] if self.mode == "min" else -values[-1]
        best = self.best if self.mode == "min" else -self.best
        if value < best - self.min_delta:
            self.best, self.bad = values[-1], 0
            return None
        self.bad += 1
        if self.bad >= self.patience:
            return f"{self.metric} did not improve for {self.patience} evaluations"
        return None

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad = state["best"], state["bad"]


class Converged:
    """Stop when every history entry in ``keys`` has changed by less than ``rtol`` (relative to
    its last value) over the last ``window`` steps: ``max |x[t] - x[t-k]| / |x[t]| < rtol`` for
    ``k <= window``."""

    def __init__(self, keys, rtol: float = 1e-3, window: int = 50):
        self.keys = list(keys)
        self.rtol = validate.positive_float("rtol", rtol)
        self.window = validate.positive_int("window", window)

    def __call__(self, trainer: Trainer) -> str | None:
        for key in self.keys:
            values = trainer.history.get(key, [])
            if len(values) <= self.window:
                return None
            recent = torch.tensor(values[-self.window - 1:], dtype=torch.float64)
            spread = (recent - recent[-1]).abs().max() / recent[-1].abs().clamp_min(1e-12)
            if spread >= self.rtol:
                return None
        return f"{', '.join(self.keys)} changed by less than {self.rtol:g} over {self.window} steps"

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class TimeBudget:
    """Stop once ``seconds`` of wall-clock time have passed in :meth:`Trainer.run`."""

    def __init__(self, seconds: float):
        self.seconds = validate.positive_float("seconds", seconds)

    def __call__(self, trainer: Trainer) -> str | None:
        if trainer.elapsed >= self.seconds:
            return f"time budget of {self.seconds:g} s used"
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Trainer:
    """The step loop described in the module docstring.

    ``history`` holds one value per step (``step``, ``loss``, ``lr``, ``grad_norm`` and the
    step function's ``logs``); ``evaluations`` one value per evaluation (``step`` and the
    metrics ``evaluate()`` returns). ``stop_reason`` says why the last :meth:`run` ended.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 step_fn: Callable[[StepContext], Step], *, scheduler=None,
                 schedule_every: int = 1, plateau_metric: str = "loss",
                 grad_clip: float | None = None, after_step: Callable | None = None,
                 evaluate: Callable[[], dict] | None = None, eval_every: int = 1,
                 stoppers=(), callbacks=(), seed: int = 0, checkpoint_path=None,
                 checkpoint_every: int | None = None, progress: bool = True,
                 desc: str = "training", max_rollbacks: int = 0):
        self.model, self.optimizer, self.step_fn = model, optimizer, step_fn
        self.scheduler = scheduler
        self.schedule_every = validate.positive_int("schedule_every", schedule_every)
        self.plateau_metric = plateau_metric
        self.grad_clip = None if grad_clip is None else validate.positive_float("grad_clip",
                                                                                grad_clip)
        self.after_step, self.evaluate = after_step, evaluate
        self.eval_every = validate.positive_int("eval_every", eval_every)
        self.stoppers, self.callbacks = list(stoppers), list(callbacks)
        self.seed = validate.non_negative_int("seed", seed)
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = (None if checkpoint_every is None else
                                 validate.positive_int("checkpoint_every", checkpoint_every))
        self.progress, self.desc = progress, desc
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        if not self.params:
            raise ValueError("the optimizer has no parameters to train")
        self.device = self.params[0].device
        self.step, self.carry, self.elapsed = 0, None, 0.0
        self.history: dict[str, list] = {}
        self.evaluations: dict[str, list] = {}
        self.stop_reason = None
        self.max_rollbacks = validate.non_negative_int("max_rollbacks", max_rollbacks)
        self.rollbacks: list[dict] = []
        self._good = None

    # ------------------------------------------------------------------ pieces
    def generator(self, step: int, stream: int = 0, device=None) -> torch.Generator:
        """The generator of ``step`` (``stream`` separates independent draws of one step), on
        ``device`` (the CPU by default)."""
        return torch.Generator(device=device or "cpu").manual_seed(
            (self.seed * 1_000_003 + step) * 8 + stream)

    @property
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _record(self, table: dict, values: dict) -> None:
        for key, value in values.items():
            table.setdefault(key, []).append(value)

    def _is_plateau(self) -> bool:
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def _schedule(self) -> None:
        if self.scheduler is None or self.step % self.schedule_every:
            return
        if not self._is_plateau():
            self.scheduler.step()
            return
        metric = self.plateau_metric
        if metric in self.evaluations:
            if self.evaluations["step"][-1] == self.step:  # each evaluation counts once
                self.scheduler.step(self.evaluations[metric][-1])
        elif metric in self.history:
            self.scheduler.step(self.history[metric][-1])
        elif self.evaluate is None or self.evaluations:
            raise KeyError(f"plateau_metric {metric!r} is neither logged nor evaluated")

    def _callbacks(self, event: str) -> None:
        for callback in self.callbacks:
            hook = getattr(callback, event, None)
            if hook is not None:
                hook(self)

    # ------------------------------------------------------------------ the loop
    def run_evaluation(self) -> dict:
        """Evaluate now (``model.eval()`` under ``no_grad``) and record the metrics."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            # floats (not numpy or tensor scalars), so that checkpoints load with weights_only
            metrics = {key: float(value) for key, value in self.evaluate().items()}
        self.model.train(was_training)
        for key, value in metrics.items():
            if not math.isfinite(value):
                self._diverged(f"evaluation metric {key} became {value} at step {self.step}")
                return metrics
        self._record(self.evaluations, {"step": self.step, **metrics})
        self._callbacks("on_evaluate")
        return metrics

    def _keep_good_state(self) -> None:
        self._good = copy.deepcopy({
            "step": self.step, "carry": self.carry, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "history": {k: len(v) for k, v in self.history.items()},
            "evaluations": {k: len(v) for k, v in self.evaluations.items()}})

    def _diverged(self, message: str) -> None:
        """Roll back to the last good state with every learning rate halved, or raise."""
        if len(self.rollbacks) >= self.max_rollbacks or self._good is None:
            spent = f" after {len(self.rollbacks)} rollbacks" if self.rollbacks else ""
            raise FloatingPointError(f"{message} (learning rate {self.learning_rate:.3g})"
                                     f"{spent}; the model was not updated. Lower the learning "
                                     f"rate or the gradient clip (now {self.grad_clip}).")
        good = self._good
        self.model.load_state_dict(good["model"])
        self.optimizer.load_state_dict(copy.deepcopy(good["optimizer"]))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(copy.deepcopy(good["scheduler"]))
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.5
        # a schedule computes its rates from base rates (a SequentialLR from its children's)
        for scheduler in [self.scheduler, *getattr(self.scheduler, "_schedulers", [])]:
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
        self.step, self.carry = good["step"], copy.deepcopy(good["carry"])
        for table, lengths in ((self.history, good["history"]),
                               (self.evaluations, good["evaluations"])):
            for key in list(table):
                del table[key][lengths.get(key, 0):]
        event = {"step": self.step, "reason": message, "learning_rate": self.learning_rate}
        self.rollbacks.append(event)
        tqdm.write(f"{self.desc}: {message}; rolled back to step {self.step}, learning rate "
                   f"halved to {self.learning_rate:.3g}")

    def train_step(self) -> Step | None:
        """One step (module docstring); ``None`` when it diverged and was rolled back."""
        data = self.generator(self.step)
        noise = data if self.device.type == "cpu" else self.generator(self.step, 1, self.device)
        ctx = StepContext(self.step, data, noise, self.carry)
        out = self.step_fn(ctx)
        if not torch.isfinite(out.loss):
            self._diverged(f"loss became {out.loss.item()} at step {self.step}")
            return None
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self._callbacks("on_backward")
        if self.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip).item()
        else:
            grad_norm = math.sqrt(sum(p.grad.square().sum().item() for p in self.params
                                      if p.grad is not None))
        lr = self.learning_rate
        if not math.isfinite(grad_norm):
            self._diverged(f"gradient norm became {grad_norm} at step {self.step} (loss "
                           f"{out.loss.item():.6g})")
            return None
        if self.max_rollbacks:
            self._keep_good_state()
        self.optimizer.step()
        if self.after_step is not None:
            self.after_step(self.model)
        self.carry = detach(out.carry)
        self.step += 1
        self._record(self.history, {"step": self.step, "loss": out.loss.item(), "lr": lr,
                                    "grad_norm": grad_norm,
                                    **{k: float(v) for k, v in out.logs.items()}})
        if self.evaluate is not None and self.step % self.eval_every == 0:
            spent = len(self.rollbacks)
            self.run_evaluation()
            if len(self.rollbacks) > spent:
                return None
        self._schedule()
        return out

    def run(self, steps: int) -> dict:
        """Train until ``steps`` steps have been taken in all (counting those restored by
        :meth:`resume`) or a stopper fires; returns ``history``."""
        steps = validate.positive_int("steps", steps)
        self.model.train()
        self.stop_reason = None
        start = time.perf_counter() - self.elapsed
        bar = tqdm(total=steps, initial=min(self.step, steps), desc=self.desc,
                   disable=not self.progress, mininterval=2.0)
        try:
            while self.step < steps:
                if self.train_step() is None:  # rolled back
                    bar.n = self.step
                    continue
                self.elapsed = time.perf_counter() - start
                self._callbacks("on_step_end")
                bar.update()
                bar.set_postfix(loss=f"{self.history['loss'][-1]:.4g}", refresh=False)
                reasons = [r for r in (stop(self) for stop in self.stoppers) if r]
                if (self.checkpoint_path and self.checkpoint_every
                        and self.step % self.checkpoint_every == 0):
                    self.save(self.checkpoint_path)
                if reasons:
                    self.stop_reason = reasons[0]
                    break
        finally:
            bar.close()
        self.stop_reason = self.stop_reason or f"{steps} steps"
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "elapsed": self.elapsed,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "history": self.history, "evaluations": self.evaluations, "carry": self.carry,
                "stoppers": [s.state_dict() for s in self.stoppers],
                "callbacks": [c.state_dict() for c in self._stateful_callbacks()]}

    def load_state_dict(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise ValueError(f"checkpoint does not match the model: {error}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.history, self.evaluations = state["history"], state["evaluations"]
        self.carry = state["carry"]
        for stopper, stopper_state in zip(self.stoppers, state["stoppers"]):
            stopper.load_state_dict(stopper_state)
        for callback, callback_state in zip(self._stateful_callbacks(), state["callbacks"]):
            callback.load_state_dict(callback_state)

    def _stateful_callbacks(self) -> list:
        return [c for c in self.callbacks if hasattr(c, "state_dict")]

    def save(self, path) -> None:
        """Write everything needed to resume, atomically."""
        io.save_torch(self.state_dict(), path)

    def resume(self, path) -> int:
        """Restore a checkpoint written by :meth:`save`; returns the step to continue from."""
        self.load_state_dict(io.load_torch(path, CHECKPOINT_FORMAT))
        return self.step


def cosine_schedule(optimizer, total_steps: int, eta_min: float = 0.0, warmup_steps: int = 0):
    """Linear warm-up over ``warmup_steps`` (from ``1/(warmup_steps+1)`` of each group's rate up
    to it), then cosine annealing to ``eta_min`` at ``total_steps``:
    ``lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi (t - w) / (T - w))) / 2`` for ``t >= w``.
    ``torch.optim.lr_scheduler``'s ``LinearLR`` + ``CosineAnnealingLR`` in a ``SequentialLR``."""
    total = validate.positive_int("total_steps", total_steps)
    warm = validate.non_negative_int("warmup_steps", warmup_steps)
    eta_min = validate.float_in("eta_min", eta_min, 0.0, math.inf)
    if warm >= total:
        raise ValueError(f"warmup_steps ({warm}) must be below total_steps ({total})")
    schedulers = torch.optim.lr_scheduler
    cosine = schedulers.CosineAnnealingLR(optimizer, T_max=total - warm, eta_min=eta_min)
    if warm == 0:
        return cosine
    warmup = schedulers.LinearLR(optimizer, start_factor=1.0 / (warm + 1), end_factor=1.0,
                                 total_iters=warm)
    return schedulers.SequentialLR(optimizer, [warmup, cosine], milestones=[warm])
