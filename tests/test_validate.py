"""hdlib.validate: every check names the argument, the expected value and what it received."""
import math
import re

import numpy as np
import pytest
import torch

from hdlib import validate


@pytest.mark.parametrize("check, good, bad", [
    (validate.positive_int, [1, np.int64(7)], [0, -1, 1.0, True, "3"]),
    (validate.non_negative_int, [0, 5], [-1, 0.0, False]),
    (validate.positive_float, [1e-9, 3, np.float32(2.0)], [0.0, -1.0, math.nan, True, "1"]),
    (validate.boolean, [True, False], [0, 1, "yes"]),
    (validate.path_string, ["a/b.mat"], ["", "  ", 3]),
])
def test_scalar_checks(check, good, bad):
    for value in good:
        assert check("x", value) == value
    for value in bad:
        with pytest.raises(ValueError, match=rf"^x must be .*; got {re.escape(repr(value))}$"):
            check("x", value)


def test_returned_types_are_plain_python():
    assert type(validate.positive_int("n", np.int64(3))) is int
    assert type(validate.positive_float("f", 2)) is float


def test_float_in_with_open_and_closed_ends():
    assert validate.float_in("p", 0.0, 0.0, 1.0) == 0.0
    assert validate.float_in("p", 1.0, 0.0, 1.0) == 1.0
    with pytest.raises(ValueError, match=r"p must be a number in \(0, 1\]; got 0.0"):
        validate.float_in("p", 0.0, 0.0, 1.0, low_open=True)
    with pytest.raises(ValueError, match=r"in \[0, 1\); got 1"):
        validate.float_in("p", 1, 0.0, 1.0, high_open=True)
    with pytest.raises(ValueError, match=r"in \[0, inf\]; got nan"):
        validate.float_in("p", math.nan, 0.0, math.inf)


def test_choice_lists_the_options():
    assert validate.choice("mode", "min", ("min", "max")) == "min"
    with pytest.raises(ValueError, match=r"mode must be one of 'min', 'max'; got 'up'"):
        validate.choice("mode", "up", ("min", "max"))


def test_lists_and_ratios():
    assert validate.ratios("r", (0.0, 0.5, 1)) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"r\[1\] must be a number in \[0, 1\]; got 1.5"):
        validate.ratios("r", [0.2, 1.5])
    for bad in ([], "0.5", 0.5):
        with pytest.raises(ValueError, match="r must be a non-empty list"):
            validate.ratios("r", bad)


def test_curriculum():
    assert validate.curriculum("c", [[10, 5], (20, 1)]) == [(10, 5), (20, 1)]
    for bad in ([], "fast", [[10]], [["ab"]], 3):
        with pytest.raises(ValueError, match="c must be a non-empty list of"):
            validate.curriculum("c", bad)
    with pytest.raises(ValueError, match=r"c\[1\] iterations must be a positive integer"):
        validate.curriculum("c", [[10, 5], [20, 0]])


def test_tensor_shape_size_and_dtype():
    x = torch.zeros(2, 3)
    assert validate.tensor("x", x, ndim=(2, 3), size={-1: 3}) is x
    with pytest.raises(ValueError, match=r"x must be a 3-D tensor; got shape \(2, 3\)"):
        validate.tensor("x", x, ndim=3)
    with pytest.raises(ValueError, match=r"x must be of size 4 along dimension 1"):
        validate.tensor("x", x, ndim=2, size={1: 4})
    with pytest.raises(ValueError, match="must be a floating-point tensor; got dtype torch.int64"):
        validate.tensor("x", torch.zeros(2, dtype=torch.long), ndim=1)
    with pytest.raises(ValueError, match="x must be a torch.Tensor; got a ndarray"):
        validate.tensor("x", np.zeros(2), ndim=1)


def test_parameters_checks_every_name_and_reports_missing_ones():
    spec = {"steps": validate.positive_int, "lr": validate.positive_float}
    assert validate.parameters({"steps": 3, "lr": 1, "other": "ignored"}, spec) == {
        "steps": 3, "lr": 1.0}
    with pytest.raises(ValueError, match="missing parameter.*lr"):
        validate.parameters({"steps": 3}, spec)
    with pytest.raises(ValueError, match="steps must be a positive integer; got 0"):
        validate.parameters({"steps": 0, "lr": 1}, spec)
