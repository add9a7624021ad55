"""Fitting an :class:`~hdlib.models.eirnn.EIRNN` to a recorded session: one configuration, one run.

A :class:`FitConfig` holds every knob of the document's experiments; :func:`fit` trains with
Adam on the whole training split each step (exact PSTHs), minimising

    L = L_neuron + c * L_trial + L_reg [+ activity regularisation]

(or the Poisson / hybrid variants of ``L_neuron``), where ``c`` balances the gradient norms
(:func:`hdlib.losses.balanced_weight`, recomputed every ``balance_every`` steps), and the
learning rate is constant or follows :func:`hdlib.train.cosine_schedule` (with warm-up).
:func:`evaluate` scores a model on the validation split.
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch

from .. import losses as fl
from .. import validate
from ..datasets.sessions import Session
from ..models.eirnn import EIRNN
from ..train import Step, Trainer, cosine_schedule


@dataclasses.dataclass
class FitConfig:
    """Knobs of one fit (names follow the document)."""

    steps: int = 150
    learning_rate: float = 0.01
    loss_type: str = "correlation"  # L_neuron: 'correlation', 'poisson' or 'hybrid'
    hybrid_weight: float = 0.3
    ltrial_scale: float = 0.5
    ltrial_distance: str = "euclidean"  # or 'poisson'
    sinkhorn_epsilon: float = 0.1
    smooth_ms: float = 100.0
    balance_every: int = 10
    lambda_reg: float = 1e-4
    scheduler: str = "constant"  # or 'cosine'
    warmup_steps: int = 0
    activity_reg: float = 0.0  # lambda_mean of the activity regulariser (0 = off)
    learnable_tau: str = "none"
    tau_mode: str = "clamp"
    freeze_tau: bool = False
    learnable_alpha: str = "none"
    alpha_init: float = 0.5
    tau_min: float | None = None  # lower bound of a learnable tau (default: one bin)
    tau_e_init: float | None = None  # initial tau (ms); default dt / alpha_init
    tau_i_init: float | None = None
    low_rank: int | None = None
    n_hidden: int = 0
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
        self.scheduler = validate.choice("scheduler", self.scheduler, ("constant", "cosine"))
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
    """The :class:`EIRNN` of ``cfg`` for ``session``: its recorded units typed as in the
    session, ``n_hidden`` hidden units (a quarter inhibitory), ``dt`` one bin, both time
    constants at ``tau_*_init`` or ``dt / alpha_init``; time constants frozen if asked."""
    n_hidden_inh = cfg.n_hidden // 4
    model = EIRNN(session.is_excitatory, session.inputs.shape[-1],
                  n_hidden_exc=cfg.n_hidden - n_hidden_inh, n_hidden_inh=n_hidden_inh,
                  dt=session.bin_size_ms, learnable_tau=cfg.learnable_tau,
                  tau_mode=cfg.tau_mode, learnable_alpha=cfg.learnable_alpha,
                  alpha_init=cfg.alpha_init, low_rank=cfg.low_rank, bypass_dale=cfg.bypass_dale,
                  noise_scale=cfg.noise_scale, tau_min=cfg.tau_min,
                  tau_e=cfg.tau_e_init or session.bin_size_ms / cfg.alpha_init,
                  tau_i=cfg.tau_i_init or session.bin_size_ms / cfg.alpha_init, seed=cfg.seed)
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


def fit(session: Session, cfg: FitConfig | dict, model: EIRNN | None = None,
        progress: bool = True):
    """Train on ``session.train_idx`` with :class:`hdlib.train.Trainer`; returns
    ``(model, history)``. History: per step the losses, the balancing weight, the learning rate,
    the E/I time constants and the seconds since the start. Step ``t`` draws the network's
    noise from a generator seeded by ``(cfg.seed, t)``; the balancing weight is carried from
    the step that computed it to the next ``balance_every - 1`` steps."""
    cfg = make_config(**cfg) if isinstance(cfg, dict) else cfg
    model = model or build_model(session, cfg)
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
    batch = session.trials(session.train_idx)
    start = time.perf_counter()

    def step(ctx) -> Step:
        rates = model(batch["inputs"], generator=ctx.device_generator)[..., :session.n_neurons]
        L_neuron = neuron_loss(cfg, rates, batch, session.bin_size_ms)
        L_trial = fl.compute_L_trial(rates, batch["rates"], batch["mask"],
                                     smooth_ms=cfg.smooth_ms, bin_size_ms=session.bin_size_ms,
                                     distance=cfg.ltrial_distance, epsilon=cfg.sinkhorn_epsilon)
        weight = ctx.carry or 0.0
        if cfg.ltrial_scale > 0 and ctx.step % cfg.balance_every == 0:
            weight = fl.balanced_weight(L_neuron, L_trial, trainable, cfg.ltrial_scale)
        loss = L_neuron + weight * L_trial + fl.compute_L_reg(model, cfg.lambda_reg)
        if cfg.activity_reg > 0:
            loss = loss + fl.compute_activity_regularization(rates, batch["mask"],
                                                             lambda_mean=cfg.activity_reg)
        taus = model.time_constants()
        return Step(loss, {"L_neuron": L_neuron.item(), "L_trial": L_trial.item(),
                           "weight": weight, "tau_e_ms": taus["tau_e_ms"],
                           "tau_i_ms": taus["tau_i_ms"],
                           "seconds": time.perf_counter() - start}, carry=weight)

    engine = Trainer(model, optimizer, step, scheduler=scheduler, grad_clip=1.0, seed=cfg.seed,
                     progress=progress, desc="fit")
    engine.run(cfg.steps)
    history = {key: engine.history[key] for key in ("loss", "L_neuron", "L_trial", "weight",
                                                   "tau_e_ms", "tau_i_ms", "seconds")}
    history["lr"] = engine.history["lr"]
    return model, history


@torch.no_grad()
def evaluate(model: EIRNN, session: Session, index=None, seed: int = 0) -> dict:
    """Validation scores: PSTH correlation and its split-half ceiling, single-trial correlation
    after one-to-one matching, fraction of units with mean rate in 1-50 spikes/s, and two
    held-out losses: the trial-matching cost ``L_trial`` and the Poisson negative
    log-likelihood per bin and neuron."""
    index = session.val_idx if index is None else index
    batch = session.trials(index)
    generator = torch.Generator().manual_seed(seed)
    rates = model(batch["inputs"], generator=generator)[..., :session.n_neurons]
    args = (rates, batch["rates"], batch["mask"], batch["condition"])
    ceiling = fl.split_half_ceiling(batch["rates"], batch["mask"], batch["condition"])
    psth_corr = fl.psth_correlation(*args)
    return {"psth_corr": psth_corr, "ceiling": ceiling["ceiling"],
            "split_half": ceiling["raw"], "fraction_of_ceiling": psth_corr / ceiling["ceiling"],
            "single_trial_corr": fl.single_trial_correlation(
                *args, bin_size_ms=session.bin_size_ms),
            "rates_in_range": fl.rates_in_range(rates, batch["mask"]),
            "L_trial": fl.compute_L_trial(rates, batch["rates"], batch["mask"],
                                          bin_size_ms=session.bin_size_ms).item(),
            "poisson_nll": fl.compute_L_poisson(rates, batch["rates"], batch["mask"],
                                                session.bin_size_ms).item(),
            "mean_rate": (rates * batch["mask"][..., None]).sum().item()
            / (batch["mask"].sum().item() * rates.shape[-1])}
