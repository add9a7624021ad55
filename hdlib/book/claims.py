"""The closing table of every chapter: each claim of the source document, what was measured,
and whether the claim holds."""
from __future__ import annotations

import pandas as pd

COLUMNS = ["claim", "measured", "holds"]


def claims_table(rows) -> pd.DataFrame:
    """``rows`` of ``(claim, measured, holds)``; ``holds`` is coerced to ``bool``."""
    table = pd.DataFrame(list(rows), columns=COLUMNS)
    table["holds"] = table["holds"].astype(bool)
    return table


def print_verdicts(table: pd.DataFrame) -> None:
    """One line per claim, ``holds: ...`` or ``FAILS: ...`` (stable text for regression tests)."""
    for claim, holds in zip(table["claim"], table["holds"]):
        print(f"{'holds' if holds else 'FAILS'}: {claim}")
