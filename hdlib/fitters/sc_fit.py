"""Fitting an :class:`~hdlib.models.eirnn.EIRNN` to a recorded session: one configuration, one run.

A :class:`FitConfig` holds every knob of the document's experiments; :func:`fit` trains with
Adam on minibatches of training trials (or the whole training split each step), minimising

    L = L_neuron + c * L_trial + L_reg [+ activity regularisation]

where ``L_neuron`` is the Poisson negative log-likelihood of the recorded spike counts (or the
document's per-condition PSTH correlation loss, or a mix of both), ``c`` balances the gradient
norms (:func:`hdlib.losses.balanced_weight`, recomputed every ``balance_every`` steps), and the
learning rate is constant or follows :func:`hdlib.train.cosine_schedule` (with warm-up).

Every ``eval_every`` steps the model (noise off) is scored on the validation trials by held-out
bits per spike (:func:`hdlib.metrics.bits_per_spike`); the best state so far is kept, written
to ``best_path`` if given, and is the state :func:`fit` returns, also when the time budget
ends the run, when it is interrupted (Ctrl-C) or when it diverges more often than it can roll
back. :func:`evaluate` scores a model on held-out trials with :mod:`hdlib.metrics`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch

from .. import losses as fl
from .. import metrics, validate
from ..datasets.sessions import Session
from ..models.eirnn import EIRNN
from ..models.encoders import RaisedCosineEncoder
from ..train import Step, TimeBudget, Trainer, cosine_schedule


@dataclasses.dataclass
class FitConfig:
    """Knobs of one fit (names follow the document). The defaults are those of
    ``python -m hdlib fit`` (chapter 04 measures them on held-out trials): the Poisson
    likelihood as ``L_neuron`` plus the document's ``L_trial``, the task inputs on the GLM's
    temporal basis (``input_basis``), a rate scale and baseline per neuron started at its mean
    training rate (``rate_gain='neuron'``), minibatches of 64 trials, 600 steps; the state kept
    is the one with the best validation bits per spike (checked every ``eval_every`` steps)."""

    steps: int = 600
    learning_rate: float = 0.01
    batch_size: int = 64  # trials drawn per step from the training split (0: all of them)
    loss_type: str = "poisson"  # L_neuron: 'poisson', 'correlation' or 'hybrid'
    pooled_weight: float = 0.0  # weight of L_pooled (1 - the published metric) added to L_neuron
    input_basis: bool = True  # inputs through hdlib.models.encoders.RaisedCosineEncoder
    rate_gain: str = "neuron"  # rate scale and baseline: 'neuron' (one each per unit) or 'scalar'
    eval_every: int = 25  # steps between validation checks (best-state selection)
    max_rollbacks: int = 8  # divergences rolled back (learning rate halved) before giving up
    init_from_glm: bool = False  # recorded units' input weights from the Poisson GLM
    keep_best: bool = True  # end at the best validation state (False: the last state)
    hybrid_weight: float = 0.3
    ltrial_scale: float = 0.0  # c of L_trial (0: off; the document used 0.5)
    ltrial_distance: str = "euclidean"  # or 'poisson'
    sinkhorn_epsilon: float = 0.1
    smooth_ms: float = 100.0
    balance_every: int = 10
    lambda_reg: float = 1e-4
    scheduler: str = "constant"  # or 'cosine', or 'plateau' (ReduceLROnPlateau on the loss)
    plateau_patience: int = 20  # steps without improvement before 'plateau' halves the rate
    warmup_steps: int = 0
    activity_reg: float = 0.0  # lambda_mean of the activity regulariser (0 = off)
    learnable_tau: str = "none"
    tau_mode: str = "clamp"
    freeze_tau: bool = False
    learnable_alpha: str | None = None  # default: 'neuron', or 'none' with a learnable tau
    alpha_init: float = 0.5
    tau_min: float | None = None  # lower bound of a learnable tau (default: one bin)
    tau_e_init: float | None = None  # initial tau (ms); default dt / alpha_init
    tau_i_init: float | None = None
    low_rank: int | None = None
    n_hidden: int = 0
    learnable_x0: bool = False
    spectral_radius: float = 0.9
    bypass_dale: bool = False
    noise_scale: float = 0.1
    time_constant_lr_scale: float = 1.0  # learning rate of alpha/tau relative to the rest
    seed: int = 0

    def __post_init__(self):
        self.steps = validate.positive_int("steps", self.steps)
        self.learning_rate = validate.positive_float("learning_rate", self.learning_rate)
        self.loss_type = validate.choice("loss_type", self.loss_type,
                                         ("correlation", "poisson", "hybrid"))
        self.ltrial_scale = validate.float_in("ltrial_scale", self.ltrial_scale, 0.0, math.inf)
        self.ltrial_distance = validate.choice("ltrial_distance", self.ltrial_distance,
                                               ("euclidean", "poisson"))
        self.batch_size = validate.non_negative_int("batch_size", self.batch_size)
        self.pooled_weight = validate.float_in("pooled_weight", self.pooled_weight, 0.0, math.inf)
        if self.learnable_alpha is None:
            self.learnable_alpha = "neuron" if self.learnable_tau == "none" else "none"
        if self.learnable_tau != "none" and self.learnable_alpha != "none":
            raise ValueError(f"learnable_tau ({self.learnable_tau!r}) and learnable_alpha "
                             f"({self.learnable_alpha!r}) cannot both be on")
        self.input_basis = validate.boolean("input_basis", self.input_basis)
        self.rate_gain = validate.choice("rate_gain", self.rate_gain, ("neuron", "scalar"))
        self.eval_every = validate.positive_int("eval_every", self.eval_every)
        self.max_rollbacks = validate.non_negative_int("max_rollbacks", self.max_rollbacks)
        self.init_from_glm = validate.boolean("init_from_glm", self.init_from_glm)
        self.keep_best = validate.boolean("keep_best", self.keep_best)
        if self.init_from_glm and not (self.input_basis and self.rate_gain == "neuron"):
            raise ValueError("init_from_glm needs input_basis=True and rate_gain='neuron'")
        self.scheduler = validate.choice("scheduler", self.scheduler,
                                         ("constant", "cosine", "plateau"))
        self.plateau_patience = validate.positive_int("plateau_patience", self.plateau_patience)
        self.spectral_radius = validate.positive_float("spectral_radius", self.spectral_radius)
        self.learnable_x0 = validate.boolean("learnable_x0", self.learnable_x0)
        self.warmup_steps = validate.non_negative_int("warmup_steps", self.warmup_steps)
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below steps "
                             f"({self.steps})")
        self.activity_reg = validate.float_in("activity_reg", self.activity_reg, 0.0, math.inf)
        self.n_hidden = validate.non_negative_int("n_hidden", self.n_hidden)
        if self.low_rank is not None:
            self.low_rank = validate.positive_int("low_rank", self.low_rank)
        self.seed = validate.non_negative_int("seed", self.seed)
        self.time_constant_lr_scale = validate.positive_float("time_constant_lr_scale",
                                                              self.time_constant_lr_scale)


def make_config(**overrides) -> FitConfig:
    """A :class:`FitConfig`; an unknown key is a ``ValueError`` naming it."""
    known = {f.name for f in dataclasses.fields(FitConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown fit option(s): {', '.join(unknown)}")
    return FitConfig(**overrides)


def build_model(session: Session, cfg: FitConfig) -> EIRNN:
    """The :class:`EIRNN` of ``cfg`` for ``session`` (:func:`build_network`)."""
    return build_network(session.is_excitatory, session.inputs.shape[-1], session.bin_size_ms,
                         cfg)


def build_network(is_excitatory, n_inputs: int, bin_size_ms: float, cfg: FitConfig) -> EIRNN:
    """The :class:`EIRNN` of ``cfg``: the recorded units typed by ``is_excitatory``,
    ``n_hidden`` hidden units (a quarter inhibitory), ``dt`` one bin, both time constants at
    ``tau_*_init`` or ``dt / alpha_init``; time constants frozen if asked; the inputs through a
    :class:`RaisedCosineEncoder` (statistics unset) with ``input_basis``."""
    n_hidden_inh = cfg.n_hidden // 4
    encoder = RaisedCosineEncoder(n_inputs, bin_size_ms) if cfg.input_basis else None
    model = EIRNN(is_excitatory, n_inputs,
                  n_hidden_exc=cfg.n_hidden - n_hidden_inh, n_hidden_inh=n_hidden_inh,
                  dt=bin_size_ms, learnable_tau=cfg.learnable_tau,
                  tau_mode=cfg.tau_mode, learnable_alpha=cfg.learnable_alpha,
                  alpha_init=cfg.alpha_init, low_rank=cfg.low_rank, bypass_dale=cfg.bypass_dale,
                  noise_scale=cfg.noise_scale, tau_min=cfg.tau_min,
                  spectral_radius=cfg.spectral_radius, learnable_x0=cfg.learnable_x0,
                  tau_e=cfg.tau_e_init or bin_size_ms / cfg.alpha_init,
                  tau_i=cfg.tau_i_init or bin_size_ms / cfg.alpha_init, rate_gain=cfg.rate_gain,
                  encoder=encoder, seed=cfg.seed)
    if cfg.freeze_tau:
        model.freeze_time_constants()
    return model


def load_model(session: Session, cfg: FitConfig | dict, path) -> EIRNN:
    """The model :func:`build_model` makes for ``cfg``, with the weights a run saved at
    ``path`` (``torch.save(model.state_dict(), path)``)."""
    cfg = make_config(**cfg) if isinstance(cfg, dict) else cfg
    model = build_model(session, cfg)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model


def neuron_loss(cfg: FitConfig, rates, batch, bin_size_ms):
    """``L_neuron`` of ``cfg.loss_type``: the PSTH loss, the Poisson NLL, or
    ``(1 - w) L_neuron + w L_poisson`` with ``w = cfg.hybrid_weight``."""
    args = (rates, batch["rates"], batch["mask"], batch["condition"])
    if cfg.loss_type == "correlation":
        return fl.compute_L_neuron(*args)
    if cfg.loss_type == "poisson":
        return fl.compute_L_poisson(rates, batch["rates"], batch["mask"], bin_size_ms)
    return fl.compute_L_neuron_hybrid(*args, poisson_weight=cfg.hybrid_weight,
                                      bin_size_ms=bin_size_ms)


def prepare(model: EIRNN, session: Session, cfg: FitConfig, fitted=None) -> EIRNN:
    """Set what a fit takes from its training trials before the first step: the encoder's
    statistics, and with ``rate_gain='neuron'`` each recorded unit's rate so that it starts
    at its mean training rate ``m`` (baseline ``0.1 m``, scale ``0.9 m / ln 2``, as
    ``softplus(0) = ln 2``; hidden units at the recorded units' mean), with the recurrent
    weights rescaled so that the loop gain stays ``cfg.spectral_radius`` (per-neuron scales of
    up to 90 spikes/s would otherwise raise it from 0.9 to 2.4 on the shipped session: an
    unstable start).

    With ``init_from_glm`` the recorded units' input weights start where the Poisson GLM of
    ``fitted`` (:func:`hdlib.baselines.fit_baselines`, fitted here if not given) ends, matched
    to first order around each neuron's mean rate ``m``: the GLM's rate is
    ``m (1 + (eta - etabar))`` near it and the unit's ``m + (s / 2) x`` near ``x = 0``, so
    ``W_in = (2 m / s) W_glm = (2 ln 2 / 0.9) W_glm`` and a zero bias (the features are
    centred on the training rows, so ``etabar`` is the GLM's intercept)."""
    train = session.trials(session.train_idx)
    if model.encoder is not None:
        model.encoder.fit_statistics(train["inputs"], train["mask"])
    if cfg.rate_gain == "neuron":
        mean = metrics.mean_rates(train["rates"], train["mask"]).float().clamp(min=0.5)
        mean = torch.cat([mean, mean.mean().expand(model.n_total - session.n_neurons)])
        model.set_rates(0.9 * mean / math.log(2), 0.1 * mean)
        model.set_loop_gain(cfg.spectral_radius)
    if cfg.init_from_glm:
        from ..baselines import fit_baselines

        fitted = fitted or fit_baselines(session)
        with torch.no_grad():
            n = session.n_neurons
            model.W_in[:n] = (2 * math.log(2) / 0.9) * fitted.glm_weights.T.float()
            model.bias[:n] = 0.0
    return model


class BestState:
    """Trainer callback: after each validation check, keep the model state with the highest
    ``metric`` (a copy in memory, and written to ``path`` atomically if given)."""

    def __init__(self, model, metric: str, path=None, save=None):
        self.model, self.metric, self.path, self.save = model, metric, path, save
        self.best, self.state, self.step = -math.inf, None, 0

    def on_evaluate(self, trainer) -> None:
        value = trainer.evaluations[self.metric][-1]
        if value > self.best:
            self.best, self.step = value, trainer.step
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.path is not None:
                self.save(self.model, self.path)


def fit(session: Session, cfg: FitConfig | dict, model: EIRNN | None = None,
        progress: bool = True, time_budget: float | None = None, monitor=None,
        best_path=None, save_best=None, fitted=None):
    """Train on ``session.train_idx`` (all of it each step, or ``batch_size`` trials drawn by
    the step's generator) with :class:`hdlib.train.Trainer`; returns ``(model, history)``.

    ``model`` is built (:func:`build_model`) and prepared (:func:`prepare`, with the baselines
    ``fitted`` if given) unless given.
    Step ``t`` draws the network's noise from a generator seeded by ``(cfg.seed, t)``; the
    balancing weight is carried from the step that computed it to the next
    ``balance_every - 1`` steps. Every ``eval_every`` steps the model (noise off) is scored on
    ``session.val_idx`` (validation bits per spike, ``val_bits_per_spike``, plus the floats of
    ``monitor()`` if given); the best state is kept (and written by ``save_best(model,
    best_path)`` when it improves) and loaded back at the end (unless ``cfg.keep_best`` is
    off: then the last state is returned). ``time_budget`` (seconds) stops
    the fit early; Ctrl-C stops it too and keeps the best state; a non-finite loss or gradient
    rolls back and halves the learning rate up to ``cfg.max_rollbacks`` times, then ends the
    fit (``history['stop_reason']`` says which).

    History: per step the losses, the balancing weight, the learning rate, the E/I time
    constants, the seconds since the start; ``monitor`` (the validation checks, one list per
    metric with the ``step``), ``rollbacks``, ``best_step``, ``best_val_bits_per_spike``,
    ``final_val_bits_per_spike`` (the last check), ``stop_reason``."""
    cfg = make_config(**cfg) if isinstance(cfg, dict) else cfg
    if model is None:
        model = prepare(build_model(session, cfg), session, cfg, fitted)
    timing = {id(p) for p in model.time_constant_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in timing]}]
    if any(id(p) in timing for p in trainable):
        groups.append({"params": [p for p in trainable if id(p) in timing],
                       "lr": cfg.learning_rate * cfg.time_constant_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=cfg.learning_rate)
    scheduler = None
    if cfg.scheduler == "cosine":
        scheduler = cosine_schedule(optimizer, cfg.steps, eta_min=0.01 * cfg.learning_rate,
                                    warmup_steps=cfg.warmup_steps)
    elif cfg.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=cfg.plateau_patience, min_lr=0.02 * cfg.learning_rate)
    train_idx = session.train_idx
    full = session.trials(train_idx)
    val = session.trials(session.val_idx)
    mean_rate = metrics.mean_rates(full["rates"], full["mask"])
    dt = session.bin_size_ms / 1000
    batch_size = cfg.batch_size if 0 < cfg.batch_size < len(train_idx) else 0
    start = time.perf_counter()

    def step(ctx) -> Step:
        batch = full
        if batch_size:
            batch = session.trials(train_idx[torch.randperm(len(train_idx),
                                                            generator=ctx.generator)[:batch_size]])
        rates = model(batch["inputs"], noise=True,
                      generator=ctx.device_generator)[..., :session.n_neurons]
        L_neuron = neuron_loss(cfg, rates, batch, session.bin_size_ms)
        if cfg.pooled_weight > 0:
            L_neuron = L_neuron + cfg.pooled_weight * fl.compute_L_pooled(rates, batch["rates"])
        loss = L_neuron + fl.compute_L_reg(model, cfg.lambda_reg)
        weight, L_trial = ctx.carry or 0.0, torch.tensor(math.nan)
        if cfg.ltrial_scale > 0:  # off by default: it would cost half of every step
            L_trial = fl.compute_L_trial(rates, batch["rates"], batch["mask"],
                                         smooth_ms=cfg.smooth_ms,
                                         bin_size_ms=session.bin_size_ms,
                                         distance=cfg.ltrial_distance,
                                         epsilon=cfg.sinkhorn_epsilon)
            if ctx.step % cfg.balance_every == 0:
                weight = fl.balanced_weight(L_neuron, L_trial, trainable, cfg.ltrial_scale)
            loss = loss + weight * L_trial
        if cfg.activity_reg > 0:
            loss = loss + fl.compute_activity_regularization(rates, batch["mask"],
                                                             lambda_mean=cfg.activity_reg)
        taus = model.time_constants()
        return Step(loss, {"L_neuron": L_neuron.item(), "L_trial": L_trial.item(),
                           "weight": weight, "tau_e_ms": taus["tau_e_ms"],
                           "tau_i_ms": taus["tau_i_ms"],
                           "seconds": time.perf_counter() - start}, carry=weight)

    def validation() -> dict:
        rates = model(val["inputs"])[..., :session.n_neurons]
        out = {"val_bits_per_spike": metrics.bits_per_spike(rates, val["rates"], val["mask"],
                                                            mean_rate, dt)["pooled"]}
        return {**out, **(monitor() if monitor is not None else {})}

    best = BestState(model, "val_bits_per_spike", best_path, save_best)
    stoppers = [] if time_budget is None else [TimeBudget(time_budget)]
    engine = Trainer(model, optimizer, step, scheduler=scheduler, grad_clip=1.0, seed=cfg.seed,
                     progress=progress, desc="fit", stoppers=stoppers, evaluate=validation,
                     eval_every=cfg.eval_every, callbacks=[best],
                     max_rollbacks=cfg.max_rollbacks)
    try:
        engine.run_evaluation()  # the initial state is a candidate too
        engine.run(cfg.steps)
        stop_reason = engine.stop_reason
        if engine.step % cfg.eval_every:
            engine.max_rollbacks = len(engine.rollbacks)  # no rollback now: just score it
            engine.run_evaluation()  # the final state is a candidate too
    except KeyboardInterrupt:
        stop_reason = f"interrupted at step {engine.step}"
    except FloatingPointError as error:
        stop_reason = f"diverged: {error}"
    if best.state is None:
        raise FloatingPointError(f"the fit diverged before its first validation check "
                                 f"({stop_reason})")
    final = engine.evaluations["val_bits_per_spike"][-1]
    if cfg.keep_best:
        model.load_state_dict(best.state)
    history = {key: engine.history.get(key, []) for key in (
        "loss", "L_neuron", "L_trial", "weight", "tau_e_ms", "tau_i_ms", "seconds", "lr")}
    history.update(monitor=engine.evaluations, rollbacks=engine.rollbacks,
                   best_step=best.step, best_val_bits_per_spike=best.best,
                   final_val_bits_per_spike=final, stop_reason=stop_reason)
    return model, history


def resampling_reference(trials: dict, train: dict, bin_size_ms: float, seed: int = 0) -> dict:
    """What a model's single-trial scores must beat: the same scores with the model replaced
    by recorded training trials of the same conditions (:func:`hdlib.metrics.resampled_trials`),
    on the bins recorded in both the held-out and the resampled trial."""
    picks = metrics.resampled_trials(trials["condition"], train["condition"], seed=seed)
    both = trials["mask"] & train["mask"][picks]
    return metrics.single_trial_scores(train["rates"][picks], trials["rates"] * both[..., None],
                                       both, trials["condition"], bin_size_ms)


@torch.no_grad()
def evaluate(model: EIRNN, session: Session, index=None, seed: int = 0) -> dict:
    """Held-out scores of ``model`` on the trials ``index`` (default: the test split, else the
    validation split), by :func:`hdlib.metrics.score` (bits per spike over each neuron's mean
    training rate, raw and smoothed per-condition PSTH ``r`` and ``R^2``, the published pooled
    metric, selectivity matches per factor) with the model's noise **off**, and the
    single-trial scores (``L_trial``, ``single_trial_r``) with its noise **on**, drawn from a
    generator seeded by ``seed``."""
    index = index if index is not None else (
        session.test_idx if len(session.test_idx) else session.val_idx)
    was_training = model.training
    model.eval()
    trials, train = session.trials(index), session.trials(session.train_idx)
    mean_rate = metrics.mean_rates(train["rates"], train["mask"])
    rates = model(trials["inputs"])[..., :session.n_neurons]
    labels = {name: values[index.numpy()] for name, values in session.labels.items()}
    out = metrics.score(rates, trials["rates"], trials["mask"], trials["condition"],
                        mean_rate=mean_rate, bin_size_ms=session.bin_size_ms, labels=labels,
                        epoch=target_epoch(session, trials))
    noisy = model(trials["inputs"], noise=True,
                  generator=torch.Generator().manual_seed(seed))[..., :session.n_neurons]
    out.update(metrics.single_trial_scores(noisy, trials["rates"], trials["mask"],
                                           trials["condition"], session.bin_size_ms))
    model.train(was_training)
    return out


#: The selectivity epoch: this long from target onset (a fixed window, so that a predictor
#: locked to trial time gains nothing from the targets' different timings).
TARGET_WINDOW_MS = 400.0


def target_epoch(session: Session, trials: dict) -> torch.Tensor:
    """Recorded bins ``(K, T)`` within :data:`TARGET_WINDOW_MS` of target onset (the first bin
    of any ``input_is_*`` channel); empty for a trial without a target."""
    channels = [i for i, name in enumerate(session.input_names) if name.startswith("input_is_")]
    shown = trials["inputs"][..., channels].sum(-1) > 0
    onset = shown.float().argmax(1, keepdim=True)
    t = torch.arange(shown.shape[1])[None]
    width = max(1, round(TARGET_WINDOW_MS / session.bin_size_ms))
    return (t >= onset) & (t < onset + width) & shown.any(1, keepdim=True) & trials["mask"]


# ---------------------------------------------------------------------------- fitted models on disk
CHECKPOINT_FORMAT = "hdlib-sc-fit-2"
#: The split of ``python -m hdlib fit``: seeded once, whatever the training seed, so that fits
#: with different seeds are scored on the same trials. Validation trials stop and choose; test
#: trials only report.
SPLIT_SEED = 0
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
#: Fewer trials than this cannot be split three ways with a PSTH left in each part.
MIN_TRIALS = 20


def save_fitted(model: EIRNN, cfg: FitConfig, path, **info) -> Path:
    """Write a fitted model atomically: its weights (with the encoder's statistics), the
    configuration that builds it, the unit types, the task input count and the bin size
    (everything :func:`load_fitted` needs; plain tensors, numbers and strings, so that
    ``torch.load(path, weights_only=True)`` reads it)."""
    from .. import io

    return io.save_torch({"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(cfg),
                          "is_excitatory": model.excitatory[:model.n_recorded].clone(),
                          "n_inputs": int(model.n_task_inputs), "bin_size_ms": float(model.dt),
                          "state_dict": model.state_dict(), "info": info}, path)


def load_fitted(path) -> EIRNN:
    """A model written by :func:`save_fitted` (or ``python -m hdlib fit``), in ``eval()``
    mode (noise off unless asked for), ready for analysis: ``model.W_rec``,
    ``model.time_constants()``, ``model(inputs)`` for its rates."""
    from .. import io

    state = io.load_torch(path, CHECKPOINT_FORMAT)
    model = build_network(state["is_excitatory"], state["n_inputs"], state["bin_size_ms"],
                          make_config(**state["config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval()


def read_config_file(path) -> dict:
    """:class:`FitConfig` options from a YAML mapping; anything else is a ``ValueError`` naming
    the file (and an unknown option names the option)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        options = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path} is not YAML: {error}") from None
    if not isinstance(options, dict):
        raise ValueError(f"config file {path} must hold a mapping of fit options")
    make_config(**options)
    return options


def check_session(session: Session, name: str) -> None:
    """A one-line ``ValueError`` naming ``name`` if the session cannot be fitted and scored:
    fewer than :data:`MIN_TRIALS` trials, a single condition, or a split part left empty."""
    n = len(session.condition)
    if n < MIN_TRIALS:
        raise ValueError(f"{name}: {n} trials; a fit needs at least {MIN_TRIALS} (training, "
                         f"validation and test trials, each with a PSTH)")
    if len(torch.unique(session.condition)) < 2:
        raise ValueError(f"{name}: every trial has the same condition (identity x location); "
                         f"the per-condition scores need at least two")
    for part in ("train_idx", "val_idx", "test_idx"):
        if len(getattr(session, part)) < 2:
            raise ValueError(f"{name}: too few trials for a {part[:-4]} split")


# ---------------------------------------------------------------------------- scores and baselines
def score_baselines(session: Session, fitted, index) -> dict:
    """Held-out scores (:func:`hdlib.metrics.score`) of every baseline of ``fitted``
    (:func:`hdlib.baselines.fit_baselines`) and of the trial-end predictor on the trials
    ``index``, with the single-trial resampling reference under ``"resampled trials"``."""
    trials, train = session.trials(index), session.trials(session.train_idx)
    labels = {name: values[index.numpy()] for name, values in session.labels.items()}
    common = dict(mean_rate=fitted.mean_rate, bin_size_ms=session.bin_size_ms, labels=labels,
                  epoch=target_epoch(session, trials))
    out = {}
    for name, rates in fitted.predict(trials["inputs"], trials["condition"]).items():
        out[name] = metrics.score(rates, trials["rates"], trials["mask"], trials["condition"],
                                  **common)
    end = metrics.trial_end_predictor(fitted.mean_rate, trials["mask"])
    out["trial end"] = {"pooled_metric": fl.psth_corr_pooled(end.float(),
                                                             trials["rates"].float())}
    out["resampled trials"] = resampling_reference(trials, train, session.bin_size_ms)
    return out


def ceilings(session: Session, index) -> dict:
    """What a noise-free perfect predictor reaches on the trials ``index``
    (:func:`hdlib.metrics.noise_ceiling`, raw and smoothed) and the split-half reliability of
    the recorded selectivity per factor (:func:`hdlib.metrics.selectivity_reliability`)."""
    trials = session.trials(index)
    args = (trials["rates"], trials["mask"], trials["condition"], session.bin_size_ms)
    raw = metrics.noise_ceiling(*args)
    smooth = metrics.noise_ceiling(*args, smooth_ms=metrics.SMOOTH_MS)
    labels = {name: values[index.numpy()] for name, values in session.labels.items()}
    reliability = metrics.selectivity_reliability(trials["rates"],
                                                  target_epoch(session, trials), labels)
    return {"psth_r": raw["r"], "psth_r2": raw["r2"], "psth_r_smooth": smooth["r"],
            "psth_r2_smooth": smooth["r2"],
            **{f"selectivity_{name}": value for name, value in reliability.items()}}


#: The honest scores (higher is better), in table order; ``L_trial`` (lower is better) follows.
HONEST = ("bits_per_spike", "psth_r_smooth", "psth_r2_smooth", "psth_r", "single_trial_r")


def best_baseline(baselines: dict, metric: str) -> str:
    """The name of the baseline with the highest ``metric`` (the model-free and GLM rows)."""
    rows = {name: row[metric] for name, row in baselines.items()
            if metric in row and name not in ("trial end", "resampled trials")
            and math.isfinite(row[metric])}
    return max(rows, key=rows.get)


def score_table(report: dict):
    """One table (``pandas.DataFrame``): the baselines, the resampling and trial-end references,
    the fit if present, and the ceiling; columns are the scores."""
    import pandas as pd

    rows = dict(report["baselines"])
    if "fit" in report:
        rows["E-I RNN fit"] = report["fit"]
    rows["ceiling"] = report["ceiling"]
    table = pd.DataFrame(rows).T
    first = [c for c in ("bits_per_spike", "psth_r_smooth", "psth_r2_smooth", "psth_r",
                         "psth_r2", "single_trial_r", "L_trial", "pooled_metric") if c in table]
    return table[first + sorted(c for c in table if c not in first)]


# ---------------------------------------------------------------------------- figure
def psth_figure(model: EIRNN, session: Session, fitted, index=None, smooth_ms=metrics.SMOOTH_MS):
    """Recorded and predicted PSTHs (per condition, smoothed) on held-out trials for the best
    and the median neuron by the fit's smoothed PSTH ``r``, in the condition with most trials
    and one other, beside the best baseline by that score (the Poisson GLM unless another wins).
    Returns the figure."""
    import matplotlib.pyplot as plt

    index = index if index is not None else (
        session.test_idx if len(session.test_idx) else session.val_idx)
    trials = session.trials(index)
    with torch.no_grad():
        fitted_rates = model.eval()(trials["inputs"])[..., :session.n_neurons]
    predictions = fitted.predict(trials["inputs"], trials["condition"])
    scores = {name: metrics.psth_scores(rates, trials["rates"], trials["mask"],
                                        trials["condition"], session.bin_size_ms, smooth_ms)
              for name, rates in [("fit", fitted_rates), *predictions.items()]}
    baseline = max((n for n in predictions if n != "mean rate"),
                   key=lambda n: scores[n]["r"])
    per_neuron = scores["fit"]["r_per_neuron"].nan_to_num(-2.0)
    order = torch.argsort(per_neuron, descending=True).tolist()
    units = {"best": order[0], "median": order[len(order) // 2]}
    labels, counts = torch.unique(trials["condition"], return_counts=True)
    conditions = labels[torch.argsort(counts, descending=True)][:2].tolist()
    curves = {}
    for name, rates in (("recorded", trials["rates"]), ("E-I RNN fit", fitted_rates),
                        (baseline, predictions[baseline])):
        curves[name] = metrics.condition_psths(rates, trials["mask"], trials["condition"],
                                               torch.tensor(conditions), smooth_ms,
                                               session.bin_size_ms)
    time_s = session.time_ms / 1000
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.5), sharex=True)
    styles = {"recorded": dict(color="k", lw=2), "E-I RNN fit": dict(color="C3"),
              baseline: dict(color="C0", ls="--")}
    for row, (label, unit) in enumerate(units.items()):
        for col, condition in enumerate(conditions):
            ax = axes[row, col]
            for name, (psth, valid) in curves.items():
                shown = valid[col].numpy()
                ax.plot(time_s[shown], psth[col, shown, unit].numpy(), label=name,
                        **styles[name])
            ax.set_title(f"{label} neuron ({unit}, fit r = {per_neuron[unit]:.2f}), "
                         f"condition {condition}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("time in trial (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("spikes/s")
    fig.tight_layout()
    return fig


def _save_figure(fig, path) -> Path:
    import matplotlib.pyplot as plt

    from .. import io

    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------- the command
def fit_file(session_path, out_dir, *, steps: int | None = None, minutes: float | None = None,
             seed: int = 0, config_file=None, progress: bool = True, mapping=None,
             baselines_only: bool = False) -> dict:
    """What ``python -m hdlib fit`` does. Load and check the session (either MATLAB format or
    NWB through ``mapping``; any trial, bin and unit counts; :func:`check_session`), split it
    into training, validation and test trials stratified by condition with the fixed
    :data:`SPLIT_SEED`, fit the baselines (:func:`hdlib.baselines.fit_baselines`: training
    trials, choices on validation trials) and, unless ``baselines_only``, the network with the
    options of ``config_file`` (YAML) over :class:`FitConfig`'s defaults for ``steps`` steps
    or until ``minutes`` have passed, keeping its best validation state in ``model.pt`` as it
    goes. Everything is scored on the test trials only. Writes into ``out_dir``:
    ``metrics.json`` (``fit``, ``baselines`` and ``ceiling`` scores, ``best_baseline`` per
    score, the trial indices of each split, sizes, timings), ``model.pt`` (:func:`save_fitted`)
    and ``psth.png`` (:func:`psth_figure`). Every input is checked before anything is written;
    a bad one is a ``ValueError`` (or ``FileNotFoundError``) naming it."""
    from .. import baselines as bl
    from .. import io
    from ..datasets.sessions import load_session

    if steps is not None and minutes is not None:
        raise ValueError("give --steps or --minutes, not both")
    options = read_config_file(config_file) if config_file else {}
    if steps is not None:
        options["steps"] = validate.positive_int("steps", steps)
    options["seed"] = validate.non_negative_int("seed", seed)
    budget = None
    if minutes is not None:
        budget = 60 * validate.positive_float("minutes", minutes)
        options["steps"] = 10 ** 7  # the clock decides
    cfg = make_config(**options)
    session = load_session(session_path, val_fraction=VAL_FRACTION, seed=SPLIT_SEED,
                           test_fraction=TEST_FRACTION, mapping=mapping)
    check_session(session, Path(session_path).name)
    out_dir = Path(out_dir)
    n_exc = int(session.is_excitatory.sum())
    report = {"session": str(session.info.get("session_name", "")), "seed": seed,
              "n_trials": int(session.rates.shape[0]), "n_bins": int(session.rates.shape[1]),
              "n_neurons": session.n_neurons, "n_exc": n_exc, "n_inh": session.n_neurons - n_exc,
              "n_train": len(session.train_idx), "n_val": len(session.val_idx),
              "n_test": len(session.test_idx), "train_trials": session.train_idx.tolist(),
              "val_trials": session.val_idx.tolist(), "test_trials": session.test_idx.tolist(),
              "threads": torch.get_num_threads()}
    start = time.perf_counter()
    fitted = bl.fit_baselines(session)
    report["baselines"] = score_baselines(session, fitted, session.test_idx)
    report["ceiling"] = ceilings(session, session.test_idx)
    report["baseline_seconds"] = time.perf_counter() - start
    report["best_baseline"] = {m: best_baseline(report["baselines"], m) for m in HONEST[:4]}
    if baselines_only:
        io.write_json(report, out_dir / "metrics.json")
        return report

    def save_best(model, path):
        save_fitted(model, cfg, path, session=report["session"], seed=seed)

    start, cpu_start = time.perf_counter(), time.process_time()
    model, history = fit(session, cfg, progress=progress, time_budget=budget,
                         best_path=out_dir / "model.pt", save_best=save_best, fitted=fitted)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    report["fit"] = evaluate(model, session, session.test_idx, seed=seed)
    report.update(seconds=seconds, cpu_seconds=cpu_seconds, steps=len(history["loss"]),
                  seconds_per_step=seconds / max(len(history["loss"]), 1),
                  best_step=history["best_step"], stop_reason=history["stop_reason"],
                  rollbacks=history["rollbacks"], config=dataclasses.asdict(cfg),
                  validation=history["monitor"], loss_curve=history["loss"])
    save_best(model, out_dir / "model.pt")
    _save_figure(psth_figure(model, session, fitted), out_dir / "psth.png")
    io.write_json(report, out_dir / "metrics.json")
    return report
