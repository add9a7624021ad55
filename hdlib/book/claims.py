"""The closing table of every chapter: each claim, where it comes from, what was measured over
several seeds, and the verdict of one rule.

**The rule.** A claim states a threshold and a side (``'above'`` or ``'below'``). Over ``n``
independent seeds (or random cases) the measured values give a mean and its 95% confidence
interval, ``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (Student's t). The verdict is

* ``holds`` when the whole interval lies on the claim's side of the threshold,
* ``fails`` when the whole interval lies on the other side,
* ``inconclusive`` when the interval contains the threshold.

With ``n = 1`` there is no interval and the verdict is ``inconclusive``. A deterministic check
(an exactness gap, a gradient that is exactly zero) is measured on at least three random cases;
its interval then has zero width when every case gives the same value.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats

from .. import validate

EVIDENCE_COLUMNS = ["claim", "source", "measured", "n", "verdict"]
VERDICTS = ("holds", "fails", "inconclusive")


def interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its t-interval."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"values must be a non-empty list of finite numbers; got {x.tolist()}")
    mean = float(x.mean())
    if x.size == 1:
        return mean, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1)
                 / math.sqrt(x.size))
    return mean, mean - half, mean + half


def verdict(values, threshold: float, side: str) -> str:
    """The rule of the module docstring: ``'holds'``, ``'fails'`` or ``'inconclusive'``."""
    side = validate.choice("side", side, ("above", "below"))
    _, low, high = interval(values)
    if side == "above":
        return "holds" if low > threshold else "fails" if high < threshold else "inconclusive"
    return "holds" if high < threshold else "fails" if low > threshold else "inconclusive"


@dataclasses.dataclass
class Claim:
    """One row: ``claim`` in words, its ``source`` (document and section, or ``'book'`` for a
    target this book sets), the per-seed ``values``, the ``threshold`` and ``side`` that make it
    measurable, the ``unit`` and the number of ``digits`` to show."""

    claim: str
    source: str
    values: list
    threshold: float
    side: str
    unit: str = ""
    digits: int = 2

    def row(self) -> dict:
        mean, low, high = interval(self.values)
        unit = f" {self.unit}" if self.unit else ""
        spread = ("(one value)" if len(self.values) == 1 else
                  f"[{low:.{self.digits}f}, {high:.{self.digits}f}]")
        relation = ">" if self.side == "above" else "<"
        return {"claim": f"{self.claim} ({relation} {self.threshold:g}{unit})",
                "source": self.source,
                "measured": f"{mean:.{self.digits}f}{unit} {spread}",
                "n": len(self.values),
                "verdict": verdict(self.values, self.threshold, self.side)}


def evidence_table(claims) -> pd.DataFrame:
    """The five-column table ``claim | source | measured | n | verdict`` of claims
    (:class:`Claim` objects)."""
    return pd.DataFrame([c.row() for c in claims], columns=EVIDENCE_COLUMNS)


def print_evidence(table: pd.DataFrame) -> None:
    """One line per claim, ``verdict (n=..): claim`` (stable text for regression tests)."""
    for claim, n, result in zip(table["claim"], table["n"], table["verdict"]):
        print(f"{result} (n={n}): {claim}")
