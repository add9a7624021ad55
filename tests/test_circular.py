import math

import numpy as np
import pytest
import torch

from hdlib import circular


def test_grid_is_2pi_i_over_n_without_duplicate_endpoint():
    grid = circular.angle_grid(120)
    assert grid.shape == (120,)
    assert torch.allclose(grid, 2 * math.pi * torch.arange(120) / 120)
    assert grid[-1] < 2 * math.pi - 1e-3


def test_wrap_range_is_half_open_at_minus_pi():
    x = torch.tensor([-math.pi, math.pi, 3 * math.pi, -3 * math.pi + 1e-3, 0.0, 7.0])
    w = circular.wrap(x)
    assert torch.all(w > -math.pi) and torch.all(w <= math.pi)
    assert torch.allclose(w[:2], torch.tensor([math.pi, math.pi]))
    assert torch.allclose(torch.cos(w), torch.cos(x), atol=1e-5)
    assert circular.wrap(-math.pi) == pytest.approx(math.pi)


def test_circular_mae_takes_short_way_round():
    pred = torch.tensor([math.radians(359.0)])
    true = torch.tensor([math.radians(1.0)])
    assert circular.circular_mae(pred, true) == pytest.approx(2.0, abs=1e-4)


@pytest.mark.parametrize("heading_deg", [0.0, 37.0, 181.5, 359.0])
def test_population_vector_recovers_bump_centre(heading_deg):
    heading = torch.tensor([math.radians(heading_deg)])
    bump = circular.von_mises_bump(heading, 120)
    decoded = circular.population_vector(bump)
    assert circular.circular_mae(decoded, heading) < 1e-3
    assert circular.circular_mae(circular.argmax_decode(bump), heading) <= 1.5 + 1e-4


def test_linspace_grid_would_bias_decoding():
    """The pitfall the module guards against: an endpoint-inclusive grid is biased by ~pi/N."""
    n = 120
    heading = torch.linspace(0, 2 * math.pi, 50)[:-1]
    bumps = circular.von_mises_bump(heading, n)
    wrong = torch.linspace(0, 2 * math.pi, n)
    decoded_wrong = torch.atan2(bumps @ torch.sin(wrong), bumps @ torch.cos(wrong))
    bias = circular.circular_mae(decoded_wrong, heading)
    assert bias == pytest.approx(180 / n, rel=0.1)
    assert circular.circular_mae(circular.population_vector(bumps), heading) < 1e-3


def test_population_vector_length_of_pure_cosine():
    grid = circular.angle_grid(64)
    activity = 0.7 * torch.cos(grid - 1.0)
    assert circular.population_vector_length(activity).item() == pytest.approx(0.7, rel=1e-5)
    np.testing.assert_allclose(circular.population_vector(activity).item(), 1.0, atol=1e-5)


@pytest.mark.parametrize("n", [7, 8])
def test_fourier_basis_diagonalises_a_symmetric_circulant(n):
    """``C[i, j] = c[(i - j) mod n]`` with ``c[k] = c[n - k]`` has eigenvalues ``rfft(c)``, one per
    cosine and sine of each frequency, in the basis's column order."""
    column = torch.tensor([3.0, 1.0, 0.5, 0.25, 0.25, 0.5, 1.0, 0.0][:n], dtype=torch.float64)
    column[1:] = (column[1:] + column[1:].flip(0)) / 2  # make it symmetric
    index = (torch.arange(n)[:, None] - torch.arange(n)[None, :]) % n
    basis = circular.fourier_basis(n, dtype=torch.float64)
    diagonal = basis.T @ column[index] @ basis
    spectrum = torch.fft.rfft(column).real
    expected = torch.cat([spectrum[:1], spectrum[1:(n + 1) // 2].repeat_interleave(2),
                          spectrum[n // 2:] if n % 2 == 0 else spectrum[:0]])
    torch.testing.assert_close(diagonal, torch.diag(expected))


def test_wrap_and_circular_error_on_plain_floats():
    assert circular.wrap(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert circular.circular_error(torch.tensor(0.1), torch.tensor(2 * math.pi - 0.1)).item() \
        == pytest.approx(0.2, abs=1e-6)
