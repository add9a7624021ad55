"""Compiled (numba) passes of the temporal summariser's two exponential averages on the CPU.

The input is viewed as ``x (R, T, F)``: rows (every axis before time), frames, and the
features of one frame (every axis after time), which is both ``(..., T, F)`` and a feature map
``(B, C, T, H, W)`` in its own memory layout. With the per-frame coefficients ``a_k[t]`` of
average ``k`` (``k = 0, 1``; ``b = 1 - a``):

- :func:`average_frames`: ``y_k[t] = a_k[t] y_k[t-1] + b_k[t] x[t]`` (``y_k[-1] = 0``), every
  frame, in one read of ``x`` and one write of each average;
- :func:`average_adjoint`: the backward pass, the same recurrence run backwards in time,
  ``lam_k[t] = g_k[t] + a_k[t+1] lam_k[t+1]``, ``dL/dx[t] = sum_k b_k[t] lam_k[t]`` and
  ``dL/da_k[t] = sum_{rows, features} lam_k[t] (y_k[t-1] - x[t])``;
- :func:`weighted_sums`: ``s_k = sum_t w_k[t] x[t]``, the last frame of each average as one
  read of ``x``.

Rows are independent and shared between threads (as many as torch uses); the sums over rows
of ``dL/da`` are taken per fixed group of rows, then added in a fixed order, so results do not
depend on the number of threads. A frame of one feature (``F = 1``, time contiguous in
memory) is run four rows at a time, so that eight recurrences are in flight at once instead
of waiting on each other.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

#: Rows per group of the sums over rows in :func:`average_adjoint` (fixed, so that the order
#: of additions, hence the result, does not depend on the number of threads).
ROW_GROUPS = 32


def use_torch_threads() -> None:
    """Run the kernels on as many threads as torch uses (``torch.set_num_threads``).

    The first call starts numba's thread pool. With its OpenMP layer, that pool shares torch's
    OpenMP runtime and sets its thread count to numba's, so torch's count is put back."""
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@njit(parallel=True, cache=True)
def _frames_wide(x, a, b, y0, y1):
    R, T, F = x.shape
    for r in prange(R):
        for f in range(F):
            y0[r, 0, f] = b[0, 0] * x[r, 0, f]
            y1[r, 0, f] = b[0, 1] * x[r, 0, f]
        for t in range(1, T):
            a0, b0, a1, b1 = a[t, 0], b[t, 0], a[t, 1], b[t, 1]
            # frames as 1-D views: the inner loop then indexes by f alone and vectorises
            xt, now0, now1 = x[r, t], y0[r, t], y1[r, t]
            before0, before1 = y0[r, t - 1], y1[r, t - 1]
            for f in range(F):
                v = xt[f]
                now0[f] = a0 * before0[f] + b0 * v
                now1[f] = a1 * before1[f] + b1 * v


@njit(parallel=True, cache=True)
def _frames_single_feature(x, a, b, y0, y1):
    R, T = x.shape
    for q in prange((R + 3) // 4):
        r = 4 * q
        if r + 4 <= R:
            p0 = p1 = p2 = p3 = s0 = s1 = s2 = s3 = x.dtype.type(0)
            for t in range(T):
                a0, b0, a1, b1 = a[t, 0], b[t, 0], a[t, 1], b[t, 1]
                v0, v1, v2, v3 = x[r, t], x[r + 1, t], x[r + 2, t], x[r + 3, t]
                p0 = a0 * p0 + b0 * v0
                p1 = a0 * p1 + b0 * v1
                p2 = a0 * p2 + b0 * v2
                p3 = a0 * p3 + b0 * v3
                s0 = a1 * s0 + b1 * v0
                s1 = a1 * s1 + b1 * v1
                s2 = a1 * s2 + b1 * v2
                s3 = a1 * s3 + b1 * v3
                y0[r, t], y0[r + 1, t], y0[r + 2, t], y0[r + 3, t] = p0, p1, p2, p3
                y1[r, t], y1[r + 1, t], y1[r + 2, t], y1[r + 3, t] = s0, s1, s2, s3
        else:
            for row in range(r, R):
                p = s = x.dtype.type(0)
                for t in range(T):
                    v = x[row, t]
                    p = a[t, 0] * p + b[t, 0] * v
                    s = a[t, 1] * s + b[t, 1] * v
                    y0[row, t], y1[row, t] = p, s


#: Let the compiler reorder the sums over features, so that they vectorise (no NaN/inf
#: assumptions, unlike ``fastmath=True``).
_REORDER = {"reassoc", "contract"}


@njit(parallel=True, cache=True, fastmath=_REORDER)
def _adjoint(x, y0, y1, g0, g1, a, b, grad_x, need_x, grad_a):
    R, T, F = x.shape
    groups = grad_a.shape[0]
    for group in prange(groups):
        lam0 = np.empty(F, dtype=x.dtype)
        lam1 = np.empty(F, dtype=x.dtype)
        zero = np.zeros(F, dtype=x.dtype)  # y[-1]
        for r in range(group * R // groups, (group + 1) * R // groups):
            lam0[:] = 0
            lam1[:] = 0
            for t in range(T - 1, -1, -1):
                a0 = a[t + 1, 0] if t < T - 1 else a.dtype.type(0)
                a1 = a[t + 1, 1] if t < T - 1 else a.dtype.type(0)
                # frames as 1-D views: the inner loop then indexes by f alone and vectorises
                xt, h0, h1 = x[r, t], g0[r, t], g1[r, t]
                before0 = y0[r, t - 1] if t > 0 else zero
                before1 = y1[r, t - 1] if t > 0 else zero
                sum0 = sum1 = x.dtype.type(0)
                for f in range(F):
                    l0 = h0[f] + a0 * lam0[f]
                    l1 = h1[f] + a1 * lam1[f]
                    lam0[f] = l0
                    lam1[f] = l1
                    v = xt[f]
                    sum0 += l0 * (before0[f] - v)
                    sum1 += l1 * (before1[f] - v)
                if need_x:
                    out, b0, b1 = grad_x[r, t], b[t, 0], b[t, 1]
                    for f in range(F):
                        out[f] = b0 * lam0[f] + b1 * lam1[f]
                grad_a[group, 0, t] += sum0
                grad_a[group, 1, t] += sum1


@njit(parallel=True, cache=True)
def _adjoint_single_feature(x, y0, y1, g0, g1, a, b, grad_x, need_x, grad_a):
    R, T = x.shape
    groups = grad_a.shape[0]
    for group in prange(groups):
        for r in range(group * R // groups, (group + 1) * R // groups):
            l0 = l1 = x.dtype.type(0)
            for t in range(T - 1, -1, -1):
                if t < T - 1:
                    l0 = g0[r, t] + a[t + 1, 0] * l0
                    l1 = g1[r, t] + a[t + 1, 1] * l1
                else:
                    l0, l1 = g0[r, t], g1[r, t]
                v = x[r, t]
                before0 = y0[r, t - 1] if t > 0 else x.dtype.type(0)
                before1 = y1[r, t - 1] if t > 0 else x.dtype.type(0)
                grad_a[group, 0, t] += l0 * (before0 - v)
                grad_a[group, 1, t] += l1 * (before1 - v)
                if need_x:
                    grad_x[r, t] = b[t, 0] * l0 + b[t, 1] * l1


@njit(parallel=True, cache=True)
def _weighted_sums(x, w, out):
    R, T, F = x.shape
    for r in prange(R):
        for f in range(F):
            out[0, r, f] = 0
            out[1, r, f] = 0
        for t in range(T):
            w0, w1 = w[0, t], w[1, t]
            for f in range(F):
                v = x[r, t, f]
                out[0, r, f] += w0 * v
                out[1, r, f] += w1 * v


@njit(parallel=True, cache=True, fastmath=_REORDER)
def _weighted_sums_single_feature(x, w, out):
    # time is contiguous: a dot product per row
    R, T = x.shape
    for r in prange(R):
        s0 = s1 = x.dtype.type(0)
        for t in range(T):
            v = x[r, t]
            s0 += w[0, t] * v
            s1 += w[1, t] * v
        out[0, r], out[1, r] = s0, s1


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _coefficients(a: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(a, 1 - a)`` in the input's dtype, C-contiguous (one compiled version per dtype)."""
    return np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(1 - a, dtype=dtype)


def average_frames(x: torch.Tensor, a: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Both averages of every frame of ``x (R, T, F)`` (contiguous) for coefficients
    ``a (T, 2)``; each output is ``x``'s shape."""
    use_torch_threads()
    y0, y1 = torch.empty_like(x), torch.empty_like(x)
    a, b = _coefficients(a, _array(x).dtype)
    if x.shape[2] == 1:
        _frames_single_feature(_array(x)[..., 0], a, b, _array(y0)[..., 0], _array(y1)[..., 0])
    else:
        _frames_wide(_array(x), a, b, _array(y0), _array(y1))
    return y0, y1


def average_adjoint(x: torch.Tensor, outputs: tuple[torch.Tensor, torch.Tensor],
                    grads: tuple[torch.Tensor, torch.Tensor], a: np.ndarray,
                    need_x: bool) -> tuple[torch.Tensor | None, np.ndarray]:
    """``(dL/dx or None, dL/da (2, T) float64)`` from the output gradients ``grads`` (each
    ``x``'s shape, contiguous) of :func:`average_frames`."""
    use_torch_threads()
    R, T, _ = x.shape
    dtype = _array(x).dtype
    a, b = _coefficients(a, dtype)
    grad_x = torch.empty_like(x) if need_x else x.new_empty(1, 1, 1)
    partial = np.zeros((min(R, ROW_GROUPS), 2, T))
    if x.shape[2] == 1:
        _adjoint_single_feature(*(_array(t)[..., 0] for t in (x, *outputs, *grads)), a, b,
                                _array(grad_x)[..., 0], need_x, partial)
    else:
        _adjoint(_array(x), *map(_array, outputs), *map(_array, grads), a, b, _array(grad_x),
                 need_x, partial)
    return (grad_x if need_x else None), partial.sum(axis=0)


def weighted_sums(x: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """``s[k, r, f] = sum_t weights[k, t] x[r, t, f]`` for ``x (R, T, F)`` (contiguous) and
    ``weights (2, T)``: ``(2, R, F)``."""
    use_torch_threads()
    R, T, F = x.shape
    out = x.new_empty(2, R, F)
    w = weights.astype(_array(x).dtype)
    if F == 1:
        _weighted_sums_single_feature(_array(x)[..., 0], w, _array(out)[..., 0])
    else:
        _weighted_sums(_array(x), w, _array(out))
    return out
