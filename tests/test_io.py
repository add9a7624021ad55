"""hdlib.io: atomic writes, checkpoints that load without running code, JSON."""
import json
import os
import stat

import pytest
import torch

from hdlib import io


def test_atomic_path_replaces_the_file_only_when_the_write_completes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with io.atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path
        tmp.write_text("new")
        assert path.read_text() == "old"  # nothing visible before the block ends
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(type(error)):
        with io.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise error
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "new" / "b.bin"):
            raise RuntimeError
    assert list((tmp_path / "new").iterdir()) == []


def test_atomic_path_makes_folders_keeps_the_suffix_and_uses_the_umask(tmp_path):
    path = tmp_path / "x" / "y" / "out.ipynb"
    old = os.umask(0o027)
    try:
        with io.atomic_path(path, suffix=".ipynb") as tmp:
            assert tmp.suffix == ".ipynb" and tmp.name.startswith(".out.ipynb-")
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~0o027  # not mkstemp's private 0o600


def test_torch_round_trip_and_format_check(tmp_path):
    state = {"format": "demo-1", "w": torch.arange(4.0), "history": {"loss": [1.0, 0.5]}}
    path = io.save_torch(state, tmp_path / "ck.pt")
    loaded = io.load_torch(path, "demo-1")
    assert torch.equal(loaded["w"], state["w"]) and loaded["history"] == state["history"]
    with pytest.raises(ValueError, match="not a 'demo-2' checkpoint"):
        io.load_torch(path, "demo-2")
    io.save_torch([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a 'demo-1' checkpoint"):
        io.load_torch(tmp_path / "list.pt", "demo-1")
    assert io.load_torch(tmp_path / "list.pt") == [1, 2]


class Payload:
    """An arbitrary object: unpickling it would run code, which weights_only refuses."""


def test_load_torch_refuses_missing_corrupt_and_code_carrying_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        io.load_torch(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        io.load_torch(bad)
    torch.save({"format": "demo-1", "object": Payload()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="corrupt or not a checkpoint"):
        io.load_torch(tmp_path / "code.pt")


def test_write_json_is_sorted_indented_and_ends_with_a_newline(tmp_path):
    path = io.write_json({"b": 1, "a": [1, 2]}, tmp_path / "r.json")
    text = path.read_text()
    assert text == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert json.loads(text) == {"a": [1, 2], "b": 1}


def test_write_json_of_something_unserialisable_keeps_the_old_file(tmp_path):
    path = io.write_json({"a": 1}, tmp_path / "r.json")
    with pytest.raises(TypeError):
        io.write_json({"a": object()}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
