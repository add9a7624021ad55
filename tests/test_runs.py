"""hdlib.book.runs: a chapter's parameters, parameter files, and the papermill runner."""
import pytest

from hdlib.book import runs


def test_parameters_cell_defaults(tiny_notebook):
    assert runs.notebook_parameters(tiny_notebook) == {"value": 1, "fail": False}


def test_files_then_pairs_parsed_as_yaml(tiny_notebook, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("value: 5\nfail: true\n")
    chosen = runs.collect_parameters(tiny_notebook, [("value", "[1, 2]")], [params])
    assert chosen == {"value": [1, 2], "fail": True}  # -p wins over the file


def test_bad_parameter_files_and_names(tiny_notebook, tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        runs.collect_parameters(tiny_notebook, files=[listed])
    with pytest.raises(ValueError, match=r"parameter\(s\) valu for .*tiny.py; known: value, fail"):
        runs.collect_parameters(tiny_notebook, [("valu", "3")])
    with pytest.raises(ValueError, match="unknown parameter"):
        runs.run_notebook(tiny_notebook, {"nope": 1})  # refused before any kernel starts


def test_missing_notebook_and_missing_parameters_cell(tmp_path, tiny_notebook):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        runs.notebook_parameters(tmp_path / "nope.py")
    untagged = tmp_path / "untagged.py"
    untagged.write_text(tiny_notebook.read_text().replace(' tags=["parameters"]', ""))
    with pytest.raises(ValueError, match="no code cell tagged 'parameters'"):
        runs.notebook_parameters(untagged)


def test_default_output_goes_to_runs_folder(tmp_path):
    assert runs.default_output(tmp_path / "01_x.py") == tmp_path / "_runs" / "01_x.ipynb"


@pytest.mark.slow
def test_run_uses_the_notebook_folder(tiny_notebook, tmp_path):
    out = runs.run_notebook(tiny_notebook, {"value": 21}, tmp_path / "out" / "done.ipynb",
                            progress=False)
    assert (tmp_path / "cwd_marker.txt").read_text() == "21"
    text = out.read_text()
    assert '"42' in text or "42\\n" in text


@pytest.mark.slow
def test_failed_run_keeps_previous_output(tiny_notebook, tmp_path):
    out = tmp_path / "kept.ipynb"
    runs.run_notebook(tiny_notebook, {"value": 3}, out, progress=False)
    before = out.read_bytes()
    with pytest.raises(Exception, match="asked to fail"):
        runs.run_notebook(tiny_notebook, {"fail": True}, out, progress=False)
    assert out.read_bytes() == before
    assert "asked to fail" in out.with_suffix(".failed.ipynb").read_text()
    assert not list(tmp_path.glob(".kept*"))  # no temporary file left behind
