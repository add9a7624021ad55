"""Task inputs as the Poisson GLM sees them: each channel's recent history on a temporal basis.

A task input ``u_i(t)`` (a fixation light, a target, a reward) is a step; what a neuron
responds to is often the *time since* it changed. :class:`RaisedCosineEncoder` convolves every
channel causally with ``J`` raised-cosine bumps on a log time axis (:func:`raised_cosine_basis`)
and z-scores the result with statistics fixed from training trials::

    f_ij(t) = ((B_j * u_i)(t) - m_ij) / s_ij,      (B_j * u_i)(t) = sum_l B_j(l) u_i(t - l)

The Poisson GLM baseline (:mod:`hdlib.baselines`) is linear in these features; the fitted E-I
network (:mod:`hdlib.fitters.sc_fit`) can take them as its inputs (``input_basis=True``), so
that both models see the same information about the task.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

N_BASES = 8
#: The last basis peaks this long after an event; later lags are covered coarsely up to ~2.7x.
LAST_PEAK_MS = 1000.0


def raised_cosine_basis(n_bases: int = N_BASES, last_peak_bins: float = 40.0,
                        offset_bins: float = 1.0) -> torch.Tensor:
    """Causal bases ``(L, n_bases)`` over lags ``0..L-1`` bins: with ``x = log(lag + offset)``
    and peaks ``phi_j`` evenly spaced from ``log(offset)`` to ``log(last_peak + offset)`` (step
    ``d``), ``B_j = (1 + cos(pi (x - phi_j) / (2 d))) / 2`` where ``|x - phi_j| < 2 d``, else 0.
    Early lags are resolved finely, late ones coarsely."""
    phi = np.linspace(math.log(offset_bins), math.log(last_peak_bins + offset_bins), n_bases)
    step = phi[1] - phi[0]
    length = int(math.ceil(math.exp(phi[-1] + 2 * step) - offset_bins))
    x = np.log(np.arange(length) + offset_bins)[:, None]
    arg = np.clip((x - phi[None]) * math.pi / (2 * step), -math.pi, math.pi)
    return torch.as_tensor((1 + np.cos(arg)) / 2, dtype=torch.float32)


def basis_features(inputs: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Each input channel convolved causally with each basis: ``(K, T, I * J)``,
    ``out[k, t, i * J + j] = sum_l basis[l, j] u[k, t - l, i]``."""
    K, T, n_in = inputs.shape
    L, J = basis.shape
    x = torch.nn.functional.pad(inputs.permute(0, 2, 1), (L - 1, 0))  # (K, I, T + L - 1)
    weight = basis.to(inputs.dtype).T.flip(-1)[:, None, :].repeat(n_in, 1, 1)  # (I*J, 1, L)
    return torch.nn.functional.conv1d(x, weight, groups=n_in).permute(0, 2, 1)


class RaisedCosineEncoder(nn.Module):
    """``inputs (K, T, n_inputs) -> features (K, T, n_inputs * n_bases)`` (module docstring).
    The basis and the z-scoring statistics are buffers: saved with a model, never trained.
    :meth:`fit_statistics` sets them from training trials' recorded bins. The last peak is at
    :data:`LAST_PEAK_MS`, whatever the bin width ``bin_size_ms``."""

    def __init__(self, n_inputs: int, bin_size_ms: float = 25.0, n_bases: int = N_BASES):
        super().__init__()
        self.n_inputs = n_inputs
        self.register_buffer("basis", raised_cosine_basis(n_bases, LAST_PEAK_MS / bin_size_ms))
        self.register_buffer("mean", torch.zeros(n_inputs * n_bases))
        self.register_buffer("sd", torch.ones(n_inputs * n_bases))

    @property
    def n_features(self) -> int:
        return self.mean.numel()

    @torch.no_grad()
    def fit_statistics(self, inputs: torch.Tensor, mask: torch.Tensor) -> RaisedCosineEncoder:
        """Mean and sd of every feature over the recorded bins ``mask (K, T)`` of ``inputs``
        (a feature that never varies keeps sd 1)."""
        rows = basis_features(inputs.float(), self.basis)[mask]
        self.mean.copy_(rows.mean(0))
        sd = rows.std(0)
        self.sd.copy_(torch.where(sd > 1e-6, sd, torch.ones_like(sd)))
        return self

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (basis_features(inputs, self.basis) - self.mean) / self.sd
