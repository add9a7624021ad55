"""hdlib.book.runs and the ``run`` command: parameters of a chapter, the papermill runner."""
import pytest

from hdlib.book import runs
from hdlib.book.cli import main as cli

TINY = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
value = 1
fail = False

# %%
from pathlib import Path
Path("cwd_marker.txt").write_text(str(value))
assert not fail, "asked to fail"
print(value * 2)
"""


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return path


def test_list_params(tiny, capsys):
    assert cli(["run", "--list-params", str(tiny)]) == 0
    assert capsys.readouterr().out.splitlines() == ["value = 1", "fail = False"]


@pytest.mark.slow
def test_run_with_parameters_uses_notebook_folder(tiny, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("value: 5\n")
    out = tmp_path / "out" / "done.ipynb"
    assert cli(["run", str(tiny), "-f", str(params), "-p", "value", "21", "-o", str(out),
                "--no-progress"]) == 0
    assert (tmp_path / "cwd_marker.txt").read_text() == "21"
    text = out.read_text()
    assert '"42' in text or "42\\n" in text


def test_unknown_parameter_is_an_error(tiny, capsys):
    assert cli(["run", str(tiny), "-p", "valu", "3"]) == 2
    assert "unknown parameter(s) valu" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown parameter"):
        runs.run_notebook(tiny, {"nope": 1})


@pytest.mark.slow
def test_failed_run_keeps_previous_output(tiny, tmp_path):
    out = tmp_path / "kept.ipynb"
    runs.run_notebook(tiny, {"value": 3}, out, progress=False)
    before = out.read_bytes()
    with pytest.raises(Exception, match="asked to fail"):
        runs.run_notebook(tiny, {"fail": True}, out, progress=False)
    assert out.read_bytes() == before
    assert out.with_suffix(".failed.ipynb").exists()
    assert not list(tmp_path.glob(".kept*"))  # no temporary file left behind


def test_missing_notebook_is_a_clear_error(tmp_path, capsys):
    assert cli(["run", "--list-params", str(tmp_path / "nope.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
