"""hdlib.book.cli (``python -m hdlib``): the run, sweep and list commands and their exit codes."""
import subprocess
import sys

import pytest

from hdlib.book.cli import main as cli
from tests.conftest import ROOT


def test_module_entry_point_starts():
    result = subprocess.run([sys.executable, "-m", "hdlib", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("run", "refresh", "sweep"))


def test_list_params(tiny_notebook, capsys):
    assert cli(["run", "--list-params", str(tiny_notebook)]) == 0
    assert capsys.readouterr().out.splitlines() == ["value = 1", "fail = False"]


def test_errors_exit_with_2_and_a_message(tiny_notebook, tmp_path, capsys):
    assert cli(["run", str(tiny_notebook), "-p", "valu", "3"]) == 2
    assert "unknown parameter(s) valu" in capsys.readouterr().err
    assert cli(["run", "--list-params", str(tmp_path / "nope.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["sweep", str(tiny_notebook), "-f", str(tmp_path / "none.yaml")]) == 2


@pytest.mark.slow
def test_run_with_parameter_file_and_pairs(tiny_notebook, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("value: 5\n")
    out = tmp_path / "out" / "done.ipynb"
    assert cli(["run", str(tiny_notebook), "-f", str(params), "-p", "value", "21", "-o", str(out),
                "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert (tmp_path / "cwd_marker.txt").read_text() == "21"


@pytest.mark.slow
def test_sweep_command_writes_the_table_and_fails_if_a_run_failed(tmp_path, job_notebook):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("configs:\n  four: {x: 4}\n  bad: {x: -2}\n")
    out = tmp_path / "cli"
    assert cli(["sweep", str(job_notebook), "-f", str(sweep_file), "-o", str(out),
                "--workers", "1"]) == 1  # one configuration failed
    table = (out / "results.csv").read_text()
    assert "four" in table and "x must be positive" in table
    assert not list(out.glob(".results*"))  # written atomically


@pytest.mark.parametrize("chapter, name, value, expected", [
    ("03_angular_velocity_integration", "seq_len", "-5", "seq_len must be a positive integer"),
    ("05_polar_temporal_constants", "learning_rate", "abc", "learning_rate must be a positive"),
    ("01_ei_ring_tracking", "grid_sigmas", "[0.1, -2]", "grid_sigmas"),
])
def test_bad_values_fail_in_one_line_before_a_kernel_starts(chapter, name, value, expected,
                                                            tmp_path, capsys):
    out = tmp_path / "never.ipynb"
    assert cli(["run", str(ROOT / "notebooks" / f"{chapter}.py"), "-p", name, value,
                "-o", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and expected in error and "\n" not in error
    assert not out.exists() and not out.with_suffix(".failed.ipynb").exists()


@pytest.mark.slow
def test_a_failing_cell_is_reported_in_one_line(tiny_notebook, tmp_path, capsys):
    out = tmp_path / "out.ipynb"
    assert cli(["run", str(tiny_notebook), "-p", "fail", "true", "-o", str(out),
                "--no-progress"]) == 1
    error = capsys.readouterr().err.strip()
    assert "AssertionError: asked to fail" in error and "\n" not in error
    assert not out.exists() and out.with_suffix(".failed.ipynb").exists()
