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
