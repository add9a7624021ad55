"""hdlib.book.sphinx_results: the results overview assembled from stored notebooks."""
import json

from hdlib.book import sphinx_results

TABLE = ("<table><thead><tr><th>claim</th><th>source</th><th>measured</th><th>n</th>"
         "<th class=\"col_heading\">verdict</th></tr></thead><tbody><tr><td>a</td>"
         "<td>book</td><td>1</td><td>3</td>"
         "<td id=\"T_0_row0_col4\" class=\"data\">holds</td></tr><tr><td>b</td><td>000: R</td>"
         "<td>2</td><td>3</td>"
         "<td>fails</td></tr><tr><td>c</td><td>book</td><td>3</td><td>5</td>"
         "<td>holds</td></tr></tbody></table>")


def _cell(kind, source, outputs=(), tags=(), alt=None):
    cell = {"cell_type": kind, "source": source, "metadata": {}}
    if tags:
        cell["metadata"]["tags"] = list(tags)
    if alt:
        cell["metadata"]["mystnb"] = {"image": {"alt": alt}}
    if kind == "code":
        cell["outputs"] = [{"output_type": "display_data", "data": d} for d in outputs]
    return cell


def _notebook(tmp_path, cells):
    path = tmp_path / "notebooks" / "07_demo.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps({"cells": cells}))
    return path


def test_summary_takes_the_key_figure_the_table_and_its_section(tmp_path):
    path = _notebook(tmp_path, [
        _cell("markdown", "# A demo chapter\n\nText."),
        _cell("code", "plot()", [{"image/png": "AAAA"}], tags=["key-figure"], alt="first"),
        _cell("code", "plot()", [{"image/png": "BBBB"}], alt="second"),
        _cell("markdown", "## What the document claims\n"),
        _cell("code", "table", [{"text/html": TABLE, "text/plain": "..."}]),
    ])
    summary = sphinx_results.chapter_summary(path)
    assert summary["title"] == "A demo chapter"
    assert (summary["figure"], summary["alt"]) == ("AAAA", "first")
    assert summary["section"] == "What the document claims"
    assert summary["counts"] == {"holds": 2, "fails": 1}
    text = sphinx_results.overview(tmp_path)
    assert "../notebooks/07_demo.html#what-the-document-claims" in text
    assert "2 holds" in text and "1 fails" in text and 'alt="first"' in text


def test_without_a_key_figure_the_last_one_is_shown(tmp_path):
    path = _notebook(tmp_path, [
        _cell("code", "plot()", [{"image/png": "AAAA"}], alt="first"),
        _cell("code", "plot()", [{"image/png": "BBBB"}], alt="second"),
    ])
    summary = sphinx_results.chapter_summary(path)
    assert (summary["figure"], summary["alt"], summary["table"]) == ("BBBB", "second", "")
    assert "no claims table" in sphinx_results.overview(tmp_path)


def test_marker_replaced_only_on_the_results_page(tmp_path):
    _notebook(tmp_path, [_cell("markdown", "# T\n")])

    class App:
        srcdir = str(tmp_path)

    source = [f"intro\n{sphinx_results.MARKER}\n"]
    sphinx_results.fill_results_page(App, "book/other", source)
    assert sphinx_results.MARKER in source[0]
    sphinx_results.fill_results_page(App, "book/results", source)
    assert sphinx_results.MARKER not in source[0] and "## T" in source[0]
