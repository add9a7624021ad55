"""An excitatory/inhibitory ring attractor for head direction.

Excitatory neuron ``i`` prefers ``theta_i = 2*pi*i/N_E`` (:func:`hdlib.circular.angle_grid`);
the inhibitory population is a pool without topography. With Euler steps of ``dt``:

.. math::

    r_E \\leftarrow r_E + \\tfrac{dt}{\\tau_E}\\bigl(-r_E + F(g_{EE} W_{EE} r_E
        - g_{IE} W_{IE} r_I / N_I + g_{in} u_t + \\xi_E)\\bigr) \\\\
    r_I \\leftarrow r_I + \\tfrac{dt}{\\tau_I}\\bigl(-r_I
        + F(g_{EI} W_{EI} r_E / N_E + \\xi_I)\\bigr)

``W_EE[i, j]`` is a Gaussian of the circular distance between ``theta_i`` and ``theta_j`` with
trainable width ``sigma_ee`` (radians), normalised so every row sums to 1. ``W_EE`` is circulant
and symmetric, so ``W_EE = Phi diag(lambda) Phi^T`` with ``Phi`` the real Fourier modes of the
ring and ``lambda`` the (real) ``rfft`` of its first column. The eigenvalues of a Gaussian fall
as ``exp(-k^2 sigma_ee^2 / 2)``; dropping the modes below float32 resolution (all but about 20
of 800 at ``sigma_ee = 0.5``) turns the product into two thin matrix products. A kernel wide
enough to be cut off at the antipode (``sigma_ee`` near 1 rad or more) has a slowly falling
spectrum and keeps most modes. ``W_EI`` (E to I, ``N_I x N_E``) and ``W_IE`` (I to E,
``N_E x N_I``, entering with a minus sign) are trainable
matrices. ``F(x) = r_max * tanh(relu(x) / r_max)`` rectifies and saturates, which bounds the
bump's height.

Noise is Poisson-like. Three named forms (``noise_form``), all with the variance of a spike
count in one step, ``lambda = noise_rate * relu(r) * dt / 1000`` (``dt`` in ms):

* ``"gaussian"`` (default): ``xi = sqrt(lambda) * eps``, ``eps ~ N(0, 1)``, a reparameterised
  Gaussian; ``d xi / d noise_rate = xi / (2 noise_rate)``.
* ``"poisson"``: ``xi = N``, ``N ~ Poisson(lambda)`` drawn by ``torch.poisson``; the sample has no
  derivative with respect to ``lambda``, so no gradient reaches ``noise_rate`` through it.
* ``"poisson_straight_through"``: the source document's "Poisson noise for better gradient
  flow", read as the straight-through estimator ``xi = lambda + (N - lambda).detach()``: the
  forward value is the count ``N``, the backward pass uses the derivative of its mean,
  ``d xi / d lambda = 1``.

``direct_connections=True`` is the document's "direct parameter connections to model outputs"
(made with ``expand_as``): every scalar parameter ``p`` is added to every output rate,
``r_E + direct_gain * sum_p p.expand_as(r_E)``. A uniform offset has no first Fourier mode on the
ring, so it changes neither the decoded heading nor its loss: what reaches ``p`` through this
path is float rounding.

The stochastic parts follow the PyTorch convention: noise is on in ``train()`` and off in
``eval()`` unless ``forward(..., noise=True)`` asks for it (with its own ``generator``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import validate
from ..circular import (
    angle_grid,
    circular_error,
    circular_mae,
    fourier_basis,
    population_vector,
    population_vector_length,
    von_mises_bump,
    wrap,
)
from .backends import chosen, resolve

NOISE_FORMS = ("gaussian", "poisson", "poisson_straight_through")
BACKENDS = ("reference", "torch")


def ei_ring_step(r_e, r_i, cue, w_ee, w_ie, w_ei, rate_e: float, rate_i: float, activation,
                 xi_e=0.0, xi_i=0.0):
    """One Euler step of document 000's E/I ring for a batch ``r_e (B, N_E)``, ``r_i (B, N_I)``,
    with the gains folded into the dense weights (``w_ee = g_EE W_EE``,
    ``w_ie = g_IE W_IE / N_I``, ``w_ei = g_EI W_EI / N_E``), ``cue = g_in u_t`` and
    ``rate = dt / tau``:
    ``r_E + rate_E (-r_E + F(W_EE r_E - W_IE r_I + u + xi_E))`` and
    ``r_I + rate_I (-r_I + F(W_EI r_E + xi_I))``."""
    drive_e = r_e @ w_ee.T - r_i @ w_ie.T + cue + xi_e
    drive_i = r_e @ w_ei.T + xi_i
    return (r_e + rate_e * (-r_e + activation(drive_e)),
            r_i + rate_i * (-r_i + activation(drive_i)))


class _EIRingRecurrence(torch.autograd.Function):
    """All states of the E/I ring (:func:`ei_ring_step`) as one autograd node, two products
    per step: ``P = r_E from_E`` (the ``M`` mode amplitudes of ``r_E`` and the drive of I), then
    ``drive_E = cue_t + [P_M, r_I] into_E``, ``drive_I = P_I``, plus noise ``xi(r)`` drawn
    step by step (E, then I). ``scale_e``/``scale_i`` are the Gaussian noise scales
    (``xi = s sqrt(r) eps``) or the Poisson means per unit rate (``xi ~ Poisson(k relu(r))``).

    Backward, with ``g`` the gradient reaching a state, ``d = rate F'(drive) g`` that reaching
    a drive, and ``n = dxi/dr`` (``s eps / (2 sqrt(r))``, or ``k`` for the straight-through
    estimator, 0 for plain Poisson counts)::

        gZ = d_E into_E^T,   gP = [gZ_M, d_I],
        g_E[t-1] = (1 - rate_E) g_E + gP from_E^T + n_E d_E,
        g_I[t-1] = (1 - rate_I) g_I + gZ_I + n_I d_I,

    and the weights' gradients ``sum_t r_E^T gP`` and ``sum_t Z^T d_E`` are one product each
    over all steps.
    """

    @staticmethod
    def forward(ctx, r_e, r_i, cue, from_e, into_e, scale_e, scale_i, n_modes, rate_e, rate_i,
                r_max, noise_form, generator):
        batch, steps, n_exc = cue.shape
        n_inh = r_i.shape[1]
        states_e = cue.new_empty(batch, steps + 1, n_exc)
        states_i = cue.new_empty(batch, steps + 1, n_inh)
        states_e[:, 0], states_i[:, 0] = r_e, r_i
        fired_e = cue.new_empty(steps, batch, n_exc)  # F(drive), for the slopes
        fired_i = cue.new_empty(steps, batch, n_inh)
        mixed = cue.new_empty(steps, batch, n_modes + n_inh)  # Z = [P_M, r_I]
        gaussian = noise_form == "gaussian"
        eps_e = cue.new_empty(steps, batch, n_exc) if gaussian else None
        eps_i = cue.new_empty(steps, batch, n_inh) if gaussian else None
        cue_t = cue.transpose(0, 1)
        for t in range(steps):
            r_e, r_i = states_e[:, t], states_i[:, t]
            projected = r_e @ from_e
            mixed[t, :, :n_modes] = projected[:, :n_modes]
            mixed[t, :, n_modes:] = r_i
            drive_e = torch.addmm(cue_t[t], mixed[t], into_e)
            drive_i = projected[:, n_modes:]
            if gaussian:
                torch.randn(eps_e[t].shape, generator=generator, out=eps_e[t])
                drive_e.addcmul_(r_e.clamp_min(1e-12).sqrt_().mul_(scale_e), eps_e[t])
                torch.randn(eps_i[t].shape, generator=generator, out=eps_i[t])
                drive_i = torch.addcmul(drive_i, r_i.clamp_min(1e-12).sqrt_().mul_(scale_i),
                                        eps_i[t])
            elif noise_form is not None:
                drive_e += torch.poisson(scale_e * torch.relu(r_e), generator=generator)
                drive_i = drive_i + torch.poisson(scale_i * torch.relu(r_i), generator=generator)
            for drive, fired in ((drive_e, fired_e[t]), (drive_i, fired_i[t])):
                if r_max == 1.0:
                    torch.tanh(drive, out=fired).relu_()
                else:
                    torch.tanh(drive.div_(r_max), out=fired).relu_().mul_(r_max)
            torch.lerp(r_e, fired_e[t], rate_e, out=states_e[:, t + 1])
            torch.lerp(r_i, fired_i[t], rate_i, out=states_i[:, t + 1])
        ctx.constants = n_modes, rate_e, rate_i, r_max, noise_form
        ctx.save_for_backward(from_e, into_e, scale_e, scale_i, states_e, states_i, fired_e,
                              fired_i, mixed, eps_e, eps_i)
        return states_e[:, 1:], states_i[:, 1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_e, grad_i):
        (from_e, into_e, scale_e, scale_i, states_e, states_i, fired_e, fired_i, mixed, eps_e,
         eps_i) = ctx.saved_tensors
        n_modes, rate_e, rate_i, r_max, noise_form = ctx.constants
        steps, batch, n_exc = fired_e.shape
        before_e = states_e[:, :-1].transpose(0, 1)  # r[t-1] of each step, (T, B, N)
        before_i = states_i[:, :-1].transpose(0, 1)
        # rate F'(drive) for every step at once: F = r_max relu(tanh(x / r_max))
        slope_e = rate_e * (1 - (fired_e / r_max) ** 2) * (fired_e > 0)
        slope_i = rate_i * (1 - (fired_i / r_max) ** 2) * (fired_i > 0)
        noise_slopes = None
        if noise_form == "gaussian":
            noise_slopes = [scale * eps * 0.5 * before.clamp_min(1e-12).rsqrt() * (before > 1e-12)
                            for scale, eps, before in ((scale_e, eps_e, before_e),
                                                       (scale_i, eps_i, before_i))]
        elif noise_form == "poisson_straight_through":
            noise_slopes = [scale * (before > 0) for scale, before in ((scale_e, before_e),
                                                                       (scale_i, before_i))]
        d_e = fired_e.new_empty(fired_e.shape)  # the gradient reaching drive_E, every step
        g_p = mixed.new_empty(mixed.shape)  # the gradient reaching P = r_E from_E
        g_e = fired_e.new_zeros(batch, n_exc)
        g_i = fired_i.new_zeros(batch, fired_i.shape[2])
        grad_e_t = None if grad_e is None else grad_e.transpose(0, 1)
        grad_i_t = None if grad_i is None else grad_i.transpose(0, 1)
        for t in range(steps - 1, -1, -1):
            if grad_e_t is not None:
                g_e = g_e + grad_e_t[t]
            if grad_i_t is not None:
                g_i = g_i + grad_i_t[t]
            torch.mul(g_e, slope_e[t], out=d_e[t])
            d_i = torch.mul(g_i, slope_i[t], out=g_p[t, :, n_modes:])
            g_z = d_e[t] @ into_e.T
            g_p[t, :, :n_modes] = g_z[:, :n_modes]
            g_e = torch.addmm(g_e, g_p[t], from_e.T, beta=1 - rate_e)
            g_i = torch.add(g_z[:, n_modes:], g_i, alpha=1 - rate_i)
            if noise_slopes is not None:
                g_e.addcmul_(d_e[t], noise_slopes[0][t])
                g_i.addcmul_(d_i, noise_slopes[1][t])
        flat = steps * batch
        grad_from = before_e.reshape(flat, n_exc).T @ g_p.view(flat, -1)
        grad_into = mixed.view(flat, -1).T @ d_e.view(flat, n_exc)
        grad_scales = [None, None]
        if noise_form == "gaussian":
            grad_scales = [(d * before.clamp_min(1e-12).sqrt() * eps).sum().reshape(scale.shape)
                           for d, before, eps, scale in ((d_e, before_e, eps_e, scale_e),
                                                         (g_p[..., n_modes:], before_i, eps_i,
                                                          scale_i))]
        elif noise_form == "poisson_straight_through":
            grad_scales = [(d * torch.relu(before)).sum().reshape(scale.shape)
                           for d, before, scale in ((d_e, before_e, scale_e),
                                                    (g_p[..., n_modes:], before_i, scale_i))]
        return (g_e, g_i, d_e.transpose(0, 1), grad_from, grad_into, *grad_scales,
                *(None,) * 6)


class RingAttractorNetwork(nn.Module):
    """E/I ring; see the module docstring for the equations (and for ``noise_form`` and
    ``direct_connections``). All sizes and times must be > 0."""

    def __init__(self, n_exc: int = 800, n_inh: int = 200, sigma_ee: float = 0.5,
                 tau_e: float = 10.0, tau_i: float = 5.0, dt: float = 1.0, g_ee: float = 1.5,
                 g_ei: float = 1.0, g_ie: float = 2.0, input_gain: float = 1.0,
                 noise_rate_e: float = 1.0, noise_rate_i: float = 1.0, r_max: float = 1.0,
                 noise_form: str = "gaussian", direct_connections: bool = False,
                 direct_gain: float = 1e-3, seed: int = 0, device=None,
                 backend: str | None = None):
        super().__init__()
        self.backend = chosen(backend, BACKENDS)
        self.n_exc = validate.positive_int("n_exc", n_exc)
        self.n_inh = validate.positive_int("n_inh", n_inh)
        self.tau_e = validate.positive_float("tau_e", tau_e)
        self.tau_i = validate.positive_float("tau_i", tau_i)
        self.dt = validate.positive_float("dt", dt)
        if self.dt > min(self.tau_e, self.tau_i):
            raise ValueError(f"dt must not exceed tau_e or tau_i (Euler stability); got dt={dt}, "
                             f"tau_e={tau_e}, tau_i={tau_i}")
        self.r_max = validate.positive_float("r_max", r_max)
        self.noise_form = validate.choice("noise_form", noise_form, NOISE_FORMS)
        self.direct_connections = validate.boolean("direct_connections", direct_connections)
        self.direct_gain = validate.positive_float("direct_gain", direct_gain)
        generator = torch.Generator().manual_seed(validate.non_negative_int("seed", seed))

        def scalar(name, value):
            return nn.Parameter(torch.tensor(validate.positive_float(name, value)))

        self.sigma_ee = scalar("sigma_ee", sigma_ee)
        self.g_ee = scalar("g_ee", g_ee)
        self.g_ei = scalar("g_ei", g_ei)
        self.g_ie = scalar("g_ie", g_ie)
        self.input_gain = scalar("input_gain", input_gain)
        self.noise_rate_e = scalar("noise_rate_e", noise_rate_e)
        self.noise_rate_i = scalar("noise_rate_i", noise_rate_i)
        self.W_EI = nn.Parameter(0.5 + torch.rand(self.n_inh, self.n_exc, generator=generator))
        self.W_IE = nn.Parameter(0.5 * torch.rand(self.n_exc, self.n_inh, generator=generator))
        self.register_buffer("grid", angle_grid(self.n_exc))
        self.register_buffer("fourier", fourier_basis(self.n_exc), persistent=False)
        if device is not None:
            self.to(device)

    # ------------------------------------------------------------------ pieces
    def w_ee_column(self) -> torch.Tensor:
        """First column of ``W_EE``: ``exp(-d(theta_i, 0)^2 / (2 sigma_ee^2))``, summing to 1."""
        sigma = self.sigma_ee.clamp_min(1e-3)
        kernel = torch.exp(-0.5 * (wrap(self.grid) / sigma) ** 2)
        return kernel / kernel.sum()

    def w_ee(self) -> torch.Tensor:
        """The full ``N_E x N_E`` matrix ``W_EE[i, j] = column[(i - j) mod N_E]`` (for figures)."""
        column = self.w_ee_column()
        neurons = torch.arange(self.n_exc)
        index = torch.remainder(neurons[:, None] - neurons[None, :], self.n_exc)
        return column[index.to(column.device)]

    def excitation_spectrum(self) -> torch.Tensor:
        """Eigenvalues of ``g_EE W_EE`` by frequency ``k = 0..N_E/2``: the real ``rfft`` of its
        first column (real because the kernel is symmetric)."""
        return self.g_ee * torch.fft.rfft(self.w_ee_column()).real

    def excitation_modes(self, tol: float = 1e-6):
        """``g_EE W_EE = modes @ diag(gains) @ modes.T`` over the modes that matter.

        ``gains`` are the :meth:`excitation_spectrum`, one per cosine and one per sine; modes
        whose eigenvalue is below ``tol`` times the largest are dropped: float32 cannot resolve
        them (the FFT would not either).
        Returns ``modes`` ``(N_E, M)`` and ``gains`` ``(M,)``.
        """
        spectrum = self.excitation_spectrum()
        with torch.no_grad():
            magnitude = spectrum.abs()
            above = torch.nonzero(magnitude > tol * magnitude.max())
            # a non-finite spectrum keeps every mode, so that the NaN reaches the output
            frequencies = int(above.max()) + 1 if above.numel() else magnitude.numel()
        gains = spectrum[:frequencies].repeat_interleave(2)[1:self.n_exc + 1]
        return self.fourier[:, :gains.numel()], gains

    def recurrent_excitation(self, r_e: torch.Tensor) -> torch.Tensor:
        """``g_EE W_EE r_E`` through :meth:`excitation_modes` (for tests and figures; the
        forward pass fuses the same products with the E<->I ones)."""
        modes, gains = self.excitation_modes()
        return (r_e @ modes) * gains @ modes.T

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        # relu(tanh(x)) = tanh(relu(x)); relu last gives a one-op backward
        if self.r_max == 1.0:
            return torch.relu(torch.tanh(x))
        return self.r_max * torch.relu(torch.tanh(x / self.r_max))

    def initial_state(self, heading: torch.Tensor, amplitude: float = 0.8):
        """A bump on ``heading`` (shape ``(B,)``) and a silent inhibitory pool."""
        r_e = amplitude * self.r_max * von_mises_bump(heading, self.n_exc, concentration=8.0)
        return r_e, torch.zeros(heading.shape[0], self.n_inh, device=heading.device,
                                dtype=r_e.dtype)

    def cue(self, heading: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """Cue input: a bump on each heading, shape ``heading.shape + (N_E,)``."""
        return strength * von_mises_bump(heading, self.n_exc, concentration=8.0)

    def noise_scales(self):
        """``sqrt(noise_rate * dt / 1000)`` for E and I: noise is ``scale * sqrt(r) * eps``."""
        seconds = self.dt / 1000.0
        return (self.noise_rate_e * seconds).sqrt(), (self.noise_rate_i * seconds).sqrt()

    # ------------------------------------------------------------------ dynamics
    def forward(self, inputs: torch.Tensor, h0=None, *, noise: bool | None = None,
                generator: torch.Generator | None = None):
        """Run a whole input sequence.

        ``inputs``: ``(batch, time, N_E)`` or unbatched ``(time, N_E)``. ``h0``: the state
        ``(r_E, r_I)`` to continue from (a silent network when ``None``). Returns the excitatory
        rates ``(batch, time, N_E)`` (unbatched in, unbatched out) and the final state
        ``(r_E, r_I)``; passing that state back continues the run exactly. ``noise``: ``None``
        follows the mode (on in ``train()``, off in ``eval()``); ``True``/``False`` force it.
        Noise is drawn step by step (E, then I) from ``generator``, by every backend alike.

        ``self.backend``: ``"reference"`` runs :func:`ei_ring_step` (the document's dense
        ``W_EE``) under autograd; ``"torch"`` (the default) runs :class:`_EIRingRecurrence`,
        two matrix products per step through the Fourier modes of ``W_EE``, with a written-out
        backward pass.
        """
        validate.tensor("inputs", inputs, ndim=(2, 3), size={-1: self.n_exc})
        noise = self.training if noise is None else validate.boolean("noise", noise)
        unbatched = inputs.dim() == 2
        if unbatched:
            inputs = inputs.unsqueeze(0)
        batch = inputs.shape[0]
        if h0 is None:
            r_e = inputs.new_zeros(batch, self.n_exc)
            r_i = inputs.new_zeros(batch, self.n_inh)
        else:
            r_e, r_i = self._check_state(h0, batch, unbatched)
        cue = self.input_gain * inputs
        noise_form = self.noise_form if noise else None
        scales = self.noise_scales() if noise_form == "gaussian" else self.noise_means()
        a_e, a_i = self.dt / self.tau_e, self.dt / self.tau_i
        w_ie = self.g_ie * self.W_IE / self.n_inh
        w_ei = self.g_ei * self.W_EI / self.n_exc
        if resolve(self.backend, inputs, BACKENDS) == "reference":
            w_ee = self.g_ee * self.w_ee()
            rates = []
            for cue_t in cue.unbind(1):
                xi_e, xi_i = (self._noise(r_e, scales[0], generator),
                              self._noise(r_i, scales[1], generator)) if noise else (0.0, 0.0)
                r_e, r_i = ei_ring_step(r_e, r_i, cue_t, w_ee, w_ie, w_ei, a_e, a_i,
                                        self.activation, xi_e, xi_i)
                rates.append(r_e)
            rates = torch.stack(rates, dim=1)
        else:
            modes, gains = self.excitation_modes()
            from_e = torch.cat([modes, w_ei.T], dim=1)  # r_E -> (mode amplitudes, drive of I)
            into_e = torch.cat([gains[:, None] * modes.T, -w_ie.T], dim=0)  # -> drive of E
            states_e, states_i = _EIRingRecurrence.apply(
                r_e, r_i, cue, from_e, into_e, *scales, gains.numel(), a_e, a_i, self.r_max,
                noise_form, generator)
            rates, r_e, r_i = states_e, states_e[:, -1], states_i[:, -1]
        if self.direct_connections:
            scalars = [p for p in self.parameters() if p.numel() == 1]
            rates = rates + self.direct_gain * sum(p.expand_as(rates) for p in scalars)
        if unbatched:
            return rates[0], (r_e[0], r_i[0])
        return rates, (r_e, r_i)

    def noise_means(self):
        """``noise_rate * dt / 1000`` for E and I: a Poisson count's mean is this times
        ``relu(r)``."""
        seconds = self.dt / 1000.0
        return self.noise_rate_e * seconds, self.noise_rate_i * seconds

    def _noise(self, rate, scale, generator):
        """One step's noise of a population at rates ``rate``: ``scale`` is
        :meth:`noise_scales` (Gaussian) or :meth:`noise_means` (Poisson forms)."""
        if self.noise_form != "gaussian":
            mean = scale * torch.relu(rate)
            count = torch.poisson(mean.detach(), generator=generator)
            if self.noise_form == "poisson":
                return count
            return mean + (count - mean).detach()  # straight through: d xi / d mean = 1
        eps = torch.randn(rate.shape, generator=generator, device=rate.device, dtype=rate.dtype)
        return rate.clamp_min(1e-12).sqrt() * (scale * eps)

    def _check_state(self, h0, batch, unbatched):
        if not (isinstance(h0, (tuple, list)) and len(h0) == 2):
            raise ValueError("h0 must be the (r_E, r_I) state returned by forward; "
                             f"got {type(h0).__name__}")
        r_e, r_i = h0
        if unbatched:
            r_e, r_i = r_e.unsqueeze(0), r_i.unsqueeze(0)
        validate.tensor("h0[0] (r_E)", r_e, ndim=2, size={0: batch, 1: self.n_exc})
        validate.tensor("h0[1] (r_I)", r_i, ndim=2, size={0: batch, 1: self.n_inh})
        return r_e, r_i

    # ------------------------------------------------------------------ read-outs
    def decode(self, rates: torch.Tensor) -> torch.Tensor:
        """Population-vector heading of excitatory rates (radians)."""
        return population_vector(rates)


def count_bumps(rates: torch.Tensor, threshold: float = 0.5, smooth: int = 9) -> torch.Tensor:
    """Number of separate activity peaks on the ring, per pattern (last dimension).

    The pattern is first smoothed by a circular moving average of ``smooth`` neurons, so that
    noise does not split one bump; a peak is then a circular run of neurons above
    ``threshold * max``. A silent pattern, or one above threshold everywhere (no localised
    peak), has 0 peaks.
    """
    if smooth > 1:
        flat = rates.reshape(-1, 1, rates.shape[-1])
        padded = torch.cat([flat[..., -(smooth // 2):], flat, flat[..., : smooth // 2]], dim=-1)
        kernel = torch.full((1, 1, smooth), 1.0 / smooth, dtype=rates.dtype, device=rates.device)
        rates = torch.nn.functional.conv1d(padded, kernel).reshape(rates.shape)
    top = rates.amax(dim=-1, keepdim=True)
    above = (rates > threshold * top) & (top > 1e-6)
    starts = above & ~torch.roll(above, 1, dims=-1)
    return starts.sum(dim=-1)


def drift_deg_per_s(decoded: torch.Tensor, dt_ms: float) -> torch.Tensor:
    """Mean heading change per second of a decoded sequence ``(..., time)``, in degrees."""
    steps = torch.diff(decoded, dim=-1)
    total = wrap(steps).sum(dim=-1)
    return torch.rad2deg(total.abs()) / (decoded.shape[-1] - 1) / (dt_ms / 1000.0)


@torch.no_grad()
def excitation_mode_error(model: RingAttractorNetwork, batch_size: int = 8, seed: int = 0) -> float:
    """``max |g_EE W_EE r - recurrent_excitation(r)|`` over ``batch_size`` random patterns
    ``r ~ U[0, 1)^{N_E}``: how far the product through the kept Fourier modes is from the dense
    circulant matrix."""
    probe = torch.rand(batch_size, model.n_exc, generator=torch.Generator().manual_seed(seed))
    probe = probe.to(model.grid.device)
    dense = model.g_ee * probe @ model.w_ee().T
    return (model.recurrent_excitation(probe) - dense).abs().max().item()


@torch.no_grad()
def chunked_run_gap(model: RingAttractorNetwork, inputs: torch.Tensor, h0, split: int,
                    seed: int = 0) -> float:
    """``max |r_whole - r_chunked|``: the rates of one run over ``inputs`` ``(B, T, N_E)`` from
    state ``h0``, against two runs split at step ``split`` with the final state of the first
    handed to the second. Noise is on in both, from a generator seeded with ``seed``, so a state
    that carries everything gives exactly 0."""
    whole, _ = model(inputs, h0, noise=True, generator=torch.Generator().manual_seed(seed))
    stream = torch.Generator().manual_seed(seed)
    first, handover = model(inputs[:, :split], h0, noise=True, generator=stream)
    second, _ = model(inputs[:, split:], handover, noise=True, generator=stream)
    return (torch.cat([first, second], dim=1) - whole).abs().max().item()


def parameter_gradients(model: RingAttractorNetwork, task, batch_size: int = 8,
                        seed: int = 0) -> dict[str, float]:
    """``||dL/dp||`` for every trainable parameter ``p``, with ``L = task.loss`` on one batch in
    training mode (noise on; data from a generator seeded with ``seed``, noise from
    ``seed + 1``). A parameter that does not reach the loss at all counts as 0; gradients are
    cleared and the model's mode restored afterwards."""
    was_training = model.training
    model.train()
    device = model.grid.device
    inputs, targets = task.batch("train", batch_size, torch.Generator().manual_seed(seed))
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    model.zero_grad(set_to_none=True)
    task.loss(model, inputs.to(device), targets.to(device), generator=noise).backward()
    norms = {name: 0.0 if p.grad is None else p.grad.norm().item()
             for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return norms


@torch.no_grad()
def batch_gap(model: RingAttractorNetwork, inputs: torch.Tensor, h0=None) -> float:
    """``max |forward(batch) - forward(each sample alone)|`` without noise: a batch of ``B``
    sequences ``(B, T, N_E)`` against ``B`` unbatched runs ``(T, N_E)`` from the same states
    (the loop over samples is the reference the batched form is checked against)."""
    batched, _ = model(inputs, h0, noise=False)
    singles = []
    for b in range(inputs.shape[0]):
        state = None if h0 is None else (h0[0][b], h0[1][b])
        singles.append(model(inputs[b], state, noise=False)[0])
    return (batched - torch.stack(singles)).abs().max().item()


@torch.no_grad()
def tracking_error_deg(model: RingAttractorNetwork, task, batch_size: int = 64,
                       seed: int = 1234, noise: bool = False) -> float:
    """Mean absolute error (degrees) of the decoded heading on cue-tracking sequences, the
    network starting from a bump on the first heading; without the model's noise unless
    ``noise=True`` (then drawn from a generator seeded with ``seed + 1``)."""
    device = model.grid.device
    inputs, headings = task.batch("val", batch_size, torch.Generator().manual_seed(seed))
    inputs, headings = inputs.to(device), headings.to(device)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    rates, _ = model(inputs, model.initial_state(headings[:, 0]), noise=noise,
                     generator=generator)
    return circular_mae(model.decode(rates), headings)


@torch.no_grad()
def tracking_errors(model: RingAttractorNetwork, task, steps: int, batch_size: int = 64,
                    settle_steps: int = 50, seed: int = 1234) -> dict[str, float]:
    """Tracking on long sequences of ``steps`` steps of ``task`` (noisy, intermittent cue),
    the network starting from silence and run without its noise (``eval`` convention).

    Returns the mean absolute circular error (degrees) over every step after the first
    ``settle_steps`` of the ``network`` (population-vector heading of its rates) and of the
    ``cue`` alone (:meth:`~hdlib.datasets.tasks.HeadDirectionTrackingTask.cue_estimate`: the
    population vector of the input, held through darkness), and the network's error on the
    steps with the cue visible (``network_lit``) and dark (``network_dark``; NaN without
    darkness).
    """
    device = model.grid.device
    inputs, headings, visible, _ = task.segment("val", batch_size,
                                                torch.Generator().manual_seed(seed), steps=steps)
    inputs, headings, visible = inputs.to(device), headings.to(device), visible.to(device)
    rates, _ = model(inputs, None, noise=False)
    keep = slice(settle_steps, None)
    error = circular_error(model.decode(rates), headings)[:, keep].abs()
    cue = circular_error(task.cue_estimate(inputs, visible), headings)[:, keep].abs()
    lit = visible[:, keep]
    dark_error = error[~lit].mean() if (~lit).any() else torch.tensor(float("nan"))
    return {"network": math.degrees(error.mean().item()),
            "cue": math.degrees(cue.mean().item()),
            "network_lit": math.degrees(error[lit].mean().item()),
            "network_dark": math.degrees(dark_error.item())}


@torch.no_grad()
def darkness_test(model: RingAttractorNetwork, cue_steps: int = 100, dark_steps: int = 1000,
                  batch_size: int = 16, cue_strength: float = 1.0, min_amplitude: float = 0.5,
                  seed: int = 0, noise: bool = False) -> dict:
    """Show a still cue for ``cue_steps``, then remove all input for ``dark_steps``.

    The cue headings are ``batch_size`` points spaced evenly round the ring. Returns the mean
    bump count and the population-vector length at the end of the darkness relative to the end
    of the cue (``amplitude_kept``), the drift of the decoded heading during darkness (degrees
    per second, mean over the batch), ``held`` (every pattern ends with exactly one bump and
    ``amplitude_kept > min_amplitude``) and the decoded trace ``(batch, cue_steps +
    dark_steps)``. The model's noise is off unless ``noise=True`` (drawn from a generator
    seeded with ``seed``).
    """
    heading = angle_grid(batch_size, device=model.grid.device)
    cue = model.cue(heading[:, None].expand(-1, cue_steps), cue_strength)
    generator = torch.Generator(device=heading.device).manual_seed(seed)
    lit, state = model(cue, model.initial_state(heading), noise=noise, generator=generator)
    dark, _ = model(cue.new_zeros(batch_size, dark_steps, model.n_exc), state, noise=noise,
                    generator=generator)
    decoded = model.decode(torch.cat([lit, dark], dim=1))
    before = population_vector_length(lit[:, -1]).mean()
    after = population_vector_length(dark[:, -1]).mean()
    bumps = count_bumps(dark[:, -1])
    kept = (after / before).item()
    return {"bumps": bumps.float().mean().item(), "amplitude_kept": kept,
            "held": bool((bumps == 1).all()) and kept > min_amplitude,
            "drift_deg_s": drift_deg_per_s(decoded[:, cue_steps - 1:], model.dt).mean().item(),
            "decoded": decoded}


@torch.no_grad()
def bump_count_grid(sigmas, inhibitions, n_exc: int = 400, n_inh: int = 100, steps: int = 400,
                    batch_size: int = 8, seed: int = 0, **model_kwargs):
    """Mean number of bumps after ``steps`` from random activity with no input (the model's
    noise on, from a generator seeded with ``seed``), for every ``sigma_ee`` (rows) and
    inhibition gain ``g_ie`` (columns)."""
    counts = torch.empty(len(sigmas), len(inhibitions))
    for i, sigma in enumerate(sigmas):
        for j, g_ie in enumerate(inhibitions):
            model = RingAttractorNetwork(n_exc, n_inh, sigma_ee=sigma, g_ie=g_ie, seed=seed,
                                         **model_kwargs)
            g = torch.Generator().manual_seed(seed)
            r_e = 0.5 * torch.rand(batch_size, n_exc, generator=g)
            state = (r_e, torch.zeros(batch_size, n_inh))
            rates, _ = model(torch.zeros(batch_size, steps, n_exc), state, noise=True,
                             generator=g)
            counts[i, j] = count_bumps(rates[:, -1]).float().mean()
    return counts


def bump_regimes(counts: torch.Tensor) -> dict[str, int]:
    """How many settings of a :func:`bump_count_grid` end in each regime, by their mean bump
    count ``c``: ``none`` (``c <= 0.5``: silence, or activity everywhere), ``one``
    (``0.5 < c <= 1.5``) and ``several`` (``c > 1.5``)."""
    return {"none": int((counts <= 0.5).sum()),
            "one": int(((counts > 0.5) & (counts <= 1.5)).sum()),
            "several": int((counts > 1.5).sum())}
