"""hdlib.book.sweeps and the ``sweep`` command: sweep files, merging, the runner."""

import json
import textwrap

import pytest

from hdlib.book import sweeps


@pytest.fixture
def job_notebook(tmp_path):
    notebook = tmp_path / "job.py"
    notebook.write_text(textwrap.dedent('''\
        # ---
        # jupyter:
        #   kernelspec:
        #     display_name: Python 3 (ipykernel)
        #     language: python
        #     name: python3
        # ---

        # %% tags=["parameters"]
        x = 1
        options = {}
        result_path = "r.json"

        # %%
        import json
        if x < 0:
            raise ValueError("x must be positive")
        json.dump({"square": x * x, "options": options}, open(result_path, "w"))
        '''))
    return notebook


@pytest.mark.slow
def test_sweep_keeps_going_past_a_failure(tmp_path, job_notebook):
    notebook = job_notebook
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("base: {options: {a: 1}}\nconfigs:\n  two: {x: 2, options: {b: 2}}\n"
                          "  bad: {x: -1}\n  three: {x: 3}\n")
    base, configs = sweeps.load_sweep(sweep_file)
    table = sweeps.run_sweep(notebook, configs, tmp_path / "out", base=base, workers=2,
                             progress=False)
    assert table.loc["two", "status"] == "ok" and table.loc["two", "square"] == 4
    assert table.loc["two", "options"] == {"a": 1, "b": 2}
    assert table.loc["three", "square"] == 9
    assert table.loc["bad", "status"] == "failed" and "x must be positive" in table.loc[
        "bad", "error"]
    assert json.loads((tmp_path / "out" / "two.json").read_text())["square"] == 4


def test_bad_sweep_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("configs: [1, 2]\n")
    with pytest.raises(ValueError, match="configs"):
        sweeps.load_sweep(path)
    path.write_text("configs: {a: {}}\nextra: 1\n")
    with pytest.raises(ValueError, match="extra"):
        sweeps.load_sweep(path)
    with pytest.raises(ValueError, match="engine"):
        sweeps.make_executor("pbs")


@pytest.mark.slow
def test_sweep_command_line(tmp_path, job_notebook, capsys):
    from hdlib.book.cli import main

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("configs:\n  four: {x: 4}\n  bad: {x: -2}\n")
    out = tmp_path / "cli"
    assert main(["sweep", str(job_notebook), "-f", str(sweep_file), "-o", str(out),
                 "--workers", "1"]) == 1  # one configuration failed
    table = (out / "results.csv").read_text()
    assert "four" in table and "x must be positive" in table
    assert main(["sweep", str(job_notebook), "-f", str(tmp_path / "none.yaml")]) == 2
