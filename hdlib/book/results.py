"""Stored results: what a chapter measured in one run, with where and how it was measured.

A chapter run with a ``result_path`` parameter writes one JSON file there::

    {"parameters": {...}, "metrics": {name: number or list}, "provenance": {...}}

``provenance`` records the git commit (and whether the work tree had uncommitted changes), a
hash of hdlib's source, the Python/torch/numpy versions, the machine and the date. Multi-seed
and full-scale runs go through ``python -m hdlib sweep`` into ``results/<chapter>_<sweep>/``,
which is committed; chapters read them back with :func:`load_results`.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import pandas as pd

from .. import io

PACKAGE = Path(__file__).resolve().parents[1]
IMPORTED = time.time()


def source_hash() -> str:
    """First 16 hex digits of the sha256 of every ``.py``/``.yaml`` file of hdlib, in path
    order (the same files the Makefile's cache key covers)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.suffix in {".py", ".yaml"}):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def measurement_hash() -> str:
    """First 16 hex digits of the sha256 of the code a measurement depends on: every
    ``.py``/``.yaml`` file of hdlib outside ``hdlib/book`` (the models, training, losses,
    metrics, data and fits; ``hdlib.book`` only runs, decides and presents). Every run of a
    claim's row must share it (:mod:`hdlib.book.claims`)."""
    digest = hashlib.sha256()
    book = PACKAGE / "book"
    for path in sorted(p for p in PACKAGE.rglob("*")
                       if p.suffix in {".py", ".yaml"} and book not in p.parents):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance() -> dict:
    """Where and with what this process runs (see the module docstring)."""
    import numpy
    import torch

    return {
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", str(PACKAGE))),
        "hdlib_hash": source_hash(),
        "measurement_hash": measurement_hash(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _plain(value):
    """JSON-ready copy: numpy/torch scalars and arrays become numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_result(path, metrics: dict, parameters: dict, targets: dict | None = None
                 ) -> Path | None:
    """Write ``metrics`` (name -> number or list) with the run's ``parameters`` and its
    provenance to ``path`` atomically. An empty ``path`` writes nothing (a chapter read in the
    book has no ``result_path``). ``targets`` (the chapter's claim targets,
    :data:`hdlib.book.parameters.TARGETS`) are recorded as ``{key: [threshold, side]}``, so a
    threshold changed after the run is caught (``tests/test_stored_results.py``)."""
    if not path:
        return None
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"metrics must be a non-empty mapping of name -> number; got {metrics!r}")
    record = {"parameters": _plain(parameters), "metrics": _plain(metrics),
              "provenance": provenance()}
    if targets is not None:
        record["targets"] = target_record(targets)
    text = json.dumps(record, indent=1, allow_nan=True)
    with io.atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def target_record(targets: dict) -> dict:
    """``{key: [threshold, side]}`` of a chapter's targets, as result files record them."""
    return {"/".join(key) if isinstance(key, tuple) else str(key): [float(t.threshold), t.side]
            for key, t in targets.items()}


def changed_targets(folder, targets: dict) -> list[str]:
    """One line per result file of ``folder`` that recorded a threshold or side different from
    ``targets`` now (or a target that no longer exists): the thresholds of a claim must be
    fixed before its runs."""
    current = target_record(targets)
    changes = []
    for path in sorted(Path(folder).glob("*.json")):
        recorded = read_result(path).get("targets", {})
        for key, value in recorded.items():
            if current.get(key) != value:
                changes.append(f"{path.name}: {key} recorded {value}, now {current.get(key)}")
    return changes


def read_result(path) -> dict:
    """One result file; a missing or malformed file is an error naming it."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"result file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"result file {path} is not JSON: {error}") from None
    if not isinstance(record, dict) or not {"parameters", "metrics"} <= set(record):
        raise ValueError(f"result file {path} lacks 'parameters' and 'metrics'")
    return record


def load_results(folder) -> pd.DataFrame:
    """Every result file of ``folder`` as one row (index: the file's stem): the metrics as
    columns, plus ``seed`` and the provenance's ``commit``, ``hdlib_hash``, ``version`` (the
    measurement hash, or hdlib's hash for runs that predate it) and ``date``."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no result files in {str(folder)!r}: run the sweep that "
                                f"writes them (python -m hdlib sweep ... -o {folder})")
    rows = {}
    for path in files:
        record = read_result(path)
        prov = record.get("provenance", {})
        rows[path.stem] = {**record["metrics"], "seed": record["parameters"].get("seed"),
                           "commit": prov.get("commit"), "hdlib_hash": prov.get("hdlib_hash"),
                           "version": prov.get("measurement_hash", prov.get("hdlib_hash")),
                           "date": prov.get("date")}
    return pd.DataFrame.from_dict(rows, orient="index")


def provenance_line() -> str:
    """One line for the end of a chapter: the commit, hdlib's hash, the versions, the thread
    count, the date and the seconds since this module was imported (a chapter imports it in
    its setup cell, so: the chapter's running time)."""
    prov = provenance()
    seconds = time.time() - IMPORTED
    dirty = ", with uncommitted changes" if prov["uncommitted_changes"] else ""
    return (f"Run on commit {prov['commit']}{dirty}, hdlib {prov['hdlib_hash']}; Python "
            f"{prov['python']}, torch {prov['torch']}, numpy {prov['numpy']}; "
            f"{prov['torch_threads']} torch threads on {prov['machine']}; "
            f"{prov['date'][:10]}; {seconds:.0f} s from the chapter's setup to this line.")


def describe_provenance(table: pd.DataFrame) -> str:
    """One line for the page: how many runs, from which commits, on which dates."""
    commits = ", ".join(sorted(set(table["commit"].dropna())))
    dates = sorted(str(d)[:10] for d in table["date"].dropna())
    span = dates[0] if dates and dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}" \
        if dates else "unknown dates"
    return f"{len(table)} stored runs (commit {commits or 'unknown'}, {span})"
