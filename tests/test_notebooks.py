"""The chapters as files: pairing, parameters, prose, and the book build."""

import json
from pathlib import Path

import jupytext
import pytest

from hdlib.book import results, runs

ROOT = Path(__file__).resolve().parents[1]


CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _cells(path):
    return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_pair_in_sync_and_stored_with_outputs(source):
    stored = source.with_suffix(".ipynb")
    assert stored.exists(), f"{stored.name} missing: run `make execute`"
    assert _cells(source) == _cells(stored), f"{source.name} and {stored.name} differ"
    code = [c for c in json.loads(stored.read_text())["cells"] if c["cell_type"] == "code"]
    checked = [c for c in code if "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert checked, f"{stored.name} has no cell marked for nbval to check"
    assert all(c.get("outputs") for c in checked), f"{stored.name}: a checked cell has no output"
    with_output = sum(bool(c.get("outputs")) for c in code)
    assert with_output > len(code) / 2, f"{stored.name} was stored without its outputs"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_parameters_cell_then_validation(source):
    notebook = jupytext.read(source)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "validate.parameters(" in code[1].source
    assert runs.notebook_parameters(source)


def _line_counts(path) -> dict[str, int]:
    """Non-blank source lines per cell type over the jupytext cells of a chapter."""
    counts = {"markdown": 0, "code": 0}
    for cell in jupytext.read(path).cells:
        lines = sum(1 for line in cell.source.splitlines() if line.strip())
        counts[cell.cell_type] = counts.get(cell.cell_type, 0) + lines
    return counts


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_explains_at_least_as_much_as_it_computes(source):
    """A chapter is prose with code in it: its markdown lines are at least its code lines
    (heavy logic belongs in hdlib, not in the notebook)."""
    counts = _line_counts(source)
    assert counts["markdown"] >= counts["code"], (
        f"{source.name}: {counts['markdown']} markdown lines for {counts['code']} code lines; "
        "move code into hdlib or explain it")


@pytest.mark.parametrize("params", sorted((ROOT / "notebooks" / "params").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_parameter_files_name_known_parameters(params):
    chapter = next(ROOT.glob(f"notebooks/{params.stem[:2]}_*.py"))
    assert runs.collect_parameters(chapter, files=[params])


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_stored_outputs_were_made_by_this_library(source):
    stored = source.with_suffix(".ipynb")
    stamp = json.loads(stored.read_text())["metadata"].get("hdlib", {}).get("source_hash")
    assert stamp == results.source_hash(), (
        f"{stored.name} was executed with another version of hdlib (stamp {stamp}, library "
        f"{results.source_hash()}): run `make execute`")
