"""The Polar V1 model's temporal stages and their learnable constants.

Both stages are first-order linear recurrences,

    s[t] = d[t] * s[t-1] + (1 - d[t]) * x[t],

with decay ``d[t] = exp(-lambda[t] * dt)`` for the amplitude relaxation and ``d = alpha`` for the
exponential moving averages. :func:`linear_recurrence` evaluates all frames at once: with
``c[t] = sum_{k<=t} log d[k]`` and ``u[t] = (1 - d[t]) x[t]``,

    s[t] = exp(c[t]) s[-1] + sum_{s<=t} exp(c[t] - c[s]) u[s],

one lower-triangular matrix product per chunk of frames (every exponent is <= 0, so nothing
overflows); chunks pass their last state on, so a long video costs memory linear in its length.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from .. import validate
from . import scans

#: Frames per block of :func:`linear_recurrence` (a ``chunk x chunk`` matrix per trial).
CHUNK = 64


def _transfer_matrix(log_d: torch.Tensor) -> torch.Tensor:
    """``M[..., t, s] = exp(c[t] - c[s])`` for ``s <= t`` (0 above the diagonal)."""
    c = torch.cumsum(log_d, dim=-1)
    n = log_d.shape[-1]
    upper = torch.ones(n, n, dtype=torch.bool, device=log_d.device).triu(1)
    zero = torch.zeros((), dtype=c.dtype)
    diff = torch.where(upper, zero, c[..., :, None] - c[..., None, :])
    return torch.where(upper, zero, torch.exp(diff))


def linear_recurrence(log_decay: torch.Tensor, drive: torch.Tensor,
                      initial: torch.Tensor | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """All states of ``s[t] = d[t] s[t-1] + u[t]`` for ``u = drive (..., T, F)``.

    ``log_decay`` is ``log d``: shape ``(T,)`` (shared) or ``(..., T)``; it may be complex (a
    decay with a rotation). ``initial`` (``(..., F)``, default 0) is ``s[-1]``.
    """
    T = drive.shape[-2]
    if log_decay.dim() == 1:
        # A decay shared by every sequence: time first, all sequences side by side as columns,
        # so that each block is one 2-D matrix product.
        columns = drive.movedim(-2, 0)
        flat_initial = None if initial is None else initial.reshape(1, -1)
        out = linear_recurrence(log_decay[None], columns.reshape(1, T, -1), flat_initial, chunk)
        return out.reshape(columns.shape).movedim(0, -2)
    states = []
    state = initial
    for start in range(0, T, chunk):
        log_d = log_decay[..., start:start + chunk]
        x = drive[..., start:start + chunk, :]
        weights = _transfer_matrix(log_d)
        block = weights @ x.to(weights.dtype)
        if state is not None:
            block = block + torch.exp(torch.cumsum(log_d, -1))[..., :, None] * state[..., None, :]
        states.append(block)
        state = block[..., -1, :]
    return torch.cat(states, dim=-2)


def _check_gate(gate: torch.Tensor) -> None:
    if gate.numel() and (gate.min() < 0 or gate.max() > 1):
        raise ValueError(f"gate must lie in [0, 1]; got values from {gate.min().item():.3g} to "
                         f"{gate.max().item():.3g}")


class PolarDynamics(nn.Module):
    """Amplitude relaxation with a fixation and a saccade rate.

    ``A[t] = a_bar[t] + (A[t-1] - a_bar[t]) exp(-lambda[t] dt)``, with
    ``lambda[t] = (1 - q[t]) lambda_fix + q[t] lambda_sac`` and the saccade gate ``q`` in [0, 1].
    ``a_bar`` is the amplitude the current frame drives (its filter amplitude); the state keeps
    the previous frames' amplitudes for about ``1 / lambda`` seconds. The rates are stored as
    logarithms (``log_lambda_fix``, ``log_lambda_sac``), so they stay positive whatever the
    optimiser does; ``lambda_fix``/``lambda_sac`` are the rates in 1/s.

    Phase is carried on the unit circle: the phasor ``P = exp(i phi)`` follows the same
    relaxation toward the current frame's phase while being rotated by the phase shift that
    retinal motion predicts, ``P[t] = d[t] exp(i dphi[t]) P[t-1] + (1 - d[t]) exp(i phi_in[t])``.
    """

    def __init__(self, lambda_fix: float = 10.0, lambda_sac: float = 40.0, dt: float = 1 / 120,
                 learnable: bool = True):
        super().__init__()
        lambda_fix = validate.positive_float("lambda_fix", lambda_fix)
        lambda_sac = validate.positive_float("lambda_sac", lambda_sac)
        self.dt = validate.positive_float("dt", dt)
        for name, value in (("log_lambda_fix", lambda_fix), ("log_lambda_sac", lambda_sac)):
            tensor = torch.tensor(math.log(value))
            if learnable:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    @property
    def lambda_fix(self) -> torch.Tensor:
        return self.log_lambda_fix.exp()

    @property
    def lambda_sac(self) -> torch.Tensor:
        return self.log_lambda_sac.exp()

    def log_decay(self, gate: torch.Tensor) -> torch.Tensor:
        """``log d[t] = -lambda[t] dt`` for a gate ``(..., T)``."""
        _check_gate(gate)
        rate = (1 - gate) * self.lambda_fix + gate * self.lambda_sac
        return -rate * self.dt

    def forward(self, amplitude: torch.Tensor, gate: torch.Tensor,
                initial: torch.Tensor | None = None) -> torch.Tensor:
        """Relaxed amplitudes of ``amplitude``'s shape, for a drive ``(..., T, F)`` with gate
        ``(..., T)``, or a feature map ``(B, C, T, H, W)`` (time on its own axis) with gate
        ``(B, T)`` shared by the channels and positions of each trial. ``initial`` is the
        amplitude before the first frame, of the drive's shape without its time axis (default:
        the first frame's drive, i.e. the model starts at rest)."""
        validate.tensor("amplitude", amplitude, ndim=(2, 3, 5))
        if amplitude.dim() == 5:
            return self._feature_map(amplitude, gate, initial)
        validate.tensor("gate", gate, ndim=amplitude.dim() - 1)
        if gate.shape != amplitude.shape[:-1]:
            raise ValueError(f"gate must have shape {tuple(amplitude.shape[:-1])} to match "
                             f"amplitude; got {tuple(gate.shape)}")
        start = amplitude[..., 0, :] if initial is None else initial
        log_d = self.log_decay(gate)
        if _compiled(amplitude, log_d, start):  # one trial per row
            decay = log_d.exp().to(amplitude.dtype).reshape(-1, amplitude.shape[-2])
            start = start.to(amplitude.dtype).expand(amplitude[..., 0, :].shape)
            return _CompiledRelaxation.apply(amplitude, decay, start, amplitude.dim() - 2)
        return linear_recurrence(log_d, -torch.expm1(log_d)[..., None] * amplitude, start)

    def _feature_map(self, amplitude: torch.Tensor, gate: torch.Tensor,
                     initial: torch.Tensor | None) -> torch.Tensor:
        """:meth:`forward` on ``(B, C, T, H, W)`` in its own layout, with the decay of each trial
        and frame shared by its channels and positions: compiled on the CPU
        (:class:`_CompiledRelaxation`), frame by frame in place elsewhere
        (:class:`_FrameRelaxation`), the plain frame loop under ``torch.func``."""
        B, C, T, H, W = amplitude.shape
        if gate.shape != (B, T):
            raise ValueError(f"gate must have shape {(B, T)} (trials, frames) for a feature map "
                             f"of shape {tuple(amplitude.shape)}; got {tuple(gate.shape)}")
        if initial is not None and initial.shape != (B, C, H, W):
            raise ValueError(f"initial must have shape {(B, C, H, W)}; got "
                             f"{tuple(initial.shape)}")
        start = amplitude[:, :, 0] if initial is None else initial.to(amplitude.dtype)
        decay = self.log_decay(gate).exp().to(amplitude.dtype)  # (B, T)
        if _compiled(amplitude, decay, start):
            return _CompiledRelaxation.apply(amplitude, decay, start, 2)
        if any(map(_transformed, (amplitude, decay, start))):
            return _relaxation_loop(amplitude, decay, start, 2)
        return _FrameRelaxation.apply(amplitude, decay[:, None, :, None, None], start, 2)

    @torch.no_grad()
    def step_response(self, n_frames: int, gate: float = 0.0) -> torch.Tensor:
        """``A[t]``, ``t < n_frames``, for a unit drive switched on at frame 0 from ``A[-1] = 0``
        at a constant gate ``q``: ``1 - exp(-lambda (t + 1) dt)``, with ``lambda = (1 - q)
        lambda_fix + q lambda_sac``."""
        n_frames = validate.positive_int("n_frames", n_frames)
        drive = torch.ones(1, n_frames, 1)
        return self(drive, torch.full((1, n_frames), float(gate)),
                    initial=torch.zeros(1, 1))[0, :, 0]

    def phase(self, phase: torch.Tensor, phase_shift: torch.Tensor, gate: torch.Tensor,
              initial: torch.Tensor | None = None) -> torch.Tensor:
        """Carried phase ``(..., T, F)`` from measured phase ``(..., T, F)``, the phase shift
        retinal motion predicts for each frame ``(..., T, F)``, and the gate ``(..., T)``."""
        if phase.shape != phase_shift.shape:
            raise ValueError(f"phase_shift must have the shape of phase {tuple(phase.shape)}; "
                             f"got {tuple(phase_shift.shape)}")
        log_d = self.log_decay(gate)[..., None]  # (..., T, 1)
        rotated = log_d + 1j * phase_shift  # (..., T, F)
        measured = torch.polar(torch.ones_like(phase), phase)
        # One recurrence per feature: features become a batch axis, time the recurrence axis.
        drive = (-torch.expm1(log_d) * measured).transpose(-1, -2)[..., None]
        start = measured[..., 0, :] if initial is None else torch.polar(
            torch.ones_like(initial), initial)
        start = start[..., None]
        phasor = linear_recurrence(rotated.transpose(-1, -2), drive, start)
        return torch.angle(phasor[..., 0]).transpose(-1, -2)


class _ExponentialAverages(torch.autograd.Function):
    """``y_k[t] = a_k[t] y_k[t-1] + (1 - a_k[t]) x[t]`` (``y_k[-1] = 0``) along axis ``dim`` of
    ``x``, for the ``K`` rows of ``coefficients (K, T)``, computed frame by frame in place on
    views of ``x``'s own layout (no transposes). The backward pass is the adjoint recurrence, an
    exponential average run backwards in time,

        lam_k[t] = g_k[t] + a_k[t+1] lam_k[t+1],
        dL/dx[t] = sum_k (1 - a_k[t]) lam_k[t],
        dL/da_k[t] = <lam_k[t], y_k[t-1] - x[t]>,

    kept in two frame-sized buffers per average, so it allocates nothing sequence-sized beyond
    the input's gradient.
    """

    @staticmethod
    def forward(ctx, x, coefficients, dim):
        outputs = tuple(torch.empty_like(x, memory_format=torch.contiguous_format)
                        for _ in range(coefficients.shape[0]))
        ctx.set_materialize_grads(False)
        ctx.dim = dim
        ctx.save_for_backward(x, coefficients, *outputs)
        if x.is_meta:  # shapes only: there are no values to run the recurrence on
            return outputs
        frames = x.unbind(dim)
        decays = coefficients.tolist()
        states = [y.unbind(dim) for y in outputs]
        for a, y in zip(decays, states):
            torch.mul(frames[0], 1.0 - a[0], out=y[0])
        for t in range(1, len(frames)):
            for a, y in zip(decays, states):  # frame t is read from memory once for all K
                # lerp(s, x, w) = s + w (x - s) = a s + (1 - a) x with w = 1 - a
                torch.lerp(y[t - 1], frames[t], 1.0 - a[t], out=y[t])
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        x, coefficients, *outputs = ctx.saved_tensors
        need_x, need_a = ctx.needs_input_grad[:2]
        dim = ctx.dim
        frames = x.unbind(dim)
        T = len(frames)
        grad_x = torch.empty_like(x) if need_x else None
        grad_a = x.new_zeros(coefficients.shape) if need_a else None
        used = [k for k, g in enumerate(grads) if g is not None]
        if not used:
            return None if grad_x is None else grad_x.zero_(), grad_a, None
        decays = coefficients.tolist()
        states = {k: outputs[k].unbind(dim) for k in used}
        g_frames = {k: grads[k].unbind(dim) for k in used}
        adjoint = {k: g_frames[k][T - 1].clone(memory_format=torch.contiguous_format)
                   for k in used}
        grad_x_frames = grad_x.unbind(dim) if need_x else None
        difference = torch.empty_like(frames[0], memory_format=torch.contiguous_format)
        for t in range(T - 1, -1, -1):
            for i, k in enumerate(used):
                a, lam = decays[k], adjoint[k]
                if t < T - 1:
                    torch.add(g_frames[k][t], lam, alpha=a[t + 1], out=lam)
                if need_a:
                    if t > 0:
                        torch.sub(states[k][t - 1], frames[t], out=difference)
                    else:
                        torch.neg(frames[0], out=difference)
                    torch.dot(lam.view(-1), difference.view(-1), out=grad_a[k, t])
                if need_x:
                    if i == 0:
                        torch.mul(lam, 1.0 - a[t], out=grad_x_frames[t])
                    else:
                        grad_x_frames[t].add_(lam, alpha=1.0 - a[t])
        return grad_x, None if grad_a is None else grad_a.to(coefficients.dtype), None


class _FrameRelaxation(torch.autograd.Function):
    """``s[t] = d[t] s[t-1] + (1 - d[t]) x[t]`` with ``s[-1] = initial``, frame by frame along
    axis ``dim`` of ``x``, in place on views of ``x``'s own layout. ``decay`` has ``x``'s number
    of axes, size ``T`` on ``dim`` and size 1 or ``x``'s size elsewhere (a decay per trial and
    frame, shared by channels and positions). The backward pass is the adjoint recurrence,

        lam[t] = g[t] + d[t+1] lam[t+1],
        dL/dx[t] = (1 - d[t]) lam[t],   dL/dd[t] = sum <lam[t], s[t-1] - x[t]>,
        dL/dinitial = d[0] lam[0],

    the sum running over the axes that ``decay`` broadcasts along.
    """

    @staticmethod
    def forward(ctx, x, decay, initial, dim):
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        ctx.dim = dim
        ctx.save_for_backward(x, decay, initial, out)
        frames, weights, states = x.unbind(dim), (1 - decay).unbind(dim), out.unbind(dim)
        torch.lerp(initial, frames[0], weights[0], out=states[0])
        for t in range(1, len(frames)):
            torch.lerp(states[t - 1], frames[t], weights[t], out=states[t])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, decay, initial, out = ctx.saved_tensors
        dim = ctx.dim
        need_x, need_d, need_initial = ctx.needs_input_grad[:3]
        frames, states, g = x.unbind(dim), out.unbind(dim), grad.unbind(dim)
        decays, weights = decay.unbind(dim), (1 - decay).unbind(dim)
        T = len(frames)
        reduce = [i for i, (a, b) in enumerate(zip(decays[0].shape, frames[0].shape)) if a != b]
        grad_x = torch.empty_like(x) if need_x else None
        grad_d = torch.zeros_like(decay) if need_d else None
        lam = g[T - 1].clone(memory_format=torch.contiguous_format)
        difference = torch.empty_like(lam)
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                torch.addcmul(g[t], decays[t + 1], lam, out=lam)
            if need_d:
                torch.sub(states[t - 1] if t else initial, frames[t], out=difference)
                difference.mul_(lam)
                grad_d.select(dim, t).copy_(difference.sum(reduce, keepdim=True)
                                            if reduce else difference)
            if need_x:
                torch.mul(lam, weights[t], out=grad_x.select(dim, t))
        grad_initial = decays[0] * lam if need_initial else None
        if grad_initial is not None and grad_initial.shape != initial.shape:
            grad_initial = grad_initial.sum_to_size(initial.shape)
        return grad_x, grad_d, grad_initial, None


class _CompiledRelaxation(torch.autograd.Function):
    """:class:`_FrameRelaxation` on the CPU through the compiled kernels
    :func:`hdlib.models.scans.relax` and :func:`hdlib.models.scans.relax_adjoint`, on ``x``
    viewed as ``(rows, T, features)`` in its own layout. ``decay`` is ``(trials, T)``, shared by
    the ``rows / trials`` consecutive rows of each trial (the channels of a feature map);
    ``initial`` is ``s[-1]``, ``x``'s shape without the time axis."""

    @staticmethod
    def forward(ctx, x, decay, initial, dim):
        x, initial = x.contiguous(), initial.contiguous()
        columns = _grid(x, dim)
        padded = np.zeros((decay.shape[0], decay.shape[1] + 1), dtype=columns.dtype)
        padded[:, :-1] = decay.detach().numpy()
        out = scans.new_like(x)
        start = initial.detach().numpy().reshape(columns.shape[0], -1)
        scans.relax(columns, padded, start, _grid(out, dim))
        ctx.dim, ctx.padded = dim, padded
        ctx.save_for_backward(x, decay, initial, out)  # decay only for the torch.func fallback
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, decay, initial, out = ctx.saved_tensors
        dim, needed = ctx.dim, ctx.needs_input_grad[:3]
        if _transformed(grad):  # torch.func (vmap): differentiate the loop
            return (*_loop_gradients(lambda *v: [_relaxation_loop(*v, dim)],
                                     (x, decay, initial), needed, [grad]), None)
        need_x, need_d, need_initial = needed
        grad_x = scans.new_like(x) if need_x else None
        columns = _grid(x, dim)
        start = initial.detach().numpy().reshape(columns.shape[0], -1)
        grad_d, grad_start = scans.relax_adjoint(
            columns, ctx.padded, start, _grid(out, dim), _grid(grad.contiguous(), dim),
            None if grad_x is None else _grid(grad_x, dim), need_d)
        return (grad_x, torch.from_numpy(grad_d).to(decay.dtype) if need_d else None,
                torch.from_numpy(grad_start).view(initial.shape) if need_initial else None,
                None)


def _relaxation_loop(x, decay, initial, dim):
    """``s[t] = d[t] s[t-1] + (1 - d[t]) x[t]`` frame by frame in plain torch operations (what
    ``torch.func`` transforms can see into), for :class:`_CompiledRelaxation`'s inputs."""
    columns = _columns(x, dim)
    d = decay.repeat_interleave(columns.shape[0] // decay.shape[0], dim=0)[..., None]
    state, frames = initial.reshape(columns.shape[0], -1), []
    for t in range(columns.shape[1]):
        state = d[:, t] * state + (1 - d[:, t]) * columns[:, t]
        frames.append(state)
    return torch.stack(frames, dim=1).reshape(x.shape)


@functools.lru_cache(maxsize=32)
def _decay_table(logits: tuple[float, ...], n_frames: int, dtype: torch.dtype):
    """The compiled kernels' coefficients ``(a, b)`` (:func:`hdlib.models.scans.coefficients`)
    of the averages with these logits over ``n_frames`` frames, and their slopes
    (:func:`_bias_corrected_decay_slopes`), ``(K, T)`` float64 and as the kernels' columns.
    Cached by value: between two optimiser steps, every call reuses them."""
    values = torch.tensor(logits, dtype=torch.float64)
    decays = _bias_corrected_decays(values, n_frames).numpy()
    slopes = _bias_corrected_decay_slopes(values, n_frames).numpy()
    return (*scans.coefficients(decays, _numpy_dtype(dtype)), slopes,
            scans.columns(slopes, _numpy_dtype(dtype)))


@functools.lru_cache(maxsize=32)
def _last_frame_table(logits: tuple[float, float], n_frames: int, dtype: torch.dtype):
    """``(weights (2, T) of dtype, their slopes (2, T) float64)`` of
    :func:`_last_frame_weights` and :func:`_last_frame_weight_slopes`, cached by value like
    :func:`_decay_table`."""
    values = torch.tensor(logits, dtype=torch.float64)
    weights = _last_frame_weights(values, n_frames).numpy()
    return (np.ascontiguousarray(weights, dtype=_numpy_dtype(dtype)),
            _last_frame_weight_slopes(values, n_frames).numpy())


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype


def _logit_gradients(logits, totals) -> list[torch.Tensor]:
    """The logits' gradients (0-d tensors of each logit's dtype) from their values ``totals``
    (one float each; a second total beyond a single logit is dropped)."""
    return [torch.tensor(float(total), dtype=logit.dtype)
            for logit, total in zip(logits, totals)]


def _chained(grad_coefficients: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """``dL/dlogit_k = sum_t dL/dc_k[t] dc_k[t]/dlogit_k`` for the ``K`` rows of ``slopes``
    (``grad_coefficients`` has at least ``K`` rows)."""
    return np.einsum("kt,kt->k", grad_coefficients[:len(slopes)], slopes)


class _CompiledAverages(torch.autograd.Function):
    """The corrected averages of :class:`TemporalSummarizer` on the CPU, through the compiled
    kernels of :mod:`hdlib.models.scans`: one pass over ``x`` forward and one backward, on
    ``x`` viewed as ``(rows, T, features)`` in its own memory layout. ``logits`` are one or two
    0-d tensors. When ``x`` needs a gradient, the backward pass is the adjoint recurrence of
    :class:`_ExponentialAverages` backwards in time, and the logits' gradients are the
    coefficients' gradients times the slopes of :func:`_decay_table`; when only the logits
    need one, it runs their forward sensitivities (:func:`hdlib.models.scans.
    average_sensitivities`), which read neither the averages nor anything backwards."""

    @staticmethod
    def forward(ctx, x, dim, *logits):
        x = x.contiguous()
        a, b, *slopes = _decay_table(tuple(logit.item() for logit in logits), x.shape[dim],
                                     x.dtype)
        averages = scans.new_like(x), scans.new_like(x)  # one average is run twice
        scans.average_frames(_grid(x, dim), a, b, *(_grid(y, dim) for y in averages))
        ctx.set_materialize_grads(False)
        ctx.coefficients, ctx.slopes, ctx.dim = (a, b), slopes, dim
        ctx.save_for_backward(x, *logits, *averages)
        return averages[:len(logits)]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        x, *rest = ctx.saved_tensors
        logits, averages = rest[:len(grads)], rest[len(grads):]
        need_x, need_logits = ctx.needs_input_grad[0], any(ctx.needs_input_grad[2:])
        if all(g is None for g in grads):
            return (None,) * (2 + len(logits))
        if any(_transformed(g) for g in grads):  # torch.func (vmap): differentiate the loop
            def loop(x, *logits):
                columns = _columns(x, ctx.dim)
                return [ema_loop(columns, torch.sigmoid(logit)).view(x.shape)
                        for logit in logits]
            grad_x, *grad_logits = _loop_gradients(
                loop, (x, *logits), (need_x,) + (need_logits,) * len(logits), grads)
            return grad_x, None, *grad_logits
        grads = [torch.zeros_like(x) if g is None else g.contiguous() for g in grads]
        if len(grads) == 1:  # one average was run twice: the copy gets no gradient
            grads.append(torch.zeros_like(x))
        slopes, slope_columns = ctx.slopes
        if not need_x:  # the alphas only: forward sensitivities, three reads in time order
            totals = scans.average_sensitivities(*(_grid(t, ctx.dim) for t in (x, *grads)),
                                                 *ctx.coefficients, slope_columns)
            return None, None, *_logit_gradients(logits, totals)
        grad_x = scans.new_like(x)
        grad_a = scans.average_adjoint(
            *(_grid(t, ctx.dim) for t in (x, *averages, *grads)), *ctx.coefficients,
            _grid(grad_x, ctx.dim), need_logits)
        grad_logits = (_logit_gradients(logits, _chained(grad_a, slopes)) if need_logits
                       else [None] * len(logits))
        return grad_x, None, *grad_logits


def _grid(x: torch.Tensor, dim: int) -> np.ndarray:
    """The memory of a contiguous CPU tensor ``x`` as a ``(rows, T, features)`` array: every
    axis before ``dim`` a row, every axis after it a feature."""
    return _columns(x.detach(), dim).numpy()


def _columns(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` as ``(rows, T, features)``: every axis before ``dim`` a row, every axis after it a
    feature (a view when ``x`` is contiguous)."""
    shape = x.shape
    return x.reshape(math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:]))


def _transformed(tensor: torch.Tensor | None) -> bool:
    """Whether ``tensor`` is batched by ``vmap`` (``torch.func``, or
    ``torch.autograd.functional.jacobian(..., vectorize=True)``), which compiled kernels cannot
    see into."""
    functorch = torch._C._functorch
    return tensor is not None and (functorch.is_functorch_wrapped_tensor(tensor)
                                   or functorch.is_legacy_batchedtensor(tensor))


def _loop_gradients(form, inputs, needed, grads):
    """The gradients of the outputs of ``form(*inputs)``, a frame loop of plain torch
    operations, with respect to the ``inputs`` that are ``needed`` (None for the others), for
    output gradients ``grads`` (None where an output has none) that a ``torch.func`` transform
    has wrapped, which compiled kernels cannot see into (slow)."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(need) for t, need in zip(inputs, needed)]
        pairs = [(y, g) for y, g in zip(form(*leaves), grads) if g is not None]
        wanted = [leaf for leaf, need in zip(leaves, needed) if need]
        found = iter(torch.autograd.grad([y for y, _ in pairs], wanted,
                                         [g for _, g in pairs], allow_unused=True))
    return [next(found) if need else None for need in needed]


class _CompiledWeightedSums(torch.autograd.Function):
    """``s_k = sum_t w_k[t] x[t]`` along axis ``dim`` of ``x`` for the last-frame weights
    ``w (2, T)`` of the two logits (:func:`_last_frame_weights`), through
    :func:`hdlib.models.scans.weighted_sums` (one read of ``x``). Backward:
    ``dL/dx[t] = sum_k w_k[t] g_k`` and ``dL/dw_k[t] = <g_k, x[t]>``, times the slopes of
    :func:`_last_frame_table` for the logits."""

    @staticmethod
    def forward(ctx, x, dim, logit_fast, logit_slow):
        x = x.contiguous()
        columns = _grid(x, dim)
        weights, slopes = _last_frame_table((logit_fast.item(), logit_slow.item()),
                                            x.shape[dim], x.dtype)
        shape = x.shape[:dim] + x.shape[dim + 1:]
        sums = x.new_empty((2, *shape))
        scans.weighted_sums(columns, weights, sums.numpy().reshape(2, columns.shape[0], -1))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, logit_fast, logit_slow)
        ctx.weights, ctx.slopes, ctx.dim = weights, slopes, dim
        return sums[0], sums[1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_fast, grad_slow):
        x, *logits = ctx.saved_tensors
        if grad_fast is None and grad_slow is None:
            return None, None, None, None
        columns = _columns(x, ctx.dim)
        g = torch.stack([torch.zeros(x.shape[:ctx.dim] + x.shape[ctx.dim + 1:], dtype=x.dtype)
                         if gk is None else gk for gk in (grad_fast, grad_slow)])
        g = g.view(2, columns.shape[0], -1)
        grad_x, grad_logits = None, [None, None]
        if ctx.needs_input_grad[0]:
            w = torch.tensor(ctx.weights)  # a copy: the array belongs to the cached table
            grad_x = torch.einsum("kt,krf->rtf", w, g).view(x.shape)
        if any(ctx.needs_input_grad[2:]):
            grad_w = torch.einsum("krf,rtf->kt", g, columns).double().numpy()
            grad_logits = _logit_gradients(logits, _chained(grad_w, ctx.slopes))
        return grad_x, None, *grad_logits


#: Run the summariser's averages and the relaxation through the compiled kernels when the input
#: is a float tensor on the CPU (tests switch it off to check the torch forms, which serve every
#: other device).
COMPILED = True


def _compiled(x: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether ``x`` (with the other inputs ``others``) goes through the compiled kernels: a
    non-empty float CPU tensor, and no input wrapped by a ``torch.func`` transform."""
    return (COMPILED and x.device.type == "cpu" and not x.is_meta and x.numel() > 0
            and x.dtype in (torch.float32, torch.float64)
            and not any(map(_transformed, (x, *others))))


def _averages(x: torch.Tensor, logits: list[torch.Tensor], dim: int) -> list[torch.Tensor]:
    """Both corrected averages of ``x`` along ``dim``: compiled on the CPU, the torch frame
    loop elsewhere, the reference loop under ``vmap``."""
    if _compiled(x, *logits):
        return list(_CompiledAverages.apply(x, dim, *logits))
    if any(map(_transformed, (x, *logits))):  # torch.func: plain torch operations only
        return [ema_loop(x.movedim(dim, -2), torch.sigmoid(logit)).movedim(-2, dim)
                for logit in logits]
    decays = _bias_corrected_decays(torch.stack(logits), x.shape[dim])
    return list(_ExponentialAverages.apply(x, decays, dim))


def _time_axis(x: torch.Tensor) -> int:
    """Time is axis 2 of a feature map ``(B, C, T, H, W)`` and axis -2 of ``(..., T, F)``."""
    validate.tensor("x", x, ndim=(2, 3, 5))
    return 2 if x.dim() == 5 else x.dim() - 2


def _last_frame_weights(logits: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``w[k, t] = (1 - alpha_k) alpha_k^(T-1-t) / (1 - alpha_k^T)`` (float64, shape
    ``logits.shape + (T,)``): the weight of frame ``t`` in the last frame of the corrected
    average of ``alpha_k = sigmoid(logits[k])``."""
    log_alpha = torch.nn.functional.logsigmoid(logits.double())[..., None]
    lag = torch.arange(n_frames - 1, -1, -1, dtype=torch.float64, device=logits.device)
    return (torch.sigmoid(-logits.double())[..., None] * torch.exp(log_alpha * lag)
            / -torch.expm1(log_alpha * n_frames))


def _last_frame_weight_slopes(logits: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``dw_k[t] / dlogit_k`` of :func:`_last_frame_weights` (float64, same shape), from
    ``d log w / dlogit = -alpha + (1 - alpha) (T - 1 - t + T alpha^T / (1 - alpha^T))``."""
    log_alpha = torch.nn.functional.logsigmoid(logits.double())[..., None]
    rest = torch.sigmoid(-logits.double())[..., None]  # 1 - alpha
    lag = torch.arange(n_frames - 1, -1, -1, dtype=torch.float64, device=logits.device)
    at_end = n_frames * torch.exp(n_frames * log_alpha) / -torch.expm1(n_frames * log_alpha)
    log_slope = -torch.sigmoid(logits.double())[..., None] + rest * (lag + at_end)
    return _last_frame_weights(logits, n_frames) * log_slope


def _bias_corrected_decays(logits: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``a[k, t] = alpha_k (1 - alpha_k^t) / (1 - alpha_k^(t+1))`` (float64, shape
    ``logits.shape + (T,)``) for ``alpha_k = sigmoid(logits[k])``.

    With ``w[t] = 1 - alpha^(t+1)``, the corrected average ``y[t] = acc[t] / w[t]`` of
    ``acc[t] = alpha acc[t-1] + (1 - alpha) x[t]`` obeys ``y[t] = a[t] y[t-1] + (1 - a[t]) x[t]``
    (``w[t] = alpha w[t-1] + 1 - alpha``), one recurrence with ``a[0] = 0``.
    """
    log_alpha = torch.nn.functional.logsigmoid(logits.double())[..., None]
    steps = torch.arange(n_frames + 1, dtype=torch.float64, device=logits.device)
    kept = -torch.expm1(log_alpha * steps)
    return log_alpha.exp() * kept[..., :-1] / kept[..., 1:]


def _bias_corrected_decay_slopes(logits: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``da_k[t] / dlogit_k`` of :func:`_bias_corrected_decays` (float64, same shape).

    With ``D[t] = 1 - alpha^(t+1)`` and ``S[t] = sum_{j<t} (j + 1) alpha^j (1 - alpha)``
    (a sum of positive terms, so no cancellation),
    ``da[t]/dalpha = (1 - alpha) S[t] / D[t]^2`` and ``dalpha/dlogit = alpha (1 - alpha)``.
    """
    alpha = torch.sigmoid(logits.double())[..., None]
    rest = torch.sigmoid(-logits.double())[..., None]  # 1 - alpha, exact near alpha = 1
    log_alpha = torch.nn.functional.logsigmoid(logits.double())[..., None]
    lag = torch.arange(n_frames, dtype=torch.float64, device=logits.device)
    terms = (lag + 1) * torch.exp(log_alpha * lag) * rest
    partial = torch.cumsum(terms, dim=-1) - terms  # S[t]: the terms before t
    kept = -torch.expm1(log_alpha * (lag + 1))  # D[t]
    return alpha * rest ** 2 * partial / kept ** 2


class TemporalSummarizer(nn.Module):
    """Fast and slow exponential moving averages, ``acc[t] = alpha acc[t-1] + (1 - alpha) x[t]``.

    The alphas are stored as logits (``alpha = sigmoid(logit)`` stays in (0, 1)); their time
    constants are ``1 / (1 - alpha)`` frames. An average that starts at zero underestimates its
    input for the first few time constants; it is divided by ``1 - alpha^(t+1)``, the weight its
    first ``t + 1`` frames carry, so that a constant input is summarised as itself from frame 0.

    Inputs are ``(..., T, F)`` or feature maps ``(B, C, T, H, W)`` with time on its own axis.
    :meth:`forward` returns every frame of both averages, in one pass over the input along its
    native time axis, with the adjoint recurrence as its backward pass: on the CPU through the
    compiled kernels of :mod:`hdlib.models.scans` (:class:`_CompiledAverages`), elsewhere frame
    by frame through torch operations (:class:`_ExponentialAverages`). :meth:`last_frame`
    returns only the last frame of each, one weighted sum over time.
    """

    def __init__(self, alpha_fast: float = 0.74, alpha_slow: float = 0.95,
                 learnable_alphas: bool = True):
        super().__init__()
        for name, value in (("alpha_fast", alpha_fast), ("alpha_slow", alpha_slow)):
            value = validate.float_in(name, value, 0.0, 1.0, low_open=True, high_open=True)
            logit = torch.logit(torch.tensor(value, dtype=torch.float64)).float()
            if learnable_alphas:
                setattr(self, f"{name}_logit", nn.Parameter(logit))
            else:
                self.register_buffer(f"{name}_logit", logit)

    @property
    def alpha_fast(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_fast_logit)

    @property
    def alpha_slow(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_slow_logit)

    @staticmethod
    def ema(x: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
        """Bias-corrected EMA of ``x`` (``(..., T, F)`` or ``(B, C, T, H, W)``) along time, all
        frames at once."""
        return _averages(x, [logit], _time_axis(x))[0]

    @torch.no_grad()
    def kernels(self, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fast, slow)`` weights ``(1 - alpha) alpha^k`` that each average gives the frame
        ``k`` frames back, ``k < n_frames``, before the start-up correction."""
        n_frames = validate.positive_int("n_frames", n_frames)
        lag = torch.arange(n_frames, dtype=torch.float32)
        return tuple((1 - a) * a ** lag for a in (self.alpha_fast, self.alpha_slow))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fast, slow)`` summaries of every frame of ``x`` (``(..., T, F)`` or
        ``(B, C, T, H, W)``), each of ``x``'s shape."""
        fast, slow = _averages(x, [self.alpha_fast_logit, self.alpha_slow_logit],
                               _time_axis(x))
        return fast, slow

    def last_frame(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fast, slow)`` at the last frame only, ``x``'s shape without the time axis.

        ``y[T-1] = sum_t (1 - alpha) alpha^(T-1-t) x[t] / (1 - alpha^T)``: one weighted sum
        over time, a single read of the input in its own layout (compiled on the CPU, a batched
        matrix product against the two weight rows elsewhere).
        """
        dim = _time_axis(x)
        logits = self.alpha_fast_logit, self.alpha_slow_logit
        if _compiled(x, *logits):
            return _CompiledWeightedSums.apply(x, dim, *logits)
        T = x.shape[dim]
        weights = _last_frame_weights(torch.stack(logits), T)  # (2, T)
        weights = weights.to(x.dtype)
        lead, trail = x.shape[:dim], x.shape[dim + 1:]
        columns = _columns(x, dim)
        if columns.shape[-1] == 1:  # time is the last axis that varies: one matrix product
            summary = (columns[..., 0] @ weights.T)[..., None]
        else:  # bmm on an expanded view; matmul would copy x when the weights need a gradient
            summary = torch.bmm(weights.expand(columns.shape[0], 2, T), columns)
        fast, slow = summary.unbind(1)  # (lead, trail) each
        return fast.reshape(*lead, *trail), slow.reshape(*lead, *trail)


def time_constants(lambda_fix: float, lambda_sac: float, alpha_fast: float,
                   alpha_slow: float) -> dict:
    """The time constants the four constants set: ``tau_fix_ms = 1000 / lambda_fix``,
    ``tau_sac_ms = 1000 / lambda_sac`` (rates in 1/s) and ``tau_fast_frames = 1 / (1 -
    alpha_fast)``, ``tau_slow_frames = 1 / (1 - alpha_slow)`` (the mean lag of an average's
    weights ``(1 - alpha) alpha^k``, plus one frame)."""
    return {"tau_fix_ms": 1000 / lambda_fix, "tau_sac_ms": 1000 / lambda_sac,
            "tau_fast_frames": 1 / (1 - alpha_fast), "tau_slow_frames": 1 / (1 - alpha_slow)}


def relax_at_rate(drive: torch.Tensor, rate: float, dt: float = 1 / 120,
                  initial: torch.Tensor | None = None) -> torch.Tensor:
    """The relaxation ``A[t] = a[t] + (A[t-1] - a[t]) exp(-rate dt)`` of a drive ``(..., T, F)``
    at one constant ``rate`` of either sign (default start 0). With ``rate < 0`` the factor
    ``exp(-rate dt)`` exceeds 1 and the state grows as ``exp(|rate| t)``: what a rate kept as a
    raw parameter does once an update pushes it below zero (:class:`PolarDynamics` stores
    ``log lambda`` instead, so it cannot)."""
    log_d = torch.full(drive.shape[-2:-1], -float(rate) * validate.positive_float("dt", dt))
    start = torch.zeros_like(drive[..., 0, :]) if initial is None else initial
    return linear_recurrence(log_d, -torch.expm1(log_d)[:, None] * drive, start)


def ema_loop(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Reference form of :meth:`TemporalSummarizer.ema`: a Python loop over frames."""
    acc = torch.zeros_like(x[..., 0, :])
    out = []
    for t in range(x.shape[-2]):
        acc = alpha * acc + (1 - alpha) * x[..., t, :]
        out.append(acc / (1 - alpha ** (t + 1)))
    return torch.stack(out, dim=-2)


# ---------------------------------------------------------------------------- configurations
CONFIG_DIR = Path(__file__).parent / "configs"
CONFIG_KEYS = {
    "lambda_fix": lambda n, v: validate.float_in(n, v, 0.0, 1000.0, low_open=True),
    "lambda_sac": lambda n, v: validate.float_in(n, v, 0.0, 1000.0, low_open=True),
    "alpha_fast": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "alpha_slow": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "learnable_alphas": validate.boolean,
}


def available_configs() -> list[str]:
    """Names of the configurations shipped with hdlib."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str) -> dict:
    """The temporal constants of a configuration (a shipped name or a YAML path), validated.

    The file holds ``recurrent: {type: polar, params: {...}}`` with the keys of
    :data:`CONFIG_KEYS`; a missing key takes :class:`PolarDynamics`/:class:`TemporalSummarizer`
    defaults; an unknown key or an out-of-range value is a ``ValueError`` naming it.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ValueError(f"config must be one of {available_configs()} or a YAML path; "
                             f"got {name_or_path!r}")
    try:
        with open(path) as handle:
            document = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"config {str(path)!r} could not be read: {error}") from None
    recurrent = document.get("recurrent") if isinstance(document, dict) else None
    if not isinstance(recurrent, dict) or recurrent.get("type") != "polar":
        raise ValueError(f"{path}: expected a 'recurrent' section with type: polar")
    params = recurrent.get("params") or {}
    unknown = sorted(set(params) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; expected {sorted(CONFIG_KEYS)}")
    defaults = {"lambda_fix": 10.0, "lambda_sac": 40.0, "alpha_fast": 0.74, "alpha_slow": 0.95,
                "learnable_alphas": True}
    merged = {**defaults, **params}
    return {key: CONFIG_KEYS[key](f"{path.name}: {key}", value) for key, value in merged.items()}
