"""A rate RNN that obeys Dale's law, for fitting recorded populations.

Dynamics over bins of ``dt`` ms, for all trials at once::

    x[t] = (1 - alpha) * x[t-1] + alpha * (W_rec r[t-1] + W_in u[t] + b) + sqrt(alpha) * s * xi[t]
    r[t] = softplus(x[t]) * rate_scale + rate_baseline

with ``alpha = dt / tau`` per unit and ``xi`` standard normal noise of scale ``s``.
``rate_scale`` and ``rate_baseline`` are shared scalars, or one per unit
(``rate_gain='neuron'``: recorded neurons differ in their rate ranges, and one scale cannot fit
both a 2 and a 40 spikes/s neuron). An optional ``encoder`` (e.g.
:class:`hdlib.models.encoders.RaisedCosineEncoder`) maps the task inputs to ``u`` first.

**Dale's law.** Column ``j`` of ``W_rec`` holds the outgoing weights of unit ``j``: all >= 0
for an excitatory unit, all <= 0 for an inhibitory one, and the diagonal is 0. The initial
magnitudes are balanced (each unit's summed excitatory input equals its summed inhibitory
input) and scaled so that the spectral radius of ``W_rec * rate_scale``, the loop gain of the
linearised network, is ``spectral_radius``. Full rank: ``W = |W_raw| * sign[j] * (1 - I)``.
Low rank ``r``: ``W = softplus(U) softplus(V)^T diag(sign) * (1 - I)``. Both factors are
non-negative, so every entry of ``U V^T`` is >= 0 and the sign of column ``j`` is ``sign[j]``
exactly; the product has rank <= ``r`` before the diagonal is removed (the document's
alternative, ``|U V^T|``, raises the rank again because ``|.|`` is applied entry by entry).
``bypass_dale=True`` drops the signs and absolute values.

**Time constants.** ``learnable_tau`` in {'none', 'population', 'neuron'} learns ``tau`` (ms)
either through ``torch.clamp`` to [``tau_min``, ``tau_max``] (``tau_mode='clamp'``, the
document's version; ``tau_min`` defaults to ``dt``, so that ``alpha <= 1``) or through
``tau_min + (tau_max - tau_min) * sigmoid(raw)`` (``'smooth'``); ``learnable_alpha`` in
{'none', 'scalar', 'population', 'neuron'} learns ``alpha`` through logits. The first
``n_recorded`` units are the recorded neurons; optional hidden units follow.
``learnable_x0=True`` learns the initial state ``x[-1]`` (shared by all trials; 0 otherwise).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import validate
from .backends import chosen, resolve

TAU_OPTIONS = ("none", "population", "neuron")
BACKENDS = ("reference", "torch")
ALPHA_OPTIONS = ("none", "scalar", "population", "neuron")


def eirnn_step(x, u, W_rec, W_in, bias, alpha, rate_scale, rate_baseline, xi=0.0):
    """One step of document 001's E-I RNN for a batch of trials ``x (K, N)``:
    ``r = softplus(x) rate_scale + rate_baseline``, then
    ``x' = (1 - alpha) x + alpha (W_rec r + W_in u + b) + xi`` with the noise
    ``xi = sqrt(alpha) s eps`` drawn by the caller."""
    r = nn.functional.softplus(x) * rate_scale + rate_baseline
    return (1 - alpha) * x + alpha * (r @ W_rec.T + u @ W_in.T + bias) + xi


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class EIRNN(nn.Module):
    """See the module docstring. ``is_excitatory`` gives the recorded units' types."""

    def __init__(self, is_excitatory, n_inputs: int, *, n_hidden_exc: int = 0,
                 n_hidden_inh: int = 0, dt: float = 25.0, tau_e: float = 50.0,
                 tau_i: float = 50.0, learnable_tau: str = "none", tau_mode: str = "clamp",
                 tau_min: float | None = None, tau_max: float = 200.0,
                 learnable_alpha: str = "none",
                 alpha_init: float = 0.5, low_rank: int | None = None,
                 bypass_dale: bool = False, spectral_radius: float = 0.9,
                 noise_scale: float = 0.1, noise_alpha: str = "unit", rate_scale: float = 10.0,
                 rate_baseline: float = 1.0, learnable_x0: bool = False,
                 rate_gain: str = "scalar", encoder: nn.Module | None = None, seed: int = 0,
                 backend: str | None = None):
        super().__init__()
        self.backend = chosen(backend, BACKENDS)
        recorded = torch.as_tensor(is_excitatory, dtype=torch.bool).flatten()
        if recorded.numel() == 0:
            raise ValueError("is_excitatory must list at least one recorded unit")
        self.n_recorded = recorded.numel()
        n_inputs = validate.positive_int("n_inputs", n_inputs)
        self.n_task_inputs = n_inputs
        self.encoder = encoder
        if encoder is not None:
            n_inputs = encoder.n_features
        hidden = [True] * validate.non_negative_int("n_hidden_exc", n_hidden_exc) + \
                 [False] * validate.non_negative_int("n_hidden_inh", n_hidden_inh)
        excitatory = torch.cat([recorded, torch.tensor(hidden, dtype=torch.bool)])
        self.n_total = n = excitatory.numel()
        self.dt = validate.positive_float("dt", dt)
        self.learnable_tau = validate.choice("learnable_tau", learnable_tau, TAU_OPTIONS)
        self.tau_mode = validate.choice("tau_mode", tau_mode, ("clamp", "smooth"))
        self.learnable_alpha = validate.choice("learnable_alpha", learnable_alpha, ALPHA_OPTIONS)
        if learnable_tau != "none" and learnable_alpha != "none":
            raise ValueError("learnable_tau and learnable_alpha cannot both be on")
        # tau below dt makes alpha > 1: the update overshoots its target every step.
        self.tau_min = validate.positive_float("tau_min", self.dt if tau_min is None else tau_min)
        self.tau_max = validate.float_in("tau_max", tau_max, self.tau_min, math.inf, low_open=True)
        tau_e = validate.float_in("tau_e", tau_e, self.tau_min, self.tau_max)
        tau_i = validate.float_in("tau_i", tau_i, self.tau_min, self.tau_max)
        self.bypass_dale = bool(bypass_dale)
        self.noise_scale = validate.float_in("noise_scale", noise_scale, 0.0, math.inf)
        self.noise_alpha = validate.choice("noise_alpha", noise_alpha, ("unit", "mean"))
        self.register_buffer("excitatory", excitatory)
        self.register_buffer("sign", torch.where(excitatory, 1.0, -1.0))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(n))
        generator = torch.Generator().manual_seed(validate.non_negative_int("seed", seed))
        self._init_time_constants(tau_e, tau_i, validate.float_in(
            "alpha_init", alpha_init, 0.0, 1.0, low_open=True, high_open=True))
        rate_scale = validate.positive_float("rate_scale", rate_scale)
        self._init_recurrence(low_rank, validate.positive_float(
            "spectral_radius", spectral_radius), rate_scale, generator)
        self.W_in = nn.Parameter(torch.randn(n, n_inputs, generator=generator) / math.sqrt(
            n_inputs))
        self.bias = nn.Parameter(torch.zeros(n))
        self.rate_gain = validate.choice("rate_gain", rate_gain, ("scalar", "neuron"))
        shape = (n,) if self.rate_gain == "neuron" else ()
        self._rate_scale = nn.Parameter(_inverse_softplus(torch.full(shape, rate_scale)))
        self._rate_baseline = nn.Parameter(_inverse_softplus(torch.full(
            shape, validate.positive_float("rate_baseline", rate_baseline))))
        if validate.boolean("learnable_x0", learnable_x0):
            self.x0 = nn.Parameter(torch.zeros(n))

    # ------------------------------------------------------------------ parameters
    def _init_time_constants(self, tau_e, tau_i, alpha_init):
        n = self.n_total
        tau = torch.where(self.excitatory, tau_e, tau_i)
        self.register_buffer("tau_fixed", tau)
        if self.learnable_tau == "population":
            init = torch.tensor([tau_e, tau_i])
        elif self.learnable_tau == "neuron":
            init = tau
        if self.learnable_tau != "none":
            if self.tau_mode == "clamp":
                self.tau_raw = nn.Parameter(init.clone())
            else:
                fraction = (init - self.tau_min) / (self.tau_max - self.tau_min)
                self.tau_raw = nn.Parameter(torch.logit(fraction.clamp(1e-4, 1 - 1e-4)))
        if self.learnable_alpha == "scalar":
            self.alpha_logit = nn.Parameter(torch.logit(torch.tensor(alpha_init)))
        elif self.learnable_alpha == "population":
            # Inhibitory units start 1.5x faster, as the document proposes.
            alpha_i = min(1.5 * alpha_init, 0.99)
            self.alpha_logit = nn.Parameter(torch.logit(torch.tensor([alpha_init, alpha_i])))
        elif self.learnable_alpha == "neuron":
            self.alpha_logit = nn.Parameter(torch.full((n,), math.log(alpha_init / (
                1 - alpha_init))))

    def _init_recurrence(self, low_rank, radius, rate_scale, generator):
        n = self.n_total
        n_exc = int(self.excitatory.sum())
        n_inh = n - n_exc
        # Balanced magnitudes: each unit's total excitatory input equals its inhibitory input.
        magnitude = torch.rand(n, n, generator=generator) * 2
        balance = torch.where(self.excitatory, n / max(n_exc, 1), n / max(n_inh, 1)) / 2
        self.low_rank = None if low_rank is None else validate.positive_int("low_rank", low_rank)
        # Parameters are kept O(1), so that an optimiser step is a relative change; a fixed
        # buffer `w_scale` carries the overall size.
        self.register_buffer("w_scale", torch.tensor(1.0))
        if self.low_rank is None:
            self.W_raw = nn.Parameter(magnitude * balance[None, :])
        else:
            r = self.low_rank
            self.U = nn.Parameter(_inverse_softplus(torch.rand(n, r, generator=generator) + 0.5))
            v = (torch.rand(n, r, generator=generator) + 0.5) * balance[:, None]
            self.V = nn.Parameter(_inverse_softplus(v))
        with torch.no_grad():
            # The linearised gain of the loop is W_rec * rate_scale * softplus' (<= 1): the
            # radius is set for W_rec * rate_scale.
            current = torch.linalg.eigvals(self.W_rec).abs().max().item() * rate_scale
            self.w_scale.fill_(radius / max(current, 1e-6))

    @property
    def W_magnitude(self) -> torch.Tensor:
        """The recurrent matrix before its column signs, zero diagonal and scale ``w_scale``:
        ``|W_raw|`` (``W_raw`` itself with ``bypass_dale``), or
        ``softplus(U) softplus(V)^T`` at low rank (rank <= ``low_rank``)."""
        if self.low_rank is None:
            return self.W_raw if self.bypass_dale else self.W_raw.abs()
        return nn.functional.softplus(self.U) @ nn.functional.softplus(self.V).T

    @property
    def W_rec(self) -> torch.Tensor:
        """``W_magnitude * sign[j] * (1 - I) * w_scale`` (no signs with ``bypass_dale``)."""
        w = self.W_magnitude if self.bypass_dale else self.W_magnitude * self.sign
        return w * self.off_diagonal * self.w_scale

    @torch.no_grad()
    def set_rates(self, scale, baseline) -> None:
        """Set ``rate_scale`` and ``rate_baseline`` (positive; per unit with
        ``rate_gain='neuron'``)."""
        self._rate_scale.copy_(_inverse_softplus(torch.as_tensor(scale).float().clamp(min=1e-3)))
        self._rate_baseline.copy_(_inverse_softplus(
            torch.as_tensor(baseline).float().clamp(min=1e-3)))

    @torch.no_grad()
    def set_loop_gain(self, radius: float) -> None:
        """Rescale ``w_scale`` so that the spectral radius of ``W_rec diag(rate_scale)``, the
        loop gain of the linearised network, is ``radius`` (after :meth:`set_rates`, which
        changes it)."""
        gain = self.W_rec * self.rate_scale.expand(self.n_total)[None, :]
        current = torch.linalg.eigvals(gain).abs().max().item()
        self.w_scale.mul_(validate.positive_float("radius", radius) / max(current, 1e-6))

    @property
    def rate_scale(self) -> torch.Tensor:
        return nn.functional.softplus(self._rate_scale)

    @property
    def rate_baseline(self) -> torch.Tensor:
        return nn.functional.softplus(self._rate_baseline)

    def time_constant_parameters(self) -> list[nn.Parameter]:
        """The learnable time constants (raw ``tau`` or ``alpha`` logits); empty when fixed."""
        return [getattr(self, name) for name in ("tau_raw", "alpha_logit") if hasattr(self, name)]

    def freeze_time_constants(self) -> None:
        """Stop the time constants from learning (they keep their current values)."""
        for parameter in self.time_constant_parameters():
            parameter.requires_grad_(False)

    @property
    def tau(self) -> torch.Tensor:
        """Time constant of every unit, ms, ``(n_total,)``."""
        if self.learnable_alpha != "none":
            return self.dt / self.alpha
        if self.learnable_tau == "none":
            return self.tau_fixed
        if self.tau_mode == "clamp":
            tau = torch.clamp(self.tau_raw, self.tau_min, self.tau_max)
        else:
            tau = self.tau_min + (self.tau_max - self.tau_min) * torch.sigmoid(self.tau_raw)
        if self.learnable_tau == "population":
            tau = torch.where(self.excitatory, tau[0], tau[1])
        return tau

    @property
    def alpha(self) -> torch.Tensor:
        """``alpha = dt / tau`` of every unit, ``(n_total,)``."""
        if self.learnable_alpha == "none":
            return self.dt / self.tau
        alpha = torch.sigmoid(self.alpha_logit)
        if self.learnable_alpha == "population":
            return torch.where(self.excitatory, alpha[0], alpha[1])
        return alpha.expand(self.n_total)

    def time_constants(self) -> dict:
        """Mean time constant (ms) of the excitatory and inhibitory units, and every unit's."""
        tau = self.tau.detach()
        return {"tau_e_ms": tau[self.excitatory].mean().item(),
                "tau_i_ms": tau[~self.excitatory].mean().item() if (~self.excitatory).any()
                else float("nan"), "tau_ms": tau.tolist()}

    # ------------------------------------------------------------------ dynamics
    def rates(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) * self.rate_scale + self.rate_baseline

    def forward(self, inputs: torch.Tensor, noise: bool | None = None,
                generator: torch.Generator | None = None, x0: torch.Tensor | None = None):
        """Rates ``(trials, T, n_total)`` for inputs ``(trials, T, n_inputs)``.

        The noise follows the PyTorch convention: on in ``train()`` mode, off in ``eval()``
        mode, unless ``noise`` says otherwise (a metric that needs trial-to-trial variability
        passes ``noise=True`` and its own ``generator``). The initial state is ``x0`` if given,
        else the learned ``x0`` (``learnable_x0=True``), else 0."""
        validate.tensor("inputs", inputs, ndim=3, size={2: self.n_task_inputs})
        if self.encoder is not None:
            inputs = self.encoder(inputs)
        noise = self.training if noise is None else bool(noise)
        K, T, _ = inputs.shape
        alpha = self.alpha
        if alpha.shape != (self.n_total,):
            raise RuntimeError(f"alpha has shape {tuple(alpha.shape)}, expected ({self.n_total},)")
        scale, baseline = self.rate_scale, self.rate_baseline
        xi = None
        if noise and self.noise_scale > 0:
            noise_alpha = alpha if self.noise_alpha == "unit" else alpha.mean()
            sigma = self.noise_scale * noise_alpha.sqrt()
            xi = torch.randn(K, T, self.n_total, generator=generator, device=inputs.device,
                             dtype=inputs.dtype) * sigma
        if x0 is None:
            x0 = self.x0 if hasattr(self, "x0") else inputs.new_zeros(self.n_total)
        x = x0.expand(K, self.n_total)
        if resolve(self.backend, inputs, BACKENDS) == "reference":
            rates = []
            for t in range(T):
                x = eirnn_step(x, inputs[:, t], self.W_rec, self.W_in, self.bias, alpha, scale,
                               baseline, 0.0 if xi is None else xi[:, t])
                rates.append(self.rates(x))
            return torch.stack(rates, dim=1)
        # With h = softplus(x) and r = s h + b, the update is
        #   x[t] = (1 - alpha) x[t-1] + h[t-1] @ (s W^T alpha) + alpha (b W 1 + W_in u[t]) + xi,
        # so each step is one softplus, one matrix product and one multiply-add; the input,
        # bias and noise terms of every step are formed at once beforehand.
        w_alpha = self.W_rec.T * alpha
        drive = (inputs @ self.W_in.T + self.bias) * alpha + (baseline.reshape(-1, 1)
                                                              * w_alpha).sum(0)
        if xi is not None:
            drive = drive + xi
        w_alpha = w_alpha * scale.reshape(-1, 1)
        decay = 1 - alpha
        h = nn.functional.softplus(x)
        out = []
        # unbind, not drive[:, t]: each indexed step's gradient would allocate the whole drive
        for drive_t in drive.unbind(1):
            x = torch.addmm(drive_t, h, w_alpha).addcmul_(x, decay)
            h = nn.functional.softplus(x)
            out.append(h)
        return torch.stack(out, dim=1) * scale + baseline
