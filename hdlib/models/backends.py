"""Fast forms of the models' recurrences, chosen by one ``backend=`` argument.

Every model defines its recurrence once, as a plain torch function that reads like the
document's equation (``"reference"``): :func:`hdlib.models.leaky_ring.leaky_ring_step`,
:func:`hdlib.models.ei_ring.ei_ring_step`, :func:`hdlib.models.eirnn.eirnn_step`,
:func:`hdlib.models.polar.exponential_average` and
:func:`hdlib.models.polar.amplitude_relaxation`. The ring models' ``"torch"`` backend is a
whole-sequence autograd function with a written-out backward pass, in the model's own module;
this module holds :func:`resolve`, which every model calls, and the Polar model's fast forms.

Both temporal stages of :mod:`hdlib.models.polar` are the first-order recurrence

    s[t] = d[t] s[t-1] + (1 - d[t]) x[t]

along the time axis (``-2``) of ``x (..., T, F)``: the amplitude relaxation with
``d[t] = exp(-lambda[t] dt)`` (:func:`hdlib.models.polar.amplitude_relaxation`) and the
bias-corrected exponential average with ``d = alpha`` (:func:`hdlib.models.polar.
exponential_average`). Those two functions are the model's definition and the ``"reference"``
backend. The others compute the same values faster:

- ``"torch"``: the closed form of :func:`linear_recurrence`, matrix products over chunks of
  frames, with autograd's backward pass. No Python loop over frames and no host
  synchronisation, so it runs on any device, and under ``torch.func`` transforms.
- ``"numba"``: compiled kernels (:mod:`hdlib.models.numba_kernels`) that read the input once
  in its own memory layout, with the adjoint recurrence written out as the backward pass.
  CPU only, float32/float64, not under ``torch.func`` transforms.

:func:`resolve` picks the backend: the one asked for, else ``"numba"`` for a CPU float tensor
and ``"torch"`` on every other device.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .. import validate
from . import numba_kernels

BACKENDS = ("reference", "torch", "numba")
_NUMBA_DTYPES = (torch.float32, torch.float64)

#: Frames per block of :func:`linear_recurrence`: 16 measured fastest on the CPU at the
#: document's sizes (8 to 64 tried; work per element grows with the block, the number of
#: blocks the other way).
CHUNK = 16


def resolve(backend: str | None, x: torch.Tensor, available: tuple = BACKENDS) -> str:
    """The backend that runs on ``x``: ``backend`` itself, checked against ``available``, or
    the default for ``x``'s device (``"numba"`` for float32/float64 on the CPU when available,
    ``"torch"`` otherwise). The ring models offer ``("reference", "torch")``."""
    on_cpu = x.device.type == "cpu" and x.dtype in _NUMBA_DTYPES
    if backend is None:
        return "numba" if on_cpu and "numba" in available else "torch"
    backend = validate.choice("backend", backend, available)
    if backend == "numba" and not on_cpu:
        raise ValueError(f"backend 'numba' runs float32/float64 tensors on the CPU; got "
                         f"{x.dtype} on {x.device} (use backend='torch')")
    return backend


def chosen(backend: str | None, available: tuple = BACKENDS) -> str | None:
    """A model's ``backend`` argument, checked when the model is built: ``None`` (the device's
    default, decided per call by :func:`resolve`) or one of ``available``."""
    return None if backend is None else validate.choice("backend", backend, available)


# ----------------------------------------------------------------------------- torch backend
def _transfer_matrix(c: torch.Tensor) -> torch.Tensor:
    """``M[..., t, j] = exp(c[t] - c[j])`` for ``j <= t``, 0 above the diagonal, from the
    cumulative log decays ``c (..., n)``."""
    n = c.shape[-1]
    upper = torch.ones(n, n, dtype=torch.bool, device=c.device).triu(1)
    difference = torch.where(upper, torch.zeros((), dtype=c.dtype, device=c.device),
                             c[..., :, None] - c[..., None, :])
    return torch.where(upper, torch.zeros((), dtype=c.dtype, device=c.device),
                       torch.exp(difference))


def _pad_time(x: torch.Tensor, extra: int, dim: int) -> torch.Tensor:
    if not extra:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def linear_recurrence(log_decay: torch.Tensor, x: torch.Tensor,
                      initial: torch.Tensor | None = None, gain: torch.Tensor | None = None,
                      scale: torch.Tensor | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """``scale[t] s[t]`` for every frame of ``s[t] = d[t] s[t-1] + gain[t] x[t]``, ``x`` of
    shape ``(..., T, F)``, from ``s[-1] = initial (..., F)`` (default 0). ``log_decay = log d``,
    ``gain`` and ``scale`` are ``(..., T)``, broadcastable to ``x[..., 0]`` (``gain`` and
    ``scale`` default to 1); ``log_decay`` may be complex (a decay with a rotation).

    The closed form ``s[t] = exp(c[t]) s[-1] + sum_{j<=t} exp(c[t] - c[j]) gain[j] x[j]``, with
    ``c[t] = sum_{k<=t} log d[k]``, taken in two levels so that no exponent is positive for a
    decay below 1: inside each chunk of ``chunk`` frames it is one lower-triangular matrix
    product from a zero start (``gain`` and ``scale`` folded into the small matrices, so the
    input is read once); the states entering the chunks follow the same closed form one level
    up (one frame per chunk, decaying by the chunk's total); each chunk then adds its entering
    state times ``scale exp(c)``. Work and memory grow linearly with ``T``.
    """
    T = x.shape[-2]
    n = -(-T // chunk)
    extra = n * chunk - T  # padded frames: decay 1 (log 0) and no input

    def chunks(values):  # (..., T) -> (..., n, C)
        return _pad_time(values, extra, -1).unflatten(-1, (n, chunk))

    c = torch.cumsum(chunks(log_decay), dim=-1)
    u = _pad_time(x, extra, -2).unflatten(-2, (n, chunk)).to(c.dtype)  # (..., n, C, F)
    weights = _transfer_matrix(c)  # (..., n, C, C), rows t, columns j
    if gain is not None:
        weights = weights * chunks(gain).to(c.dtype)[..., None, :]
    ends = weights[..., -1:, :] @ u  # each chunk's last state from a zero start
    totals = torch.cumsum(c[..., -1], dim=-1)  # (..., n): log decay up to each chunk's end
    ends = _transfer_matrix(totals) @ ends[..., 0, :]  # state after each chunk, zero start
    if initial is not None:
        ends = ends + torch.exp(totals)[..., None] * initial[..., None, :]
    first = (torch.zeros_like(ends[..., :1, :]) if initial is None
             else initial[..., None, :].to(ends.dtype).expand_as(ends[..., :1, :]))
    entering = torch.cat([first, ends[..., :-1, :]], dim=-2)  # (..., n, F)
    carried = torch.exp(c)
    if scale is not None:
        scale = chunks(scale).to(c.dtype)
        weights = weights * scale[..., :, None]
        carried = carried * scale
    states = (weights @ u).addcmul_(carried[..., None], entering[..., None, :])
    return states.flatten(-3, -2)[..., :T, :]


def _torch_averages(x: torch.Tensor, logits: list[torch.Tensor]) -> list[torch.Tensor]:
    T = x.shape[-2]
    steps = torch.arange(1, T + 1, dtype=x.dtype, device=x.device)
    averages = []
    for logit in logits:
        log_alpha = torch.nn.functional.logsigmoid(logit).to(x.dtype)
        corrected = 1 / -torch.expm1(log_alpha * steps)  # 1 / (1 - alpha^(t+1))
        averages.append(linear_recurrence(log_alpha.expand(T), x,
                                          gain=torch.sigmoid(-logit).to(x.dtype).expand(T),
                                          scale=corrected))
    return averages


def _torch_relaxation(drive, log_decay, initial):
    return linear_recurrence(log_decay, drive, initial, gain=-torch.expm1(log_decay))


# ----------------------------------------------------------------------------- numba backend
def _bias_corrected_decays(logits: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``a[k, t] = alpha_k (1 - alpha_k^t) / (1 - alpha_k^(t+1))`` (float64, ``(K, T)``) for
    ``alpha_k = sigmoid(logits[k])``.

    With ``w[t] = 1 - alpha^(t+1)``, the corrected average ``y[t] = acc[t] / w[t]`` of
    ``acc[t] = alpha acc[t-1] + (1 - alpha) x[t]`` obeys ``y[t] = a[t] y[t-1] + (1 - a[t]) x[t]``
    (``w[t] = alpha w[t-1] + 1 - alpha``), one recurrence with ``a[0] = 0``.
    """
    log_alpha = torch.nn.functional.logsigmoid(logits.double())[..., None]
    steps = torch.arange(n_frames + 1, dtype=torch.float64)
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
    lag = torch.arange(n_frames, dtype=torch.float64)
    terms = (lag + 1) * torch.exp(log_alpha * lag) * rest
    partial = torch.cumsum(terms, dim=-1) - terms  # S[t]: the terms before t
    kept = -torch.expm1(log_alpha * (lag + 1))  # D[t]
    return alpha * rest ** 2 * partial / kept ** 2


@functools.lru_cache(maxsize=32)
def _decay_table(logits: tuple[float, ...], n_frames: int, dtype: torch.dtype):
    """The kernels' coefficients ``(a, b)`` (:func:`hdlib.models.numba_kernels.coefficients`)
    of the averages with these logits over ``n_frames`` frames, and their slopes
    (:func:`_bias_corrected_decay_slopes`), ``(K, T)`` float64 and as the kernels' columns.
    Cached by value: between two optimiser steps, every call reuses them."""
    values = torch.tensor(logits, dtype=torch.float64)
    decays = _bias_corrected_decays(values, n_frames).numpy()
    slopes = _bias_corrected_decay_slopes(values, n_frames).numpy()
    numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    return (*numba_kernels.coefficients(decays, numpy_dtype), slopes,
            numba_kernels.columns(slopes, numpy_dtype))


def _grid(x: torch.Tensor) -> np.ndarray:
    """The memory of a contiguous CPU tensor ``x (..., T, F)`` as a ``(rows, T, F)`` array."""
    return x.detach().reshape(math.prod(x.shape[:-2]), *x.shape[-2:]).numpy()


def _logit_gradients(logits, totals) -> list[torch.Tensor]:
    """The logits' gradients (0-d tensors of each logit's dtype) from their values ``totals``
    (one float each; a second total beyond a single logit is dropped)."""
    return [torch.tensor(float(total), dtype=logit.dtype) for logit, total in zip(logits, totals)]


class _NumbaAverages(torch.autograd.Function):
    """The corrected averages of ``x (..., T, F)`` for one or two 0-d ``logits``, through the
    kernels: one pass over ``x`` forward. When ``x`` needs a gradient, the backward pass is the
    adjoint recurrence backwards in time,

        lam_k[t] = g_k[t] + a_k[t+1] lam_k[t+1],
        dL/dx[t] = sum_k (1 - a_k[t]) lam_k[t],   dL/da_k[t] = <lam_k[t], y_k[t-1] - x[t]>,

    and the logits' gradients are ``sum_t dL/da_k[t] da_k[t]/dlogit_k``; when only the logits
    need one, it carries ``dy_k/dlogit_k`` forward in time instead
    (:func:`hdlib.models.numba_kernels.average_sensitivities`)."""

    @staticmethod
    def forward(ctx, x, *logits):
        x = x.contiguous()
        a, b, *slopes = _decay_table(tuple(logit.item() for logit in logits), x.shape[-2],
                                     x.dtype)
        averages = numba_kernels.new_like(x), numba_kernels.new_like(x)  # one may run twice
        numba_kernels.average_frames(_grid(x), a, b, *map(_grid, averages))
        ctx.set_materialize_grads(False)
        ctx.coefficients, ctx.slopes = (a, b), slopes
        ctx.save_for_backward(x, *logits, *averages)
        return averages[:len(logits)]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        x, *rest = ctx.saved_tensors
        logits, averages = rest[:len(grads)], rest[len(grads):]
        need_x, need_logits = ctx.needs_input_grad[0], any(ctx.needs_input_grad[1:])
        if all(g is None for g in grads):
            return (None,) * (1 + len(logits))
        grads = [torch.zeros_like(x) if g is None else g.contiguous() for g in grads]
        if len(grads) == 1:  # one average was run twice: the copy gets no gradient
            grads.append(torch.zeros_like(x))
        slopes, slope_columns = ctx.slopes
        if not need_x:
            totals = numba_kernels.average_sensitivities(
                *map(_grid, (x, *grads)), *ctx.coefficients, slope_columns)
            return None, *_logit_gradients(logits, totals)
        grad_x = numba_kernels.new_like(x)
        grad_a = numba_kernels.average_adjoint(
            *map(_grid, (x, *averages, *grads)), *ctx.coefficients, _grid(grad_x), need_logits)
        if not need_logits:
            return grad_x, *([None] * len(logits))
        totals = np.einsum("kt,kt->k", grad_a[:len(slopes)], slopes)
        return grad_x, *_logit_gradients(logits, totals)


class _NumbaRelaxation(torch.autograd.Function):
    """``s[t] = d[t] s[t-1] + (1 - d[t]) x[t]`` from ``s[-1] = initial`` for ``x (..., T, F)``
    with one decay per trial and frame, ``decay (trials, T)``, shared by each trial's
    consecutive rows, through the kernels. The backward
    pass is the adjoint recurrence,

        lam[t] = g[t] + d[t+1] lam[t+1],
        dL/dx[t] = (1 - d[t]) lam[t],   dL/dd[t] = <lam[t], s[t-1] - x[t]>,
        dL/dinitial = d[0] lam[0]."""

    @staticmethod
    def forward(ctx, x, decay, initial):
        x, initial = x.contiguous(), initial.contiguous()
        rows = _grid(x)
        padded = np.zeros((decay.shape[0], decay.shape[1] + 1), dtype=rows.dtype)
        padded[:, :-1] = decay.detach().numpy()
        out = numba_kernels.new_like(x)
        start = initial.detach().numpy().reshape(rows.shape[0], -1)
        numba_kernels.relax(rows, padded, start, _grid(out))
        ctx.padded = padded
        ctx.save_for_backward(x, decay, initial, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, decay, initial, out = ctx.saved_tensors
        need_x, need_d, need_initial = ctx.needs_input_grad
        grad_x = numba_kernels.new_like(x) if need_x else None
        rows = _grid(x)
        start = initial.detach().numpy().reshape(rows.shape[0], -1)
        grad_d, grad_start = numba_kernels.relax_adjoint(
            rows, ctx.padded, start, _grid(out), _grid(grad.contiguous()),
            None if grad_x is None else _grid(grad_x), need_d)
        return (grad_x, torch.from_numpy(grad_d).to(decay.dtype) if need_d else None,
                torch.from_numpy(grad_start).view(initial.shape) if need_initial else None)


def _numba_averages(x: torch.Tensor, logits: list[torch.Tensor]) -> list[torch.Tensor]:
    if x.numel() == 0:  # nothing for the kernels to do
        return _torch_averages(x, logits)
    return list(_NumbaAverages.apply(x, *logits))


def _numba_relaxation(drive, log_decay, initial):
    if drive.numel() == 0:
        return _torch_relaxation(drive, log_decay, initial)
    rows = drive.shape[:-1]
    lead = (1,) * (len(rows) - log_decay.dim()) + tuple(log_decay.shape[:-1])
    shared = len(lead)  # the kernels take one decay per trial, shared by its consecutive rows
    while shared > 0 and lead[shared - 1] == 1:
        shared -= 1
    trials = rows[:shared] + (drive.shape[-2],)
    decay = log_decay.reshape(lead + (-1,))[
        (Ellipsis,) + (0,) * (len(lead) - shared) + (slice(None),)].expand(trials)
    decay = decay.reshape(-1, drive.shape[-2]).exp().to(drive.dtype)
    start = initial.to(drive.dtype).expand(drive[..., 0, :].shape)
    return _NumbaRelaxation.apply(drive, decay, start)


#: ``averages(x, logits) -> [y_k]`` and ``relaxation(drive, log_decay, initial) -> states`` of
#: each fast backend (the reference forms live with the model in :mod:`hdlib.models.polar`).
AVERAGES = {"torch": _torch_averages, "numba": _numba_averages}
RELAXATION = {"torch": _torch_relaxation, "numba": _numba_relaxation}
