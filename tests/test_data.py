"""The data shipped with the book: checksum and loading."""
import hashlib

import torch

from hdlib.datasets.sessions import load_session
from tests.conftest import ROOT

SESSION = ROOT / "data" / "sc" / "rnn_export_Newton_08_14_2025_SC.mat"
SHA256 = "b959bc034ea0740fc1ed263704d7b8651993ba582bd04726476274d3737a02c1"


def test_recorded_session_is_the_published_file():
    assert hashlib.sha256(SESSION.read_bytes()).hexdigest() == SHA256
    assert (SESSION.parent / "LICENSE").read_text().startswith("MIT License")


def test_recorded_session_loads_with_its_unit_types():
    session = load_session(SESSION)
    assert tuple(session.rates.shape) == (536, 219, 41)
    assert session.bin_size_ms == 25.0
    # the file lists 25 classic (type 1) and 16 interneuron (type 2) units
    assert int(session.is_excitatory.sum()) == 25
    assert int((~session.is_excitatory).sum()) == 16
    assert torch.isfinite(session.rates).all() and session.mask.any(dim=1).all()
