"""Fixtures shared by several test modules: a synthetic SC session on disk, and two tiny
notebooks (a chapter-like one for the runner and the command line, a sweep job)."""
import textwrap
from pathlib import Path

import pytest
import torch

from hdlib.datasets import sessions
from hdlib.fitters import sc_teacher

ROOT = Path(__file__).resolve().parents[1]

# One intra-op thread for the unit tests (the notebooks' kernels are other processes and keep
# theirs). The tests use tiny tensors, for which a second thread only adds synchronisation; on a
# loaded machine its OpenMP worker spins against other processes and a test takes twice as long.
# Results then also no longer depend on the machine's core count.
torch.set_num_threads(1)

HEADER = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "session.mat"
    return sc_teacher.make_synthetic_session(path, n_trials=120, n_bins=140, seed=1)


@pytest.fixture(scope="session")
def session(synthetic):
    return sessions.load_session(synthetic.path)


@pytest.fixture()
def tiny_notebook(tmp_path):
    """A jupytext chapter with two parameters; it writes ``cwd_marker.txt`` in its working
    folder, prints ``2 * value`` and fails on request."""
    path = tmp_path / "tiny.py"
    path.write_text(HEADER + textwrap.dedent('''
        # %% tags=["parameters"]
        value = 1
        fail = False

        # %%
        from pathlib import Path
        Path("cwd_marker.txt").write_text(str(value))
        assert not fail, "asked to fail"
        print(value * 2)
        '''))
    return path


@pytest.fixture()
def job_notebook(tmp_path):
    """A sweep job: writes ``{"square": x * x, "options": options}`` to ``result_path``."""
    path = tmp_path / "job.py"
    path.write_text(HEADER + textwrap.dedent('''
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
    return path
