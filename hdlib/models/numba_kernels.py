"""The kernels of the numba backend (:mod:`hdlib.models.backends`): compiled CPU passes of the
Polar V1 model's two temporal stages, the summariser's two exponential averages and the
amplitude relaxation.

The input is viewed as ``x (R, T, F)``: rows (every axis before time), frames, and the
features of one frame (every axis after time), which is both ``(..., T, F)`` and a feature map
``(B, C, T, H, W)`` in its own memory layout. With the per-frame coefficients ``a_k[t]`` of
average ``k`` (``k = 0, 1``; ``b = 1 - a``):

- :func:`average_frames`: ``y_k[t] = a_k[t] y_k[t-1] + b_k[t] x[t]`` (``y_k[-1] = 0``), every
  frame, in one read of ``x`` and one write of each average;
- :func:`average_adjoint`: the backward pass, the same recurrence run backwards in time,
  ``lam_k[t] = g_k[t] + a_k[t+1] lam_k[t+1]``, ``dL/dx[t] = sum_k b_k[t] lam_k[t]`` and
  ``dL/da_k[t] = sum_{rows, features} lam_k[t] (y_k[t-1] - x[t])``, walking memory in one
  descending stream;
- :func:`average_sensitivities`: the backward pass when only the alphas need a gradient,
  forward in time: ``s_k[t] = a_k[t] s_k[t-1] + a_k'[t] (y_k[t-1] - x[t])`` with the averages
  recomputed on the way, ``dL/dtheta_k = sum g_k[t] s_k[t]``, reading ``x`` and the output
  gradients once;
- :func:`relax` and :func:`relax_adjoint`: ``s[t] = d[t] s[t-1] + (1 - d[t]) x[t]`` from a
  given ``s[-1]``, with a decay per trial and frame shared by the trial's rows (the channels of
  a feature map), and its adjoint.

Rows are independent and shared between threads (as many as torch uses); the sums over rows
of ``dL/da`` are taken per fixed group of rows (per trial for ``dL/dd``), then added in a fixed
order, so results do not depend on the number of threads. With one feature per frame
(``F = 1``, time contiguous in memory) the forward passes and both adjoints run four rows at
a time (the sensitivities two), so that several recurrences are in flight at once instead of
waiting on each other.
"""
from __future__ import annotations

import ctypes
import mmap

import numba
import numpy as np
import torch
from numba import njit, prange

#: Rows per group of the sums over rows in :func:`average_adjoint` and
#: :func:`average_sensitivities` (fixed, so that the order
#: of additions, hence the result, does not depend on the number of threads).
ROW_GROUPS = 32


#: Outputs at least this large (bytes) are asked to be backed by huge pages (:func:`new_like`).
HUGE_PAGE_BYTES = 8 << 20

_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only
_PAGE = mmap.PAGESIZE


def _madvise():
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (AttributeError, OSError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


_MADVISE = _madvise() if _MADV_HUGEPAGE is not None else None


def new_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``x``'s shape and dtype for a kernel to write.

    From :data:`HUGE_PAGE_BYTES` up, on Linux, its memory is advised as transparent huge pages
    (``madvise(MADV_HUGEPAGE)``, a hint that changes no value): a large new output is supplied
    by the system in 2 MB pages instead of 4 kB ones, and the first writes to it, which then
    dominate a pass over a large feature map, cost about a quarter as much on this machine."""
    out = torch.empty(x.shape, dtype=x.dtype)
    size = out.numel() * out.element_size()
    if _MADVISE is not None and size >= HUGE_PAGE_BYTES:
        start = -(-out.data_ptr() // _PAGE) * _PAGE  # whole pages inside the block
        stop = (out.data_ptr() + size) // _PAGE * _PAGE
        _MADVISE(start, stop - start, _MADV_HUGEPAGE)  # refused (THP off): plain pages
    return out


def use_torch_threads() -> None:
    """Run the kernels on as many threads as torch uses (``torch.set_num_threads``), in the
    calling thread (numba's count, like torch's, belongs to each thread).

    The first call starts numba's thread pool. With its OpenMP layer, that pool shares torch's
    OpenMP runtime and sets its thread count to numba's, so torch's count is put back."""
    threads = torch.get_num_threads()
    wanted = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != wanted:  # the first call starts numba's pool
        numba.set_num_threads(wanted)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@njit(parallel=True, cache=True)
def _frames_wide(x, a, b, y0, y1):
    R, T, F = x.shape
    for r in prange(R):
        # The running averages live in arrays of their own, not in the previous output frame,
        # so the compiler can prove they do not overlap and vectorise each loop.
        state0, state1 = np.zeros(F, x.dtype), np.zeros(F, x.dtype)
        for t in range(T):
            a0, b0, a1, b1 = a[t, 0], b[t, 0], a[t, 1], b[t, 1]
            xt, now0, now1 = x[r, t], y0[r, t], y1[r, t]
            for f in range(F):
                now0[f] = a0 * state0[f] + b0 * xt[f]
            for f in range(F):
                now1[f] = a1 * state1[f] + b1 * xt[f]
            state0[:] = now0
            state1[:] = now1


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
def _adjoint(x, y0, y1, g0, g1, a, b, grad_x, need_x, need_a, grad_a):
    R, T, F = x.shape
    groups = grad_a.shape[0]
    for group in prange(groups):
        lam0 = np.empty(F, dtype=x.dtype)
        lam1 = np.empty(F, dtype=x.dtype)
        # rows, frames and features all in descending order: one descending stream through
        # memory
        for r in range((group + 1) * R // groups - 1, group * R // groups - 1, -1):
            lam0[:] = 0
            lam1[:] = 0
            for t in range(T - 1, -1, -1):
                a0, a1 = a[t + 1, 0], a[t + 1, 1]
                # frames as 1-D views: the inner loop then indexes by f alone and vectorises
                xt, h0, h1 = x[r, t], g0[r, t], g1[r, t]
                # y[t-1], and 0 for y[-1] (a mask, not a choice between two arrays, which
                # stops the loop from vectorising)
                before0, before1 = y0[r, max(t - 1, 0)], y1[r, max(t - 1, 0)]
                kept = x.dtype.type(1 if t > 0 else 0)
                if need_a:
                    sum0 = sum1 = x.dtype.type(0)
                    for f in range(F - 1, -1, -1):
                        l0 = h0[f] + a0 * lam0[f]
                        l1 = h1[f] + a1 * lam1[f]
                        lam0[f] = l0
                        lam1[f] = l1
                        v = xt[f]
                        sum0 += l0 * (kept * before0[f] - v)
                        sum1 += l1 * (kept * before1[f] - v)
                    grad_a[group, 0, t] += sum0
                    grad_a[group, 1, t] += sum1
                else:  # dL/dx only: x and the averages are not read
                    for f in range(F - 1, -1, -1):
                        lam0[f] = h0[f] + a0 * lam0[f]
                        lam1[f] = h1[f] + a1 * lam1[f]
                if need_x:
                    out, b0, b1 = grad_x[r, t], b[t, 0], b[t, 1]
                    for f in range(F - 1, -1, -1):
                        out[f] = b0 * lam0[f] + b1 * lam1[f]


@njit(parallel=True, cache=True)
def _adjoint_single_feature(x, y0, y1, g0, g1, a, b, grad_x, need_x, need_a, grad_a):
    R, T = x.shape
    groups = grad_a.shape[0]
    zero = x.dtype.type(0)
    for group in prange(groups):
        start, stop = group * R // groups, (group + 1) * R // groups
        quads = start + 4 * ((stop - start) // 4)
        for r in range(start, quads, 4):  # four rows at once: eight recurrences in flight
            l0 = l1 = l2 = l3 = m0 = m1 = m2 = m3 = zero
            for t in range(T - 1, -1, -1):
                c0, c1 = a[t + 1, 0], a[t + 1, 1]
                l0 = g0[r, t] + c0 * l0
                l1 = g0[r + 1, t] + c0 * l1
                l2 = g0[r + 2, t] + c0 * l2
                l3 = g0[r + 3, t] + c0 * l3
                m0 = g1[r, t] + c1 * m0
                m1 = g1[r + 1, t] + c1 * m1
                m2 = g1[r + 2, t] + c1 * m2
                m3 = g1[r + 3, t] + c1 * m3
                if need_a and t > 0:
                    v0, v1, v2, v3 = x[r, t], x[r + 1, t], x[r + 2, t], x[r + 3, t]
                    grad_a[group, 0, t] += (l0 * (y0[r, t - 1] - v0) + l1 * (y0[r + 1, t - 1] - v1)
                                            + l2 * (y0[r + 2, t - 1] - v2)
                                            + l3 * (y0[r + 3, t - 1] - v3))
                    grad_a[group, 1, t] += (m0 * (y1[r, t - 1] - v0) + m1 * (y1[r + 1, t - 1] - v1)
                                            + m2 * (y1[r + 2, t - 1] - v2)
                                            + m3 * (y1[r + 3, t - 1] - v3))
                elif need_a:  # y[-1] = 0
                    v0, v1, v2, v3 = x[r, t], x[r + 1, t], x[r + 2, t], x[r + 3, t]
                    grad_a[group, 0, t] -= l0 * v0 + l1 * v1 + l2 * v2 + l3 * v3
                    grad_a[group, 1, t] -= m0 * v0 + m1 * v1 + m2 * v2 + m3 * v3
                if need_x:
                    b0, b1 = b[t, 0], b[t, 1]
                    grad_x[r, t] = b0 * l0 + b1 * m0
                    grad_x[r + 1, t] = b0 * l1 + b1 * m1
                    grad_x[r + 2, t] = b0 * l2 + b1 * m2
                    grad_x[r + 3, t] = b0 * l3 + b1 * m3
        for r in range(quads, stop):
            l0 = m0 = zero
            for t in range(T - 1, -1, -1):
                l0 = g0[r, t] + a[t + 1, 0] * l0
                m0 = g1[r, t] + a[t + 1, 1] * m0
                if need_a:
                    v0 = x[r, t]
                    grad_a[group, 0, t] += l0 * ((y0[r, t - 1] if t > 0 else zero) - v0)
                    grad_a[group, 1, t] += m0 * ((y1[r, t - 1] if t > 0 else zero) - v0)
                if need_x:
                    grad_x[r, t] = b[t, 0] * l0 + b[t, 1] * m0


@njit(parallel=True, cache=True, fastmath=_REORDER)
def _sensitivities(x, g0, g1, a, b, c, totals):
    R, T, F = x.shape
    groups = totals.shape[0]
    zero = x.dtype.type(0)
    for group in prange(groups):
        y0, y1 = np.empty(F, dtype=x.dtype), np.empty(F, dtype=x.dtype)
        s0, s1 = np.empty(F, dtype=x.dtype), np.empty(F, dtype=x.dtype)
        for r in range(group * R // groups, (group + 1) * R // groups):
            y0[:], y1[:], s0[:], s1[:] = zero, zero, zero, zero
            for t in range(T):
                a0, a1, b0, b1 = a[t, 0], a[t, 1], b[t, 0], b[t, 1]
                c0, c1 = c[t, 0], c[t, 1]
                # frames as 1-D views: the inner loop then indexes by f alone and vectorises
                xt, h0, h1 = x[r, t], g0[r, t], g1[r, t]
                sum0 = sum1 = zero
                for f in range(F):
                    v, p, q = xt[f], y0[f], y1[f]
                    u0 = a0 * s0[f] + c0 * (p - v)
                    u1 = a1 * s1[f] + c1 * (q - v)
                    s0[f], s1[f] = u0, u1
                    y0[f] = a0 * p + b0 * v
                    y1[f] = a1 * q + b1 * v
                    sum0 += h0[f] * u0
                    sum1 += h1[f] * u1
                totals[group, 0] += sum0
                totals[group, 1] += sum1


@njit(parallel=True, cache=True)
def _sensitivities_single_feature(x, g0, g1, a, b, c, totals):
    R, T = x.shape
    groups = totals.shape[0]
    zero = x.dtype.type(0)
    for group in prange(groups):
        start, stop = group * R // groups, (group + 1) * R // groups
        for r in range(start, stop, 2):  # two rows at once: eight recurrences in flight
            other = min(r + 1, stop - 1)
            kept = x.dtype.type(1 if other > r else 0)  # an odd last row is counted once
            p0 = p1 = q0 = q1 = s0 = s1 = u0 = u1 = zero
            sum0 = sum1 = zero
            for t in range(T):
                a0, a1, b0, b1, c0, c1 = a[t, 0], a[t, 1], b[t, 0], b[t, 1], c[t, 0], c[t, 1]
                v0, v1 = x[r, t], x[other, t]
                s0 = a0 * s0 + c0 * (p0 - v0)
                s1 = a0 * s1 + c0 * (p1 - v1)
                u0 = a1 * u0 + c1 * (q0 - v0)
                u1 = a1 * u1 + c1 * (q1 - v1)
                p0 = a0 * p0 + b0 * v0
                p1 = a0 * p1 + b0 * v1
                q0 = a1 * q0 + b1 * v0
                q1 = a1 * q1 + b1 * v1
                sum0 += g0[r, t] * s0 + kept * g0[other, t] * s1
                sum1 += g1[r, t] * u0 + kept * g1[other, t] * u1
            totals[group, 0] += sum0
            totals[group, 1] += sum1


@njit(parallel=True, cache=True)
def _relax(x, d, per_trial, start, out):
    R, T, F = x.shape
    one = x.dtype.type(1)  # an integer 1 would promote float32 arithmetic to float64
    for r in prange(R):
        k = d[r // per_trial]
        state = start[r].copy()  # its own array, as in _frames_wide
        for t in range(T):
            c, w = k[t], one - k[t]
            xt, now = x[r, t], out[r, t]
            for f in range(F):
                now[f] = c * state[f] + w * xt[f]
            state[:] = now


@njit(parallel=True, cache=True)
def _relax_single_feature(x, d, per_trial, start, out):
    R, T = x.shape
    one = x.dtype.type(1)
    for q in prange((R + 3) // 4):  # four rows at once: four recurrences in flight
        rows = min(4, R - 4 * q)
        r = 4 * q
        k0, k1 = d[r // per_trial], d[(r + min(1, rows - 1)) // per_trial]
        k2, k3 = d[(r + min(2, rows - 1)) // per_trial], d[(r + rows - 1) // per_trial]
        s0, s1 = start[r], start[r + min(1, rows - 1)]
        s2, s3 = start[r + min(2, rows - 1)], start[r + rows - 1]
        x0, x1, x2, x3 = x[r], x[r + min(1, rows - 1)], x[r + min(2, rows - 1)], x[r + rows - 1]
        o0, o1, o2, o3 = out[r], out[r + min(1, rows - 1)], out[r + min(2, rows - 1)], out[
            r + rows - 1]
        for t in range(T):
            s0 = k0[t] * s0 + (one - k0[t]) * x0[t]
            s1 = k1[t] * s1 + (one - k1[t]) * x1[t]
            s2 = k2[t] * s2 + (one - k2[t]) * x2[t]
            s3 = k3[t] * s3 + (one - k3[t]) * x3[t]
            o0[t], o1[t], o2[t], o3[t] = s0, s1, s2, s3


@njit(parallel=True, cache=True)
def _relax_adjoint_single_feature(x, d, per_trial, start, out, g, grad_x, need_x, need_d,
                                  grad_d, grad_start):
    R, T = x.shape
    one, zero = x.dtype.type(1), x.dtype.type(0)
    for trial in prange(d.shape[0]):
        k = d[trial]
        first, stop = trial * per_trial, (trial + 1) * per_trial
        for r in range(first, stop, 4):  # four rows at once: four recurrences in flight
            # past the trial's last row, the last row again, with no weight in dL/dd
            rows = min(4, stop - r)
            r1, r2, r3 = r + min(1, rows - 1), r + min(2, rows - 1), r + rows - 1
            m1, m2, m3 = (one if rows > 1 else zero, one if rows > 2 else zero,
                          one if rows > 3 else zero)
            l0 = l1 = l2 = l3 = zero
            # t = 0, where s[t-1] is start rather than out, is peeled off the loop
            for t in range(T - 1, 0, -1):
                c = k[t + 1]
                l0 = g[r, t] + c * l0
                l1 = g[r1, t] + c * l1
                l2 = g[r2, t] + c * l2
                l3 = g[r3, t] + c * l3
                if need_d:
                    grad_d[trial, t] += (l0 * (out[r, t - 1] - x[r, t])
                                         + m1 * l1 * (out[r1, t - 1] - x[r1, t])
                                         + m2 * l2 * (out[r2, t - 1] - x[r2, t])
                                         + m3 * l3 * (out[r3, t - 1] - x[r3, t]))
                if need_x:
                    w = one - k[t]
                    grad_x[r, t], grad_x[r1, t] = w * l0, w * l1
                    grad_x[r2, t], grad_x[r3, t] = w * l2, w * l3
            c = k[1]
            l0 = g[r, 0] + c * l0
            l1 = g[r1, 0] + c * l1
            l2 = g[r2, 0] + c * l2
            l3 = g[r3, 0] + c * l3
            if need_d:
                grad_d[trial, 0] += (l0 * (start[r] - x[r, 0])
                                     + m1 * l1 * (start[r1] - x[r1, 0])
                                     + m2 * l2 * (start[r2] - x[r2, 0])
                                     + m3 * l3 * (start[r3] - x[r3, 0]))
            if need_x:
                w = one - k[0]
                grad_x[r, 0], grad_x[r1, 0] = w * l0, w * l1
                grad_x[r2, 0], grad_x[r3, 0] = w * l2, w * l3
            grad_start[r], grad_start[r1] = k[0] * l0, k[0] * l1
            grad_start[r2], grad_start[r3] = k[0] * l2, k[0] * l3


@njit(parallel=True, cache=True, fastmath=_REORDER)
def _relax_adjoint(x, d, per_trial, start, out, g, grad_x, need_x, need_d, grad_d,
                   grad_start):
    R, T, F = x.shape
    one, zero = x.dtype.type(1), x.dtype.type(0)
    for trial in prange(d.shape[0]):  # one thread per trial: grad_d[trial] has one writer
        k = d[trial]
        lam = np.empty(F, dtype=x.dtype)
        for r in range(trial * per_trial, (trial + 1) * per_trial):
            lam[:] = 0
            begin = start[r]
            gx = grad_x[r if need_x else 0]  # an index, not a choice between two arrays
            for t in range(T - 1, -1, -1):
                c, w = k[t + 1], one - k[t]
                # s[t-1]: out[t-1], or start at t = 0 (weights, not a choice between two arrays,
                # which would stop the loop from vectorising)
                kept = one if t > 0 else zero
                before, xt, gt = out[r, max(t - 1, 0)], x[r, t], g[r, t]
                if need_d:
                    total = zero
                    for f in range(F):
                        value = gt[f] + c * lam[f]
                        lam[f] = value
                        total += value * (kept * before[f] + (one - kept) * begin[f] - xt[f])
                    grad_d[trial, t] += total
                else:  # dL/dx only: x and out are not read
                    for f in range(F):
                        lam[f] = gt[f] + c * lam[f]
                if need_x:
                    out_x = gx[t]
                    for f in range(F):
                        out_x[f] = w * lam[f]
            for f in range(F):
                grad_start[r, f] = k[0] * lam[f]


def columns(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-frame values ``(K, T)`` of the averages (``K`` 1 or 2; one average is run twice) as
    the kernels take them: ``(T + 1, 2)`` of ``dtype``, C-contiguous, with a last row of zeros
    (the adjoint's ``a[t + 1]`` at the last frame)."""
    out = np.zeros((values.shape[1] + 1, 2), dtype=dtype)
    out[:-1] = values.T
    return out


def coefficients(decays: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' ``(a, b = 1 - a)`` (:func:`columns`) from per-frame decays
    ``decays (K, T)``."""
    a = columns(decays, np.float64)
    return np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(1 - a, dtype=dtype)


def average_frames(x: np.ndarray, a: np.ndarray, b: np.ndarray, y0: np.ndarray,
                   y1: np.ndarray) -> None:
    """Both averages of every frame of ``x (R, T, F)`` into ``y0`` and ``y1`` (``x``'s shape;
    all C-contiguous) for the coefficients of :func:`coefficients`."""
    use_torch_threads()
    if x.shape[2] == 1:
        _frames_single_feature(x[..., 0], a, b, y0[..., 0], y1[..., 0])
    else:
        _frames_wide(x, a, b, y0, y1)


def average_adjoint(x: np.ndarray, y0: np.ndarray, y1: np.ndarray, g0: np.ndarray,
                    g1: np.ndarray, a: np.ndarray, b: np.ndarray,
                    grad_x: np.ndarray | None, need_a: bool = True) -> np.ndarray:
    """``dL/da (2, T)`` (float64; zero unless ``need_a``) from the output gradients
    ``g0, g1`` of :func:`average_frames` (``y0, y1``), and ``dL/dx`` into ``grad_x`` unless it
    is None; all arrays ``x``'s shape and C-contiguous."""
    use_torch_threads()
    R, T, F = x.shape
    need_x = grad_x is not None
    grad_x = grad_x if need_x else np.empty((1, 1, 1), x.dtype)
    partial = np.zeros((min(R, ROW_GROUPS), 2, T))
    arrays = (x, y0, y1, g0, g1)
    if F == 1:
        _adjoint_single_feature(*(v[..., 0] for v in arrays), a, b, grad_x[..., 0], need_x,
                                need_a, partial)
    else:
        _adjoint(*arrays, a, b, grad_x, need_x, need_a, partial)
    return partial.sum(axis=0)


def average_sensitivities(x: np.ndarray, g0: np.ndarray, g1: np.ndarray, a: np.ndarray,
                          b: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """``dL/dtheta_k (2,)`` (float64) for the output gradients ``g0, g1`` of
    :func:`average_frames` (coefficients ``a, b``), where
    ``slopes[t, k] = da_k[t] / dtheta_k`` (:func:`columns`), by forward sensitivities:
    ``s_k[t] = dy_k[t]/dtheta_k = a_k[t] s_k[t-1] + slopes[t, k] (y_k[t-1] - x[t])`` and
    ``dL/dtheta_k = sum_{rows, t, features} g_k[t] s_k[t]``.

    One pass forward in time that reads ``x``, ``g0`` and ``g1`` and recomputes the averages as
    it goes, instead of the adjoint's five reads backwards in time: the backward pass when only
    the alphas need a gradient."""
    use_torch_threads()
    R, T, F = x.shape
    totals = np.zeros((min(R, ROW_GROUPS), 2))
    if F == 1:
        _sensitivities_single_feature(x[..., 0], g0[..., 0], g1[..., 0], a, b, slopes, totals)
    else:
        _sensitivities(x, g0, g1, a, b, slopes, totals)
    return totals.sum(axis=0)


def relax(x: np.ndarray, decay: np.ndarray, start: np.ndarray, out: np.ndarray) -> None:
    """``out[r, t] = d[t] out[r, t-1] + (1 - d[t]) x[r, t]`` from ``out[r, -1] = start[r]``,
    for ``x (R, T, F)``, ``start (R, F)`` and ``decay (R / n, T + 1)`` (the decays of each
    trial, shared by its ``n`` consecutive rows; the last column 0); all C-contiguous."""
    R, T, F = x.shape
    if R % decay.shape[0] or decay.shape[1] != T + 1 or start.shape != (R, F):
        raise ValueError(f"relax: x {x.shape} needs decay (trials dividing {R}, {T + 1}) and "
                         f"start ({R}, {F}); got {decay.shape} and {start.shape}")
    use_torch_threads()
    per_trial = R // decay.shape[0]
    if x.shape[2] == 1:
        _relax_single_feature(x[..., 0], decay, per_trial, start[:, 0], out[..., 0])
    else:
        _relax(x, decay, per_trial, start, out)


def relax_adjoint(x: np.ndarray, decay: np.ndarray, start: np.ndarray, out: np.ndarray,
                  g: np.ndarray, grad_x: np.ndarray | None,
                  need_d: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/ddecay (R / n, T) float64, dL/dstart (R, F))`` from the output gradient ``g`` of
    :func:`relax`, and ``dL/dx`` into ``grad_x`` unless it is None: the adjoint
    ``lam[t] = g[t] + d[t+1] lam[t+1]``, ``dL/dx[t] = (1 - d[t]) lam[t]``,
    ``dL/dd[t] = sum <lam[t], out[t-1] - x[t]>`` over the trial's rows and features (zero
    unless ``need_d``), ``dL/dstart = d[0] lam[0]``."""
    use_torch_threads()
    trials, T = decay.shape[0], x.shape[1]
    need_x = grad_x is not None
    grad_x = grad_x if need_x else np.empty((1, T, x.shape[2]), x.dtype)
    grad_d = np.zeros((trials, T))
    grad_start = np.empty_like(start)
    per_trial = x.shape[0] // trials
    if x.shape[2] == 1:
        _relax_adjoint_single_feature(x[..., 0], decay, per_trial, start[:, 0], out[..., 0],
                                      g[..., 0], grad_x[..., 0], need_x, need_d, grad_d,
                                      grad_start[:, 0])
    else:
        _relax_adjoint(x, decay, per_trial, start, out, g, grad_x, need_x, need_d, grad_d,
                       grad_start)
    return grad_d, grad_start
