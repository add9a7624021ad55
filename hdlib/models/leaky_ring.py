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
(``backend="reference"``). The default ``"torch"`` backend computes the same values with one
matrix product of the batch against the stacked weights ``[J0/N + J1 W0; WL; WR]`` (shape
``3N x N``) per step, followed by a per-sample mix with ``(1, L_t, R_t)``: no per-sample
``N x N`` matrix is ever formed. The whole sequence is one autograd node
(:class:`_RingRecurrence`) whose backward pass is written out (backpropagation through time):
with ``u_t`` the drive, ``g_t`` the gradient reaching ``r_t`` and ``e_t = alpha F'(u_t) g_t``,
the gradient reaching ``r_{t-1}`` is ``(1 - alpha) g_t + [e_t, L_t e_t, R_t e_t] W_stack``
(plus the loss's own gradient at ``t - 1``), one matrix product per step; the stacked weights'
gradient ``sum_t [e_t, L_t e_t, R_t e_t]^T r_{t-1}`` is one product over all steps at the end.
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


class _RingRecurrence(torch.autograd.Function):
    """All states ``r_t`` (``(B, T, N)``) of ``r_t = r_{t-1} + alpha (F(u_t) - r_{t-1})``,
    ``u_t = M r_{t-1} + L_t WL r_{t-1} + R_t WR r_{t-1}`` for the stacked weights
    ``[M; WL; WR]`` ``(3N, N)`` and turn signals ``left``/``right`` ``(B, T)``; see the module
    docstring for the backward pass."""

    @staticmethod
    def forward(ctx, initial, left, right, weights, alpha, activation, backward_to_come):
        batch, steps = left.shape
        n = initial.shape[1]
        act, tanh = ACTIVATIONS[activation], activation == "tanh"
        states = initial.new_empty(batch, steps, n)
        # (M r_{t-1}, WL r_{t-1}, WR r_{t-1}) of every step (of the current one without backward)
        drives = initial.new_empty(steps if backward_to_come else 1, batch, 3, n)
        # what the backward pass needs: F(u_t) for tanh (F' = 1 - F^2), else u_t itself
        kept = initial.new_empty(steps if backward_to_come else 1, batch, n)
        u = initial.new_empty(batch, n)
        left_t, right_t = left.t().unsqueeze(-1), right.t().unsqueeze(-1)  # (T, B, 1)
        transposed = weights.t()
        r = initial
        for t in range(steps):
            drive = drives[t if backward_to_come else 0]
            torch.mm(r, transposed, out=drive.view(batch, 3 * n))
            torch.addcmul(drive[:, 0], drive[:, 1], left_t[t], out=u)
            u.addcmul_(drive[:, 2], right_t[t])
            saved = kept[t if backward_to_come else 0]
            if tanh:
                rate = torch.tanh(u, out=saved)
            else:
                saved.copy_(u)
                rate = act(u)
            r = torch.lerp(r, rate, alpha, out=states[:, t])
        ctx.alpha, ctx.activation = alpha, activation
        ctx.save_for_backward(initial, left_t, right_t, weights, states, kept, drives)
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states):
        initial, left_t, right_t, weights, states, kept, drives = ctx.saved_tensors
        alpha = ctx.alpha
        steps, batch, n = kept.shape
        if ctx.activation == "tanh":  # alpha F'(u) for all steps at once: alpha (1 - F(u)^2)
            slope = torch.addcmul(kept.new_tensor(alpha), kept, kept, value=-alpha)
        else:
            with torch.enable_grad():
                u = kept.detach().requires_grad_()
                slope = torch.autograd.grad(ACTIVATIONS[ctx.activation](u), u,
                                            torch.full_like(u, alpha))[0]
        turn = torch.cat([left_t, right_t], dim=-1)[..., None]  # (T, B, 2, 1)
        mixed = kept.new_empty(steps, batch, 3, n)  # (e_t, L_t e_t, R_t e_t) of every step
        g = initial.new_zeros(batch, n)
        for t in range(steps - 1, -1, -1):
            if grad_states is not None:
                g = g + grad_states[:, t]
            e = torch.mul(g, slope[t], out=mixed[t, :, 0])
            torch.mul(e[:, None], turn[t], out=mixed[t, :, 1:])
            g = torch.addmm(g, mixed[t].view(batch, 3 * n), weights, beta=1 - alpha)
        # over all steps at once: the weights' gradient sum_t [e_t, L_t e_t, R_t e_t]^T r_{t-1},
        # and dL/dL_t = <e_t, WL r_{t-1}>, dL/dR_t = <e_t, WR r_{t-1}>
        previous = torch.cat([initial[None], states.transpose(0, 1)[:-1]])  # (T, B, N)
        previous = previous.reshape(steps * batch, n)
        grad_weights = mixed.view(steps * batch, 3 * n).t() @ previous
        turns = torch.einsum("tbn,tbkn->tbk", mixed[:, :, 0], drives[:, :, 1:])  # (T, B, 2)
        return g, turns[..., 0].t(), turns[..., 1].t(), grad_weights, None, None, None


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
