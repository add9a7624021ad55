"""hdlib.operations: the arithmetic counter, on cases counted by hand."""

import torch

from hdlib.models import polar
from hdlib.operations import OperationCounter


def test_a_matrix_product_counts_two_per_multiply_add():
    with OperationCounter() as counter:
        torch.randn(3, 4) @ torch.randn(4, 5)
    assert counter.total == 2 * 3 * 4 * 5


def test_the_exponential_average_by_hand():
    # per frame: alpha acc, 1 - alpha, (1 - alpha) x, the sum, alpha^(t+1), 1 - alpha^(t+1),
    # the division: 7 operations on one element; two frames
    with OperationCounter() as counter:
        polar.exponential_average(torch.randn(1, 2, 1), torch.tensor(0.5))
    assert counter.total == 2 * 7


def test_the_relaxation_by_hand():
    # per frame on 2 rows x 3 features: state - drive, times the decay, plus the drive
    with OperationCounter() as counter:
        polar.amplitude_relaxation(torch.randn(2, 4, 3), torch.rand(2, 4), torch.randn(2, 3))
    assert counter.total == 4 * 3 * (2 * 3)
    assert counter.by_operation == {"sub": 24, "mul": 24, "add": 24}


def test_copies_selections_and_views_are_free_and_reductions_count_their_input():
    x = torch.randn(4, 5)
    with OperationCounter() as counter:
        torch.where(x > 0, x, x.clone()).T.reshape(-1)
        x.sum()
        x.cumsum(0)
    assert counter.by_operation == {"gt": 20, "sum": 20, "cumsum": 20}
