"""Files that must never be left half-written: every write goes to a temporary file in the
target's folder and is moved into place (``os.replace``, atomic on one file system) only when it
is complete, so an interrupted or failed write keeps the previous file."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is
    removed and ``path`` is left as it was. The new file gets the usual permissions (umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch(obj, path) -> Path:
    """``torch.save`` through :func:`atomic_path`."""
    import torch  # here, so that the command line starts without loading torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_torch(path, expected_format: str | None = None) -> dict:
    """Load a file written by :func:`save_torch` with ``weights_only=True`` (no code runs).

    A missing, corrupt or foreign file is a ``FileNotFoundError``/``ValueError`` naming it;
    ``expected_format`` is compared with the file's ``"format"`` entry.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint: {error}") from None
    if expected_format is not None and (not isinstance(state, dict)
                                        or state.get("format") != expected_format):
        raise ValueError(f"checkpoint {path} is not a {expected_format!r} checkpoint")
    return state


def write_json(obj, path) -> Path:
    """Pretty-printed JSON through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)
