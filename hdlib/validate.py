"""Argument checks shared by every module and by the notebooks' parameter cells.

Each check raises ``ValueError`` whose message names the argument, the expected value and
what was received, so a bad papermill parameter stops a run before any work is done.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch


def _fail(name: str, expected: str, value, got: str | None = None) -> None:
    """Raise "NAME must be EXPECTED; got ..." with ``repr(value)``, or ``got`` when given."""
    raise ValueError(f"{name} must be {expected}; got {repr(value) if got is None else got}")


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        _fail(name, "a positive integer", value)
    return int(value)


def non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        _fail(name, "a non-negative integer", value)
    return int(value)


def positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        _fail(name, "a positive number", value)
    return float(value)


def float_in(name: str, value, low: float, high: float, *,
             low_open: bool = False, high_open: bool = False) -> float:
    """A real number in [low, high]; ``low_open``/``high_open`` exclude an end."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        ok = above and below
    if not ok:
        bracket = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        _fail(name, f"a number in {bracket}", value)
    return float(value)


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        _fail(name, "true or false", value)
    return value


def choice(name: str, value, options: Iterable[str]) -> str:
    options = tuple(options)
    if value not in options:
        _fail(name, "one of " + ", ".join(repr(o) for o in options), value)
    return value


def list_of(check, what: str):
    """A check for a non-empty list whose items all pass ``check(name[i], item)``."""
    def check_list(name: str, values) -> list:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            _fail(name, f"a non-empty list of {what}", values)
        values = list(values)
        if not values:
            _fail(name, f"a non-empty list of {what}", values)
        return [check(f"{name}[{i}]", v) for i, v in enumerate(values)]
    return check_list


def ratios(name: str, values) -> list[float]:
    """A non-empty list of fractions, each in [0, 1]."""
    return list_of(lambda n, v: float_in(n, v, 0.0, 1.0), "numbers in [0, 1]")(name, values)


def curriculum(name: str, curriculum) -> list[tuple[int, int]]:
    """A non-empty list of ``[seq_len, iterations]`` pairs of positive integers."""
    expected = f"{name} must be a non-empty list of [seq_len, iterations] pairs; got {curriculum!r}"
    if isinstance(curriculum, (str, bytes)) or not hasattr(curriculum, "__iter__"):
        raise ValueError(expected)
    stages = list(curriculum)
    if not stages or any(isinstance(s, (str, bytes)) or not hasattr(s, "__len__") or len(s) != 2
                         for s in stages):
        raise ValueError(expected)
    return [(positive_int(f"{name}[{i}] seq_len", seq_len),
             positive_int(f"{name}[{i}] iterations", iterations))
            for i, (seq_len, iterations) in enumerate(stages)]


def path_string(name: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(name, "a non-empty path string", value)
    return value


def tensor(name: str, value, *, ndim: int | tuple[int, ...], size: dict[int, int] | None = None,
           floating: bool = True) -> torch.Tensor:
    """A torch tensor with the given number of dimensions (and sizes along some of them)."""
    if not isinstance(value, torch.Tensor):
        _fail(name, "a torch.Tensor", value, got=f"a {type(value).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if value.dim() not in dims:
        _fail(name, f"a {' or '.join(f'{d}-D' for d in dims)} tensor", value,
              got=f"shape {tuple(value.shape)}")
    for axis, n in (size or {}).items():
        if value.shape[axis] != n:
            _fail(name, f"of size {n} along dimension {axis}", value,
                  got=f"shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        _fail(name, "a floating-point tensor", value, got=f"dtype {value.dtype}")
    return value


def parameters(values: dict, spec: dict) -> dict:
    """Check a notebook's parameters against ``spec`` (``name -> check(name, value)``).

    Every name in ``spec`` must be present; the checked values are returned in a new dict.
    """
    missing = [name for name in spec if name not in values]
    if missing:
        raise ValueError(f"missing parameter(s): {', '.join(missing)}")
    return {name: check(name, values[name]) for name, check in spec.items()}
