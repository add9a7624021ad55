"""Tables on the page that fit the text column.

:func:`show` displays a data frame as one or more HTML tables: headers become words
(``bits_per_spike`` -> ``bits per spike``), numbers are rounded, and the columns are split into
groups, each repeating the index, so that no table is wider than the column (about 690 px in
the book's theme). The raw frames stay in ``results/`` for those who want them.
"""
from __future__ import annotations

import numbers

import pandas as pd

#: The text column's width and the width of one character of table text, in CSS pixels.
COLUMN_PX = 680
CHAR_PX = 7.4
CELL_PADDING_PX = 18


def readable(name) -> str:
    """A header in words: underscores become spaces."""
    return str(name).replace("_", " ")


def _text(value, digits: int) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:.{digits}g}" if value == value else ""
    return str(value)


def column_px(header: str, cells) -> float:
    """Estimated width of a column: its widest unbreakable word (a number is one), its header
    and its cells wrapping at spaces."""
    words = [w for text in [header, *cells] for w in str(text).split()] or [""]
    widest = max(len(w) for w in words)
    longest = max(len(str(text)) for text in [header, *cells])
    return min(longest, max(widest, 16)) * CHAR_PX + CELL_PADDING_PX


def groups(frame: pd.DataFrame, width_px: float = COLUMN_PX) -> list[list]:
    """The frame's columns in consecutive groups that each fit ``width_px`` beside the index."""
    index_px = column_px(readable(frame.index.name or ""), frame.index)
    chosen, current, used = [], [], index_px
    for name in frame.columns:
        px = column_px(readable(name), frame[name])
        if current and used + px > width_px:
            chosen.append(current)
            current, used = [], index_px
        current.append(name)
        used += px
    return chosen + ([current] if current else [])


def show(frame: pd.DataFrame, digits: int = 3, width_px: float = COLUMN_PX,
         units: dict | None = None) -> list:
    """Display ``frame`` (numbers to ``digits`` significant digits, readable headers, each
    column of ``units`` with its unit in brackets) as tables that fit ``width_px``; returns
    the displayed frames."""
    from IPython.display import display

    frame = frame.rename(columns={name: f"{name} ({unit})" for name, unit in (units or {}).items()
                                  if name in frame.columns})
    text = frame.apply(lambda column: column.map(lambda v: _text(v, digits)))
    text.index = [_text(v, digits) for v in frame.index]
    text.index.name = readable(frame.index.name) if frame.index.name else None
    shown = []
    for names in groups(text, width_px):
        part = text[names].rename(columns=readable)
        display(part)
        shown.append(part)
    return shown
