"""A leaky ring attractor that integrates angular velocity.

State ``r`` (one rate per neuron on the ring grid of :mod:`hdlib.circular`) evolves as

.. math::

    r_{t+1} = r_t + \\alpha\\,\\bigl(-r_t
              + F(J_0\\,\\bar r_t + J_1 W_0 r_t + L_t W_L r_t + R_t W_R r_t)\\bigr)

with ``alpha = dt / tau`` unless given, ``F`` one of tanh, ReLU or GELU, ``J0 * mean(r)`` the
global inhibition (the all-to-all matrix ``J0/N``), ``W0`` the maintenance weights and
``WL``/``WR`` the left/right rotation weights. The turn signals ``L_t = g_L(av_t)`` and
``R_t = g_R(av_t)`` come from two small gain networks (1 -> hidden -> 1, tanh) applied to the
angular velocity ``av_t`` (radians per step, positive = counter-clockwise = left).

The document writes each step with every sample's own effective matrix
``W_eff = J0/N + J1 W0 + L_t WL + R_t WR``: :func:`leaky_ring_step`, the model's definition
(``backend="reference"``). The default ``"torch"`` backend computes the same values without
ever forming a per-sample ``N x N`` matrix. With ``M = J0/N + J1 W0``, the drive
``u_t = M r + L_t WL r + R_t WR r`` (``r = r_{t-1}``) is one matrix product per step of the
scaled copies ``[r, L_t r, R_t r]`` (``B x 3N``) against ``[M^T; WL^T; WR^T]`` (``3N x N``).
The whole sequence is one autograd node (:class:`_RingRecurrence`) whose backward pass is
written out (backpropagation through time). With ``g_t`` the gradient reaching ``r_t`` (the
loss's own plus what later steps send back) and ``e_t = alpha F'(u_t) g_t``, one product per
step gives ``e_t [M | WL | WR] = (e_t M, e_t WL, e_t WR)``, from which

* the gradient reaching ``r_{t-1}`` is ``(1 - alpha) g_t + e_t M + L_t e_t WL + R_t e_t WR``;
* the turn signals' gradients are ``dL/dL_t = <e_t WL, r_{t-1}>``, ``dL/dR_t = <e_t WR, r_{t-1}>``;
* the stacked weights' gradient is ``sum_t [e_t, L_t e_t, R_t e_t]^T r_{t-1}``.

The last two are taken once per block of ``CHUNK_STEPS`` steps, while the block's products are
still in the processor's cache, as one matrix product each.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import validate
from ..circular import angle_grid, population_vector, von_mises_bump, wrap
from .backends import chosen, resolve

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}
INITS = ("random", "perfect", "debug_perfect")
BACKENDS = ("reference", "torch")
CALIBRATION_RANGE = 0.5  # rad/step covered when the ideal gain networks are fitted
CHUNK_STEPS = 16  # steps whose backward products stay in cache until their weight gradient


class _RingRecurrence(torch.autograd.Function):
    """All states ``r_t`` (``(B, T, N)``) of ``r_t = r_{t-1} + alpha (F(u_t) - r_{t-1})``,
    ``u_t = M r_{t-1} + L_t WL r_{t-1} + R_t WR r_{t-1}`` for the stacked weights
    ``[M; WL; WR]`` ``(3N, N)`` and turn signals ``left``/``right`` ``(B, T)``; the module
    docstring gives both passes."""

    @staticmethod
    def forward(ctx, initial, left, right, weights, alpha, activation, backward_to_come):
        batch, steps = left.shape
        n = initial.shape[1]
        act, tanh = ACTIVATIONS[activation], activation == "tanh"
        states = initial.new_empty(batch, steps, n)
        # what the backward pass needs: F(u_t) for tanh (F' = 1 - F^2), else u_t itself
        kept = initial.new_empty(steps if backward_to_come else 1, batch, n)
        mixing = torch.stack([torch.ones_like(left), left, right]).permute(2, 1, 0)
        mixing = mixing.unsqueeze(-1).contiguous()  # (T, B, 3, 1): (1, L_t, R_t)
        tall = weights.view(3, n, n).transpose(1, 2).reshape(3 * n, n)  # [M^T; WL^T; WR^T]
        inputs = initial.new_empty(batch, 3, n)  # [r_{t-1}, L_t r_{t-1}, R_t r_{t-1}]
        flat = inputs.view(batch, 3 * n)
        u = initial.new_empty(batch, n)
        saved = kept.unbind(0) if backward_to_come else kept.expand(steps, batch, n).unbind(0)
        r = initial
        for mixing_step, kept_step, state in zip(mixing.unbind(0), saved, states.unbind(1)):
            torch.mul(r[:, None], mixing_step, out=inputs)
            torch.mm(flat, tall, out=u)
            if tanh:
                rate = torch.tanh(u, out=kept_step)
            else:
                kept_step.copy_(u)
                rate = act(u)
            r = torch.lerp(r, rate, alpha, out=state)
        ctx.alpha, ctx.activation = alpha, activation
        ctx.save_for_backward(initial, mixing, weights, states, kept)
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states):
        initial, mixing, weights, states, kept = ctx.saved_tensors
        alpha = ctx.alpha
        steps, batch, n = kept.shape
        lefts, rights = mixing[:, :, 1].unbind(0), mixing[:, :, 2].unbind(0)
        wide = weights.view(3, n, n).transpose(0, 1).reshape(n, 3 * n)  # [M | WL | WR]
        chunk = max(1, min(CHUNK_STEPS, steps))
        slope = kept.new_empty(chunk, batch, n)  # alpha F'(u_t)
        errors = kept.new_empty(chunk, batch, n)  # e_t
        pulled = kept.new_empty(chunk, batch, 3, n)  # (e_t M, e_t WL, e_t WR)
        mixed = kept.new_empty(chunk, batch, 3, n)  # (e_t, L_t e_t, R_t e_t)
        previous = kept.new_empty(chunk, batch, n)  # r_{t-1}
        grad_weights = kept.new_zeros(n, 3 * n)  # transposed
        grad_turns = kept.new_empty(steps, batch, 2, 1)
        loss_grads = grad_states.unbind(1)
        slope_at, error_at = slope.unbind(0), errors.unbind(0)
        pull_at = pulled.view(chunk, batch, 3 * n).unbind(0)
        pull_m, pull_l, pull_r = (pulled[:, :, k].unbind(0) for k in range(3))
        g = initial.new_zeros(batch, n)  # the gradient reaching r_t from later steps
        for end in range(steps, 0, -chunk):
            start = max(0, end - chunk)
            size = end - start
            _activation_slope(kept[start:end], alpha, ctx.activation, out=slope[:size])
            for t in range(end - 1, start - 1, -1):
                j = t - start
                g = g + loss_grads[t]
                torch.mm(torch.mul(g, slope_at[j], out=error_at[j]), wide, out=pull_at[j])
                g = torch.add(pull_m[j], g, alpha=1 - alpha)
                g.addcmul_(pull_l[j], lefts[t]).addcmul_(pull_r[j], rights[t])
            if start == 0:
                previous[0] = initial
                previous[1:size] = states[:, :size - 1].transpose(0, 1)
            else:
                previous[:size] = states[:, start - 1:end - 1].transpose(0, 1)
            # the block's share of the weights' gradient, and its turn signals' gradients
            torch.mul(errors[:size, :, None], mixing[start:end], out=mixed[:size])
            grad_weights.addmm_(previous[:size].view(size * batch, n).t(),
                                mixed[:size].view(size * batch, 3 * n))
            torch.matmul(pulled[:size, :, 1:], previous[:size, :, :, None],
                         out=grad_turns[start:end])
        return (g, grad_turns[:, :, 0, 0].t(), grad_turns[:, :, 1, 0].t(), grad_weights.t(),
                None, None, None)


def _activation_slope(kept: torch.Tensor, alpha: float, activation: str,
                      out: torch.Tensor) -> torch.Tensor:
    """``alpha F'(u)`` from what the forward pass kept: ``F(u)`` for tanh
    (``F' = 1 - F^2``), else ``u``."""
    if activation == "tanh":
        return torch.addcmul(kept.new_tensor(alpha), kept, kept, value=-alpha, out=out)
    with torch.enable_grad():
        u = kept.detach().requires_grad_()
        slope, = torch.autograd.grad(ACTIVATIONS[activation](u), u, torch.full_like(u, alpha))
    return out.copy_(slope)


def leaky_ring_step(r: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                    W0: torch.Tensor, WL: torch.Tensor, WR: torch.Tensor, J0: torch.Tensor,
                    J1: torch.Tensor, alpha: float, activation) -> torch.Tensor:
    """One step of document 002's leaky ring for a batch ``r (B, N)`` with turn signals
    ``left, right (B,)``: each sample's own matrix
    ``W_eff = J0/N + J1 W0 + L WL + R WR``, then ``r + alpha (-r + F(W_eff r))``."""
    n = r.shape[-1]
    w_eff = J0 / n + J1 * W0 + left[:, None, None] * WL + right[:, None, None] * WR
    return r + alpha * (-r + activation(torch.bmm(w_eff, r[..., None])[..., 0]))


class GainNetwork(nn.Module):
    """``g(av) = w2 . (tanh(w1 * av + b1) - tanh(b1))``: a scalar turn signal for every step.

    Subtracting the response to ``av = 0`` makes ``g(0) = 0`` exactly: with the head still,
    no turn signal reaches the rotation weights.
    """

    def __init__(self, hidden: int, generator: torch.Generator | None = None):
        super().__init__()
        # skip_init + explicit draws: PyTorch's default initialisation would use (and advance)
        # the global random stream. The draws follow nn.Linear's default ranges.
        self.hidden = nn.utils.skip_init(nn.Linear, 1, hidden)
        self.out = nn.utils.skip_init(nn.Linear, hidden, 1, bias=False)
        with torch.no_grad():
            self.hidden.weight.uniform_(-1.0, 1.0, generator=generator)
            self.hidden.bias.uniform_(-1.0, 1.0, generator=generator)
            bound = 1.0 / math.sqrt(hidden)
            self.out.weight.uniform_(-bound, bound, generator=generator)

    def forward(self, av: torch.Tensor) -> torch.Tensor:
        features = torch.tanh(self.hidden(av.unsqueeze(-1))) - torch.tanh(self.hidden.bias)
        return self.out(features).squeeze(-1)


class LeakyRingAttractor(nn.Module):
    """Ring of ``num_neurons`` rate units integrating angular velocity (see module docstring).

    ``init='random'`` draws ``W0, WL, WR ~ N(0, init_scale^2/N)`` and default gain networks; a
    small ``init_scale`` (default 0.1) keeps the untrained ring near-silent, so the bump first
    decays at the leak rate and gradients through time stay well conditioned;
    ``'perfect'`` starts from the ideal ring (:meth:`ideal_weights`) with gain networks fitted to
    its velocity curve, and keeps learning; ``'debug_perfect'`` is the same network with every
    parameter frozen, a reference for what the architecture can do.

    ``backend``: ``"reference"`` runs :func:`leaky_ring_step`, the document's form, step by
    step under autograd; ``"torch"`` (the default) runs the whole sequence as one autograd
    node with its backward pass written out (:class:`_RingRecurrence`). Both give the same
    values and gradients.
    """

    def __init__(self, num_neurons: int = 120, tau: float = 20.0, dt: float = 10.0,
                 alpha: float | None = None, activation: str = "tanh",
                 hidden_gain_neurons: int = 16, init: str = "random",
                 bump_concentration: float = 4.0, init_scale: float = 0.1, seed: int = 0,
                 backend: str | None = None):
        super().__init__()
        self.backend = chosen(backend, BACKENDS)
        self.num_neurons = validate.positive_int("num_neurons", num_neurons)
        self.tau = validate.positive_float("tau", tau)
        self.dt = validate.positive_float("dt", dt)
        if alpha is None:
            alpha = self.dt / self.tau
        self.alpha = validate.float_in("alpha", alpha, 0.0, 1.0, low_open=True)
        self.activation = validate.choice("activation", activation, ACTIVATIONS)
        self.hidden_gain_neurons = validate.positive_int("hidden_gain_neurons", hidden_gain_neurons)
        self.init = validate.choice("init", init, INITS)
        self.bump_concentration = validate.positive_float("bump_concentration", bump_concentration)
        self.init_scale = validate.float_in("init_scale", init_scale, 0.0, math.inf)
        seed = validate.non_negative_int("seed", seed)

        n = self.num_neurons
        generator = torch.Generator().manual_seed(seed)
        self.gain_left = GainNetwork(self.hidden_gain_neurons, generator)
        self.gain_right = GainNetwork(self.hidden_gain_neurons, generator)
        std = self.init_scale / math.sqrt(n)
        self.W0 = nn.Parameter(torch.randn(n, n, generator=generator) * std)
        self.WL = nn.Parameter(torch.randn(n, n, generator=generator) * std)
        self.WR = nn.Parameter(torch.randn(n, n, generator=generator) * std)
        self.J0 = nn.Parameter(torch.tensor(0.0))
        self.J1 = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("grid", angle_grid(n))

        if self.init != "random":
            self.load_ideal_weights()
        if self.init == "debug_perfect":
            self.requires_grad_(False)

    # ----------------------------------------------------------------- weights
    @staticmethod
    def ideal_weights(num_neurons: int, j1: float = 2.0) -> dict[str, torch.Tensor]:
        """Ideal ring weights from the first Fourier mode of the ring.

        ``W0_ij = (2/N) cos(theta_i - theta_j)`` maps a bump at ``phi`` onto ``cos(theta - phi)``,
        ``WL_ij = (2/N) sin(theta_i - theta_j)`` onto ``sin(theta - phi)`` and ``WR = -WL``, so the
        recurrent drive ``J1 cos + (L - R) sin`` is the same bump turned by
        ``atan((L - R) / J1)``: exactly, for any activation, because ``F`` keeps the profile
        symmetric about its peak. ``J0 = 0``: with tanh the uniform mode decays on its own.
        """
        grid = angle_grid(num_neurons, dtype=torch.float64)
        diff = grid[:, None] - grid[None, :]
        w0 = 2.0 / num_neurons * torch.cos(diff)
        wl = 2.0 / num_neurons * torch.sin(diff)
        return {"W0": w0.float(), "WL": wl.float(), "WR": (-wl).float(),
                "J0": torch.tensor(0.0), "J1": torch.tensor(j1)}

    @torch.no_grad()
    def load_ideal_weights(self) -> None:
        """Set the ring to :meth:`ideal_weights` and fit the gain networks to its speed curve."""
        for name, value in self.ideal_weights(self.num_neurons).items():
            getattr(self, name).copy_(value)
        turn, speed = self.speed_curve(torch.linspace(-3.0, 3.0, 121))
        self._fit_gains_to_inverse(turn.numpy(), speed.numpy())

    @torch.no_grad()
    def speed_curve(self, turn: torch.Tensor, steps: int = 80, settle: int = 40):
        """Steady rotation (rad/step) of the bump under a constant turn signal ``L - R = turn``.

        Runs every value of ``turn`` as one batch with ``L = turn/2`` and ``R = -turn/2``.
        Returns ``(turn, speed)``.
        """
        heading = torch.zeros(turn.shape[0])
        r = self.initial_state(heading)
        coeff = torch.stack([torch.ones_like(turn), turn / 2, -turn / 2], dim=-1)
        weights = self.stacked_weights()
        phases = []
        for t in range(steps):
            r = self._step(r, weights, coeff)
            if t >= settle - 1:
                phases.append(population_vector(r))
        phases = torch.stack(phases, dim=1)
        return turn, wrap(torch.diff(phases, dim=1)).mean(dim=1)

    def _fit_gains_to_inverse(self, turn: np.ndarray, speed: np.ndarray) -> None:
        """Fit ``g_L(av) = turn(av)/2`` and ``g_R = -g_L`` by least squares on the output layer.

        ``turn(av)`` inverts the measured speed curve; hidden units are tanh ramps with slopes
        and offsets spread over the calibration range.
        """
        order = np.argsort(speed)
        av = np.linspace(-CALIBRATION_RANGE, CALIBRATION_RANGE, 401)
        target = np.interp(av, speed[order], turn[order]) / 2.0
        h = self.hidden_gain_neurons
        slopes = np.full(h, 2.0 / CALIBRATION_RANGE)
        offsets = np.linspace(-1.5, 1.5, h) * (h > 1)
        features = np.tanh(av[:, None] * slopes + offsets) - np.tanh(offsets)
        coef, *_ = np.linalg.lstsq(features, target, rcond=None)
        for net, sign in ((self.gain_left, 1.0), (self.gain_right, -1.0)):
            net.hidden.weight.copy_(torch.tensor(slopes[:, None], dtype=torch.float32))
            net.hidden.bias.copy_(torch.tensor(offsets, dtype=torch.float32))
            net.out.weight.copy_(sign * torch.tensor(coef[None, :], dtype=torch.float32))

    def stacked_weights(self) -> torch.Tensor:
        """``[J0/N + J1 W0; WL; WR]`` of shape ``(3N, N)``, the only matrix a step multiplies."""
        maintain = self.J0 / self.num_neurons + self.J1 * self.W0
        return torch.cat([maintain, self.WL, self.WR], dim=0)

    # ----------------------------------------------------------------- dynamics
    def initial_state(self, heading: torch.Tensor) -> torch.Tensor:
        """A von Mises bump on each heading, shape ``(batch, N)``."""
        return von_mises_bump(heading, self.num_neurons, concentration=self.bump_concentration)

    def turn_signals(self, av: torch.Tensor) -> torch.Tensor:
        """Mixing coefficients ``(1, L_t, R_t)`` for every sample and step, shape ``(B, T, 3)``."""
        return torch.stack([torch.ones_like(av), self.gain_left(av), self.gain_right(av)], dim=-1)

    def _step(self, r: torch.Tensor, weights: torch.Tensor, coeff: torch.Tensor) -> torch.Tensor:
        batch, n = r.shape
        drives = (r @ weights.T).view(batch, 3, n)
        drive = torch.bmm(coeff.unsqueeze(1), drives).squeeze(1)
        return r + self.alpha * (ACTIVATIONS[self.activation](drive) - r)

    def forward(self, av: torch.Tensor, initial_heading: torch.Tensor,
                initial_state: torch.Tensor | None = None) -> torch.Tensor:
        """Run the ring on angular velocities ``av`` of shape ``(B, T)`` (rad/step).

        The state starts as a bump on ``initial_heading`` (shape ``(B,)``) unless
        ``initial_state`` ``(B, N)`` is given. Returns the activity after each step, ``(B, T, N)``.
        """
        validate.tensor("av", av, ndim=2)
        batch = av.shape[0]
        validate.tensor("initial_heading", initial_heading, ndim=1, size={0: batch})
        if initial_state is None:
            r = self.initial_state(initial_heading.to(av.dtype))
        else:
            r = validate.tensor("initial_state", initial_state, ndim=2,
                                size={0: batch, 1: self.num_neurons})
        left, right = self.gain_left(av), self.gain_right(av)
        if resolve(self.backend, av, BACKENDS) == "reference":
            states = []
            for t in range(av.shape[1]):
                r = leaky_ring_step(r, left[:, t], right[:, t], self.W0, self.WL, self.WR,
                                    self.J0, self.J1, self.alpha, ACTIVATIONS[self.activation])
                states.append(r)
            return torch.stack(states, dim=1)
        inputs = (r, left, right, self.stacked_weights())
        backward_to_come = torch.is_grad_enabled() and any(x.requires_grad for x in inputs)
        return _RingRecurrence.apply(*inputs, self.alpha, self.activation, backward_to_come)
