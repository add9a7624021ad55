"""The closing tables of every chapter: the claims, measured over seeds and decided by one rule,
and the checks, properties that hold by construction and are shown apart.

**A claim** states a threshold and a side (``'above'`` or ``'below'``), fixed before the runs
in the chapter's spec (:mod:`hdlib.book.parameters`). Its values are one number per seed
(or per random case); a comparison between two settings uses the per-seed differences
(:func:`paired`).

**The rule.**

* *Sequential seeds, valid under stopping.* A row is looked at after ``LOOKS = (3, 6, 10)``
  seeds and gets more seeds while it is undecided. Each look tests at level ``ALPHA / 3``
  (Bonferroni over the three looks), so the chance of any false verdict over all the looks a
  row may take stays below ``ALPHA``, whenever the seeds stop. The row's p-value is
  ``min(1, 3 p)``, with ``p`` the two-sided one-sample t-test of "mean = threshold" at the
  row's seeds.
* *Many rows.* The p-values of a chapter's claims are adjusted together by Holm's method (the
  family-wise error of the whole table stays below ``ALPHA``), and the adjusted p-value is
  printed. A row *holds* when its adjusted p is at most ``ALPHA`` and the mean lies on the
  claim's side, *fails* when it is at most ``ALPHA`` and the mean lies on the other side, and
  is *inconclusive* otherwise (``n < 10``: more seeds are due).
* *The interval shown* is the t-interval at level ``1 - ALPHA / 3``, the level of one look.
  For a quantity with a range (``bounds``, such as a share in ``[0, 1]``) it is cut to the
  range: the true mean lies in the range, so the cut loses no coverage.
* *No spread.* When every seed gives the same value the row says so ("the same in all n
  runs"): the result is deterministic, decided by the value, and takes no part in the
  correction. A value exactly at the threshold lies on neither side: inconclusive.
* *Censored values.* A value that is only a lower bound (a cost counted at the budget, say) is
  flagged; such a row is decided by the exact sign test of how many seeds lie on each side of
  the threshold (a bound above the threshold puts its seed above; a bound below it says
  nothing, and that seed is left out), and the measured column says how many values are
  bounds.
* *One code version per row.* Every run of a row must come from the same version of the
  measuring code (:func:`hdlib.book.results.measurement_hash`); a row whose runs do not is
  *stale* and is not decided until ``make results`` reruns it.

**Checks** (:class:`Check`) are properties that hold by construction or are deterministic
(shapes, exact gradients, an operation count, a property inherited from a teacher): pass or
fail, listed under the claims table, never mixed into it.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from .. import validate

ALPHA = 0.05
#: The numbers of seeds at which a row is looked at; a row undecided at the last is final.
LOOKS = (3, 6, 10)
#: The level of one look (``1 - ALPHA / len(LOOKS)``): the intervals the tables show.
LOOK_CONFIDENCE = 1 - ALPHA / len(LOOKS)
#: "About X" in a document means within this fraction of X, book-wide.
ABOUT_BAND = 0.25
EVIDENCE_COLUMNS = ["claim", "source", "measured", "n", "p (Holm)", "verdict"]
CHECK_COLUMNS = ["check", "source", "result", "pass"]
VERDICTS = ("holds", "fails", "inconclusive", "stale")


@dataclasses.dataclass(frozen=True)
class Target:
    """What a claim must reach, fixed before the runs: ``threshold`` on ``side``, from
    ``source`` (``'NNN: section'`` for a document's own number, ``'book'`` for a target this
    book sets, with its ``reason``). ``bounds`` is the range of a bounded quantity."""

    claim: str
    source: str
    threshold: float
    side: str
    unit: str = ""
    digits: int = 2
    reason: str = ""
    bounds: tuple | None = None

    def __post_init__(self):
        validate.choice("side", self.side, ("above", "below"))
        if self.source == "book" and not self.reason:
            raise ValueError(f"target {self.claim!r}: a book target needs its reason")


def format_number(x: float, digits: int) -> str:
    """``x`` to ``digits`` decimals, or in scientific notation when that would show 0 for a
    number that is not 0 (an interval must not look zero-wide)."""
    if x != 0 and math.isfinite(x) and abs(x) < 0.5 * 10 ** -digits:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def about(value: float) -> float:
    """The book-wide band of "about ``value``": ``ABOUT_BAND * |value|``, the largest
    ``|measured - value|`` that still reads as "about"."""
    return ABOUT_BAND * abs(value)


def interval(values, confidence: float = LOOK_CONFIDENCE,
             bounds: tuple | None = None) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its t-interval (cut to ``bounds``)."""
    x = _finite(values)
    mean = float(x.mean())
    if x.size == 1:
        low, high = -math.inf, math.inf
    else:
        half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1)
                     / math.sqrt(x.size))
        low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def _finite(values) -> np.ndarray:
    x = np.asarray(list(values), dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"values must be a non-empty list of finite numbers; got {x.tolist()}")
    return x


def paired(a, b) -> list[float]:
    """Per-seed differences ``a - b`` of two settings run on the same seeds."""
    a, b = _finite(a), _finite(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per seed in both settings; got {a.size} "
                         f"and {b.size}")
    return (a - b).tolist()


def p_value(values, threshold: float, censored=None) -> float:
    """The row's p-value for "mean = threshold" under the sequential design (module docstring):
    ``min(1, len(LOOKS) p)``, with the t-test's two-sided ``p``, or the exact sign test's when
    some values are censored. ``nan`` for fewer than two values or no spread."""
    x = _finite(values)
    if x.size < 2 or (np.ptp(x) == 0 and not (censored is not None and any(censored))):
        return math.nan
    if censored is not None and any(censored):
        bound = np.asarray(censored, dtype=bool)  # lower bounds: below the threshold unknown
        above, below = int((x > threshold).sum()), int(((x < threshold) & ~bound).sum())
        p = stats.binomtest(above, above + below).pvalue if above + below else 1.0
    else:
        p = stats.ttest_1samp(x, threshold).pvalue
    return min(1.0, len(LOOKS) * float(p))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` (``nan`` entries stay ``nan`` and do not
    count in the family): ``p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j))`` in increasing
    order."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


@dataclasses.dataclass
class Claim:
    """One row: a :class:`Target` and its measured ``values`` (one per seed), with the
    ``censored`` flags of values that are only lower bounds and the ``versions`` (measurement
    hash) of the runs that gave them (a paired value comes from two runs)."""

    target: Target
    values: list
    censored: list | None = None
    versions: list | None = None

    def __post_init__(self):
        self.values = _finite(self.values).tolist()
        if self.censored is not None and len(self.censored) != len(self.values):
            raise ValueError(f"censored must have one entry per value ({len(self.values)}); "
                             f"got {len(self.censored)}")

    @property
    def stale(self) -> bool:
        return self.versions is not None and len(set(self.versions)) > 1

    @property
    def bounds_only(self) -> int:
        """How many values are lower bounds (censored)."""
        return 0 if self.censored is None else sum(map(bool, self.censored))

    @property
    def deterministic(self) -> bool:
        return len(self.values) > 1 and len(set(self.values)) == 1 and not self.bounds_only

    def p_value(self) -> float:
        if self.stale:
            return math.nan
        return p_value(self.values, self.target.threshold, self.censored)

    def measured(self) -> str:
        t = self.target
        unit = f" {t.unit}" if t.unit else ""
        mean, low, high = interval(self.values, bounds=t.bounds)
        if self.deterministic:
            return f"{mean:.{t.digits}f}{unit}, the same in all {len(self.values)} runs"
        n = len(self.values)
        shown = functools.partial(format_number, digits=t.digits)
        if self.bounds_only:  # the sign test decides: say where the seeds lie
            above = sum(v > t.threshold for v in self.values)
            return (f"{mean:.{t.digits}f}{unit} on average; {above} of {n} above "
                    f"{t.threshold:g}; {self.bounds_only} of {n} are lower bounds")
        spread = "(one value)" if n == 1 else f"[{shown(low)}, {shown(high)}]"
        return f"{shown(mean)}{unit} {spread}"

    def verdict(self, adjusted_p: float) -> str:
        t = self.target
        if self.stale:
            return "stale"
        mean = float(np.mean(self.values))
        on_side = mean > t.threshold if t.side == "above" else mean < t.threshold
        if mean == t.threshold:  # on neither side, e.g. an option that never acted
            return "inconclusive"
        if self.deterministic:
            return "holds" if on_side else "fails"
        if math.isnan(adjusted_p) or adjusted_p > ALPHA:
            return "inconclusive"
        return "holds" if on_side else "fails"

    def undecided(self, adjusted_p: float) -> bool:
        """Whether the sequential design gives this row more seeds."""
        return self.verdict(adjusted_p) == "inconclusive" and len(self.values) < LOOKS[-1]


def describe(target: Target) -> str:
    """The claim with its relation and threshold, ``'error is small (< 2 deg)'``."""
    unit = f" {target.unit}" if target.unit else ""
    relation = ">" if target.side == "above" else "<"
    return f"{target.claim} ({relation} {target.threshold:g}{unit})"


def evidence_table(claims) -> pd.DataFrame:
    """The table ``claim | source | measured | n | p (Holm) | verdict`` of ``claims``
    (:class:`Claim` objects), their p-values adjusted together (:func:`holm`). The versions of
    the runs (measurement hashes) go in a column ``code`` when they differ between rows, and
    otherwise in ``table.attrs['code']`` (:func:`styled` shows it as the caption)."""
    claims = list(claims)
    adjusted = holm([c.p_value() for c in claims])
    rows = []
    for claim, p in zip(claims, adjusted):
        row = {"claim": describe(claim.target), "source": claim.target.source,
               "measured": claim.measured(), "n": len(claim.values),
               "p (Holm)": "–" if math.isnan(p) else f"{p:.2g}",
               "verdict": claim.verdict(p)}
        if claim.versions is not None:
            row["code"] = ", ".join(sorted({str(v)[:7] for v in claim.versions}))
        rows.append(row)
    codes = {r.get("code", "") for r in rows}
    table = pd.DataFrame([{"code": "", **row} for row in rows],
                         columns=EVIDENCE_COLUMNS + ["code"])
    if len(codes) <= 1 and "," not in "".join(codes):  # one version: said once, in the caption
        table = table.drop(columns="code")
        table.attrs["code"] = codes.pop() if codes else ""
    return table


def styled(table: pd.DataFrame):
    """``table`` ready to display: no index, and the measuring code's version in the caption
    when every row shares it."""
    style = table.style.hide(axis="index")
    if table.attrs.get("code"):
        style = style.set_caption(f"Every run of every row: measuring code "
                                  f"{table.attrs['code']}")
    return style


def undecided(claims) -> list[int]:
    """Indices of the claims the sequential design gives more seeds (inconclusive, below the
    last look)."""
    claims = list(claims)
    adjusted = holm([c.p_value() for c in claims])
    return [i for i, (c, p) in enumerate(zip(claims, adjusted)) if c.undecided(p)]


def verdicts_by_key(claims, table: pd.DataFrame, targets: dict) -> dict:
    """``{key: verdict}`` of ``claims`` (the rows of ``table``, :func:`evidence_table`), keyed
    by their target's key in ``targets``: for prose that quotes a verdict."""
    keys = {id(target): key for key, target in targets.items()}
    return {keys[id(c.target)]: verdict for c, verdict in zip(claims, table["verdict"])
            if id(c.target) in keys}


def print_evidence(table: pd.DataFrame) -> None:
    """One line per claim, ``verdict (n=..): claim`` (stable text for regression tests)."""
    for claim, n, result in zip(table["claim"], table["n"], table["verdict"]):
        print(f"{result} (n={n}): {claim}")


@dataclasses.dataclass
class Check:
    """A property that holds by construction or is deterministic: ``check`` in words, its
    ``source``, the ``result`` as measured (text) and whether it ``passed``."""

    check: str
    source: str
    result: str
    passed: bool


def check(target: Target, values) -> Check:
    """A :class:`Check` that every one of ``values`` lies on ``target``'s side of its
    threshold; the result shows the worst value."""
    x = _finite(values)
    above = target.side == "above"
    worst = float(x.min() if above else x.max())
    passed = bool((x > target.threshold).all() if above else (x < target.threshold).all())
    unit = f" {target.unit}" if target.unit else ""
    digits = target.digits
    shown = f"{worst:.{digits}f}" if abs(worst) >= 10 ** -digits or worst == 0 else f"{worst:.1e}"
    return Check(describe(target), target.source,
                 f"worst of {x.size}: {shown}{unit}", passed)


def checks_table(checks) -> pd.DataFrame:
    """The list under a claims table: ``check | source | result | pass``."""
    return pd.DataFrame([{"check": c.check, "source": c.source, "result": c.result,
                          "pass": "pass" if c.passed else "FAIL"} for c in checks],
                        columns=CHECK_COLUMNS)


def print_checks(table: pd.DataFrame) -> None:
    """One line per check, ``pass: check`` (stable text for regression tests)."""
    for check, passed in zip(table["check"], table["pass"]):
        print(f"{passed}: {check}")
