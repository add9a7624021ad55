"""Local Sphinx extension: the book's results overview, assembled from the chapters' outputs.

The page ``book/results.md`` ends with the marker ``<!-- chapter results -->``. When Sphinx
reads it, the marker is replaced by one section per chapter, taken from the stored notebook
``notebooks/NN_*.ipynb`` (the outputs that the regression tests check):

* the chapter's claims table: the last HTML table output whose header has a ``verdict``
  column (the five-column evidence table of :mod:`hdlib.book.claims`);
* a count of its verdicts and a link to the section of the chapter that holds the table;
* a thumbnail of the chapter's key result: the figure of the cell tagged ``key-figure``, or
  else the chapter's last figure, with that cell's alt text.

Nothing is copied by hand, so the overview cannot disagree with the chapters.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from docutils.nodes import make_id

MARKER = "<!-- chapter results -->"
PAGE = "book/results"
VERDICT_CELL = re.compile(r"<td[^>]*>\s*(holds|fails|inconclusive)\s*</td>")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def _heading_before(cells, index) -> str:
    for cell in reversed(cells[:index]):
        if cell["cell_type"] == "markdown":
            headings = re.findall(r"^#{2,3}\s+(.+)$", _text(cell["source"]), re.MULTILINE)
            if headings:
                return headings[-1].strip()
    return ""


def chapter_summary(path: Path) -> dict:
    """Title, claims table (HTML), its section, verdict counts and key figure of a chapter."""
    cells = json.loads(path.read_text())["cells"]
    title = next((m.group(1).strip() for c in cells if c["cell_type"] == "markdown"
                  for m in [re.search(r"^#\s+(.+)$", _text(c["source"]), re.MULTILINE)] if m),
                 path.stem)
    table, section, figures = "", "", []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            html = _text(data.get("text/html"))
            if "<table" in html and re.search(r"<th[^>]*>\s*verdict\s*</th>", html):
                table, section = html, _heading_before(cells, index)
            if "image/png" in data:
                figures.append(("key-figure" in cell["metadata"].get("tags", []),
                                _text(data["image/png"]).replace("\n", ""),
                                cell["metadata"].get("mystnb", {}).get("image", {}).get("alt")))
    key = [f for f in figures if f[0]] or figures[-1:] or [(False, "", "")]
    _, figure, alt = key[0]
    counts = {}
    for verdict in VERDICT_CELL.findall(table):
        counts[verdict] = counts.get(verdict, 0) + 1
    return {"title": title, "table": table, "section": section, "counts": counts,
            "figure": figure, "alt": alt}


def _link(path: Path, section: str) -> str:
    anchor = f"#{make_id(section)}" if section else ""
    return f"../notebooks/{path.stem}.html{anchor}"


def overview(root: Path) -> str:
    """The MyST text that replaces the marker."""
    parts = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        summary = chapter_summary(path)
        counts = ", ".join(f"{n} {v}" for v, n in sorted(summary["counts"].items()))
        parts.append(f"## {summary['title']}\n")
        link = _link(path, summary["section"])
        parts.append(f'<p><a href="{link}">The closing table of the chapter</a>'
                     f"{': ' + counts if counts else ''}.</p>\n")
        if summary["figure"]:
            parts.append(f'<img class="results-thumbnail" src="data:image/png;base64,'
                         f'{summary["figure"]}" alt="{summary["alt"] or summary["title"]}">\n')
        if summary["table"]:
            parts.append(f'<div class="results-table">\n{summary["table"]}\n</div>\n')
        else:
            parts.append("<p>This chapter has no claims table in its stored outputs.</p>\n")
    return "\n".join(parts)


def fill_results_page(app, docname, source):
    if docname == PAGE and MARKER in source[0]:
        source[0] = source[0].replace(MARKER, overview(Path(app.srcdir)))


def setup(app):
    app.connect("source-read", fill_results_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
