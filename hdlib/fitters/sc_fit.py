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
from pathlib import Path

import torch

from .. import losses as fl
from .. import validate
from ..datasets.sessions import Session
from ..models.eirnn import EIRNN
from ..train import Step, TimeBudget, Trainer, cosine_schedule


@dataclasses.dataclass
class FitConfig:
    """Knobs of one fit (names follow the document). The defaults are those of
    ``python -m hdlib fit``, chosen on the shipped session by validation on an inner split of
    its training trials (chapter 04): minibatches of 64 trials, the pooled-PSTH term on, 600
    steps (about a minute of one core)."""

    steps: int = 600
    learning_rate: float = 0.01
    batch_size: int = 64  # trials drawn per step from the training split (0: all of them)
    loss_type: str = "correlation"  # L_neuron: 'correlation', 'poisson' or 'hybrid'
    pooled_weight: float = 1.0  # weight of L_pooled (1 - the published metric) added to L_neuron
    hybrid_weight: float = 0.3
    ltrial_scale: float = 0.5
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
    learnable_alpha: str = "none"
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
    ``tau_*_init`` or ``dt / alpha_init``; time constants frozen if asked."""
    n_hidden_inh = cfg.n_hidden // 4
    model = EIRNN(is_excitatory, n_inputs,
                  n_hidden_exc=cfg.n_hidden - n_hidden_inh, n_hidden_inh=n_hidden_inh,
                  dt=bin_size_ms, learnable_tau=cfg.learnable_tau,
                  tau_mode=cfg.tau_mode, learnable_alpha=cfg.learnable_alpha,
                  alpha_init=cfg.alpha_init, low_rank=cfg.low_rank, bypass_dale=cfg.bypass_dale,
                  noise_scale=cfg.noise_scale, tau_min=cfg.tau_min,
                  spectral_radius=cfg.spectral_radius, learnable_x0=cfg.learnable_x0,
                  tau_e=cfg.tau_e_init or bin_size_ms / cfg.alpha_init,
                  tau_i=cfg.tau_i_init or bin_size_ms / cfg.alpha_init, seed=cfg.seed)
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
        progress: bool = True, time_budget: float | None = None, monitor=None,
        monitor_every: int = 50):
    """Train on ``session.train_idx`` (all of it each step, or ``batch_size`` trials drawn by
    the step's generator) with :class:`hdlib.train.Trainer`; returns ``(model, history)``.
    History: per step the losses, the balancing weight, the learning rate, the E/I time
    constants and the seconds since the start. Step ``t`` draws the network's noise from a
    generator seeded by ``(cfg.seed, t)``; the balancing weight is carried from the step that
    computed it to the next ``balance_every - 1`` steps. ``time_budget`` (seconds)
    stops the fit early when it is used up (:class:`hdlib.train.TimeBudget`). ``monitor`` (a
    function of no arguments returning a dict of floats) is called every ``monitor_every``
    steps with the model in ``eval()`` mode; its values go to ``history['monitor']`` (one dict
    of lists, with the ``step``)."""
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
    elif cfg.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=cfg.plateau_patience, min_lr=0.02 * cfg.learning_rate)
    train_idx = session.train_idx
    full = session.trials(train_idx)
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

    stoppers = [] if time_budget is None else [TimeBudget(time_budget)]
    engine = Trainer(model, optimizer, step, scheduler=scheduler, grad_clip=1.0, seed=cfg.seed,
                     progress=progress, desc="fit", stoppers=stoppers, evaluate=monitor,
                     eval_every=monitor_every)
    engine.run(cfg.steps)
    history = {key: engine.history[key] for key in ("loss", "L_neuron", "L_trial", "weight",
                                                   "tau_e_ms", "tau_i_ms", "seconds")}
    history["lr"] = engine.history["lr"]
    history["monitor"] = engine.evaluations
    return model, history


@torch.no_grad()
def evaluate(model: EIRNN, session: Session, index=None, seed: int = 0) -> dict:
    """Scores on the trials ``index`` (default: the validation split).

    The model runs once on those trials **with its noise on**, drawn from a generator seeded by
    ``seed`` (the published metric was measured so, and the single-trial scores need
    trial-to-trial variability); every score below uses that run.

    * ``psth_corr``: the book's metric, per condition and unit over recorded bins
      (:func:`hdlib.losses.psth_correlation`), with its split-half ``ceiling`` and
      ``fraction_of_ceiling``;
    * ``psth_corr_pooled``: the published pipeline's metric (:func:`hdlib.losses
      .psth_corr_pooled`: conditions pooled, padded bins included), and its mean over the E
      units (``psth_corr_pooled_e``) and the I units (``psth_corr_pooled_i``);
    * ``single_trial_corr`` after one-to-one matching; ``rates_in_range``, the fraction of
      units with mean rate in 1-50 spikes/s; held-out ``L_trial`` and ``poisson_nll`` (per bin
      and unit); ``mean_rate``.
    """
    index = session.val_idx if index is None else index
    batch = session.trials(index)
    generator = torch.Generator().manual_seed(seed)
    rates = model(batch["inputs"], noise=True, generator=generator)[..., :session.n_neurons]
    args = (rates, batch["rates"], batch["mask"], batch["condition"])
    ceiling = fl.split_half_ceiling(batch["rates"], batch["mask"], batch["condition"])
    psth_corr = fl.psth_correlation(*args)
    pooled = fl.pooled_psth_correlations(rates, batch["rates"])
    exc = session.is_excitatory

    def mean_of(values):
        values = values[~values.isnan()]
        return values.mean().item() if len(values) else math.nan

    return {"psth_corr": psth_corr, "psth_corr_pooled": mean_of(pooled),
            "psth_corr_pooled_e": mean_of(pooled[exc]), "psth_corr_pooled_i": mean_of(pooled[~exc]),
            "ceiling": ceiling["ceiling"], "split_half": ceiling["raw"],
            "fraction_of_ceiling": psth_corr / ceiling["ceiling"],
            "single_trial_corr": fl.single_trial_correlation(
                *args, bin_size_ms=session.bin_size_ms),
            "rates_in_range": fl.rates_in_range(rates, batch["mask"]),
            "L_trial": fl.compute_L_trial(rates, batch["rates"], batch["mask"],
                                          bin_size_ms=session.bin_size_ms).item(),
            "poisson_nll": fl.compute_L_poisson(rates, batch["rates"], batch["mask"],
                                                session.bin_size_ms).item(),
            "mean_rate": (rates * batch["mask"][..., None]).sum().item()
            / (batch["mask"].sum().item() * rates.shape[-1])}


# ---------------------------------------------------------------------------- fitted models on disk
CHECKPOINT_FORMAT = "hdlib-sc-fit-1"
#: The validation split of ``python -m hdlib fit``: seeded once, whatever the training seed, so
#: that fits with different seeds are scored on the same trials.
SPLIT_SEED = 0
VAL_FRACTION = 0.2


def save_fitted(model: EIRNN, cfg: FitConfig, path, **info) -> Path:
    """Write a fitted model atomically: its weights, the configuration that builds it, the unit
    types, the input count and the bin size (everything :func:`load_fitted` needs; plain
    tensors, numbers and strings, so that ``torch.load(path, weights_only=True)`` reads it)."""
    from .. import io

    return io.save_torch({"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(cfg),
                          "is_excitatory": model.excitatory[:model.n_recorded].clone(),
                          "n_inputs": int(model.W_in.shape[1]), "bin_size_ms": float(model.dt),
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


def pooled_psth_figure(model: EIRNN, session: Session, seed: int = 0):
    """Model and data PSTHs (conditions pooled, as the published metric) on the validation
    trials, for the best, median and worst units by that metric (two each); the model runs
    with its noise on, drawn from a generator seeded by ``seed``. Returns the figure."""
    import matplotlib.pyplot as plt

    batch = session.trials(session.val_idx)
    with torch.no_grad():
        rates = model(batch["inputs"], noise=True, generator=torch.Generator().manual_seed(seed))
    rates = rates[..., :session.n_neurons]
    corr = fl.pooled_psth_correlations(rates, batch["rates"]).nan_to_num(-2.0)
    order = torch.argsort(corr, descending=True).tolist()
    middle = len(order) // 2
    picks = {"best": order[:2], "median": order[middle:middle + 2], "worst": order[-2:]}
    time_s = session.time_ms / 1000
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex=True)
    for col, (label, units) in enumerate(picks.items()):
        for row, unit in enumerate(units):
            ax = axes[row, col]
            ax.plot(time_s, batch["rates"][..., unit].mean(0), color="k", label="data")
            ax.plot(time_s, rates[..., unit].mean(0), color="C3", label="model")
            kind = "E" if session.is_excitatory[unit] else "I"
            ax.set_title(f"{label}: unit {unit} ({kind}), r = {corr[unit]:.2f}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("time in trial (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("spikes/s")
    fig.tight_layout()
    return fig


def plot_pooled_psths(model: EIRNN, session: Session, path, seed: int = 0) -> Path:
    """:func:`pooled_psth_figure` written to ``path`` as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import io

    fig = pooled_psth_figure(model, session, seed)
    with io.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def fit_file(session_path, out_dir, *, steps: int | None = None, minutes: float | None = None,
             seed: int = 0, config_file=None, progress: bool = True) -> dict:
    """What ``python -m hdlib fit`` does: load and check the session (either MATLAB format,
    any trial, bin and unit counts), split it into training and validation trials stratified by
    condition with the fixed :data:`SPLIT_SEED`, fit with the options of ``config_file`` (YAML)
    over :class:`FitConfig`'s defaults for ``steps`` steps (default ``FitConfig.steps``) or
    until ``minutes`` have passed, and write into ``out_dir``: ``metrics.json``
    (:func:`evaluate`'s scores on the validation split, the run's sizes, wall-clock and CPU
    seconds of the fit), ``model.pt``
    (:func:`save_fitted`) and ``psth.png`` (:func:`plot_pooled_psths`). Every input is checked
    before anything is written; a bad one is a ``ValueError`` (or ``FileNotFoundError``) naming
    it."""
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
    session = load_session(session_path, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    if len(torch.unique(session.condition[session.val_idx])) == 0 or len(session.val_idx) < 2:
        raise ValueError(f"{session_path}: too few trials for a validation split")
    out_dir = Path(out_dir)
    start, cpu_start = time.perf_counter(), time.process_time()
    model, history = fit(session, cfg, progress=progress, time_budget=budget)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.eval()
    scores = evaluate(model, session, seed=seed)
    n_exc = int(session.is_excitatory.sum())
    metrics = {**scores, "seconds": seconds, "cpu_seconds": cpu_seconds,
               "steps": len(history["loss"]),
               "seconds_per_step": seconds / len(history["loss"]),
               "n_trials": int(session.rates.shape[0]), "n_train": len(session.train_idx),
               "n_val": len(session.val_idx), "n_bins": int(session.rates.shape[1]),
               "n_neurons": session.n_neurons, "n_exc": n_exc,
               "n_inh": session.n_neurons - n_exc, "seed": seed,
               "session": str(session.info.get("session_name", "")),
               "threads": torch.get_num_threads(), "config": dataclasses.asdict(cfg),
               "val_trials": session.val_idx.tolist(),
               "loss_curve": history["loss"]}
    save_fitted(model, cfg, out_dir / "model.pt", session=metrics["session"], seed=seed)
    plot_pooled_psths(model, session, out_dir / "psth.png", seed=seed)
    io.write_json(metrics, out_dir / "metrics.json")
    return metrics
