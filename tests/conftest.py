"""Fixtures shared by several test modules: a synthetic SC session on disk."""
from pathlib import Path

import pytest

from hdlib.datasets import sessions
from hdlib.fitters import sc_teacher

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "session.mat"
    return sc_teacher.make_synthetic_session(path, n_trials=120, n_bins=140, seed=1)


@pytest.fixture(scope="session")
def session(synthetic):
    return sessions.load_session(synthetic.path)
