"""Angles on a ring: one grid, wrapping, circular errors and decoding of population activity.

Every module of hdlib places neuron ``i`` of an ``N``-neuron ring at ``theta_i = 2*pi*i/N``.
A grid built with ``linspace(0, 2*pi, N)`` would put the last neuron on top of the first and
shift every decoded angle by about ``pi/N`` (1.5 degrees at N=120); :func:`angle_grid` is the
only place the grid is made.
"""
from __future__ import annotations

import math

import torch

TWO_PI = 2.0 * math.pi


def angle_grid(num_neurons: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Preferred directions ``theta_i = 2*pi*i/N`` for ``i = 0..N-1`` (radians)."""
    return TWO_PI * torch.arange(num_neurons, device=device, dtype=dtype) / num_neurons


def wrap(angle):
    """Wrap radians into ``(-pi, pi]``: ``pi - ((pi - angle) mod 2*pi)``."""
    if isinstance(angle, torch.Tensor):
        return math.pi - torch.remainder(math.pi - angle, TWO_PI)
    return math.pi - (math.pi - angle) % TWO_PI


def circular_error(predicted, target):
    """Signed shortest angular difference ``wrap(predicted - target)`` in radians."""
    return wrap(predicted - target)


def circular_mae(predicted: torch.Tensor, target: torch.Tensor, *, degrees: bool = True) -> float:
    """Mean absolute circular error, ``mean |wrap(predicted - target)|`` (degrees by default)."""
    err = circular_error(predicted, target).abs().mean().item()
    return math.degrees(err) if degrees else err


def population_vector(activity: torch.Tensor) -> torch.Tensor:
    """Decode the angle of the first Fourier mode of activity over the last dimension.

    ``theta_hat = atan2(sum_i r_i sin(theta_i), sum_i r_i cos(theta_i))`` on the ring grid.
    """
    grid = angle_grid(activity.shape[-1], device=activity.device, dtype=activity.dtype)
    return torch.atan2(activity @ torch.sin(grid), activity @ torch.cos(grid))


def population_vector_length(activity: torch.Tensor) -> torch.Tensor:
    """Amplitude of the first Fourier mode, ``(2/N) sqrt(x^2 + y^2 + eps)`` with
    ``x + iy = sum_i r_i exp(i theta_i)``.

    ``eps`` (the smallest normal number of the dtype) keeps the gradient finite when the ring is
    silent: the plain length ``hypot(x, y)`` has the gradient ``(x, y) / hypot(x, y)``, which is
    ``0 / 0`` there, and one silent state in a batch would make every weight's gradient NaN.
    """
    n = activity.shape[-1]
    grid = angle_grid(n, device=activity.device, dtype=activity.dtype)
    x, y = activity @ torch.cos(grid), activity @ torch.sin(grid)
    eps = torch.finfo(activity.dtype).tiny
    return torch.sqrt(x.square() + y.square() + eps) * (2.0 / n)


def argmax_decode(activity: torch.Tensor) -> torch.Tensor:
    """Decode as the preferred direction of the most active neuron (resolution ``2*pi/N``)."""
    grid = angle_grid(activity.shape[-1], device=activity.device, dtype=activity.dtype)
    return wrap(grid[activity.argmax(dim=-1)])


def von_mises_bump(heading: torch.Tensor, num_neurons: int, *,
                   concentration: float = 4.0) -> torch.Tensor:
    """Bump ``exp(kappa*(cos(theta_i - heading) - 1))`` peaking at 1 on each heading.

    ``heading`` of shape ``(...)`` gives activity of shape ``(..., num_neurons)``.
    """
    grid = angle_grid(num_neurons, device=heading.device, dtype=heading.dtype)
    return torch.exp(concentration * (torch.cos(grid - heading.unsqueeze(-1)) - 1.0))


def fourier_basis(num_neurons: int, *, dtype=torch.float32) -> torch.Tensor:
    """Orthonormal real Fourier basis of the ring, ``(N, N)``, one mode per column.

    Columns are ordered by frequency: ``1/sqrt(N)``, then ``sqrt(2/N) cos(k theta)`` and
    ``sqrt(2/N) sin(k theta)`` for ``k = 1, 2, ...``, and for even ``N`` the last column is the
    Nyquist mode ``cos(N theta / 2) / sqrt(N)``. Every circulant symmetric matrix on the ring is
    diagonal in this basis, with each eigenvalue shared by the cosine and sine of its frequency.
    """
    theta = angle_grid(num_neurons, dtype=torch.float64)
    columns = [torch.full_like(theta, 1.0 / math.sqrt(num_neurons))]
    for k in range(1, (num_neurons + 1) // 2):
        columns += [math.sqrt(2.0 / num_neurons) * torch.cos(k * theta),
                    math.sqrt(2.0 / num_neurons) * torch.sin(k * theta)]
    if num_neurons % 2 == 0:
        columns.append(torch.cos(num_neurons // 2 * theta) / math.sqrt(num_neurons))
    return torch.stack(columns, dim=1).to(dtype)
