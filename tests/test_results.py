"""hdlib.book.results: result files with provenance, and reading a folder of them back."""
import json

import numpy as np
import pytest
import torch

from hdlib.book import results


def test_write_then_load(tmp_path):
    for seed, error in [(0, 1.0), (1, 3.0)]:
        results.write_result(tmp_path / f"run_seed{seed}.json",
                             {"error": np.float64(error), "curve": torch.tensor([1.0, 2.0])},
                             {"seed": seed, "steps": np.int64(7)})
    record = json.loads((tmp_path / "run_seed1.json").read_text())
    assert record["metrics"] == {"error": 3.0, "curve": [1.0, 2.0]}
    assert record["parameters"] == {"seed": 1, "steps": 7}
    assert record["provenance"]["hdlib_hash"] == results.source_hash()
    assert record["provenance"]["torch"] == torch.__version__
    table = results.load_results(tmp_path)
    assert list(table.index) == ["run_seed0", "run_seed1"]
    assert table["error"].tolist() == [1.0, 3.0] and table["seed"].tolist() == [0, 1]
    assert results.describe_provenance(table).startswith("2 stored runs (commit ")


def test_empty_path_writes_nothing_and_bad_input_is_named(tmp_path):
    assert results.write_result("", {"a": 1}, {}) is None
    with pytest.raises(ValueError, match="metrics must be"):
        results.write_result(tmp_path / "x.json", {}, {})
    with pytest.raises(FileNotFoundError, match="no result files"):
        results.load_results(tmp_path)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json lacks"):
        results.load_results(tmp_path)


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "r.json"
    results.write_result(path, {"a": 1}, {"seed": 0})
    before = path.read_text()
    with pytest.raises(TypeError):
        results.write_result(path, {"a": object()}, {"seed": 0})
    assert path.read_text() == before


def test_provenance_line_names_commit_hash_versions_and_threads():
    line = results.provenance_line()
    assert results.source_hash() in line and torch.__version__ in line
    assert f"{torch.get_num_threads()} torch threads" in line and "\n" not in line
