"""Parameter sweeps: one papermill run of a notebook per configuration.

A sweep file (YAML)::

    base:                 # parameters of every run
      steps: 120
      fit_options: {learning_rate: 0.03}
    configs:              # name -> parameters that differ from base
      baseline: {}
      poisson_ltrial: {fit_options: {ltrial_distance: poisson}}
    seeds: [0, 1, 2]      # optional: every configuration once per seed
    notebook: ../04_sc_eirnn_fit.py   # optional: the notebook to run, relative to this file

Mapping-valued parameters are merged key by key (``fit_options`` above). An optional top-level
``seeds: [0, 1, 2]`` runs every configuration once per seed (runs named ``NAME_seedS``). Every
run receives ``result_path``: the notebook writes its results there as JSON
(:func:`hdlib.book.results.write_result`), and :func:`run_sweep` gathers them into one table.
A run whose result file carries the same key (a hash of its parameters, the notebook's source and
hdlib's source) is not run again, so an interrupted sweep resumes where it stopped. Executed
notebooks and logs go to ``OUTPUT/runs/``.

Runs go to any executor with ``submit(fn, *args)`` returning an object with ``result()``: a
local process pool by default, a ``submitit.AutoExecutor`` for Slurm, or a
``dask.distributed.Client``. A failed configuration becomes a row with its error; the others
are kept.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
from pathlib import Path

import pandas as pd
import yaml

from .. import io
from . import results
from .runs import check_parameters, run_notebook


def load_sweep(path) -> tuple[dict, dict]:
    """``(base, configs)`` from a sweep file, checked for shape, with ``seeds`` expanded."""
    with open(path) as handle:
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, dict) or not isinstance(document.get("configs"), dict):
        raise ValueError(f"sweep file {path} must hold a 'configs' mapping (name -> parameters)")
    unknown = sorted(set(document) - {"base", "configs", "seeds", "looks", "notebook"})
    if unknown:
        raise ValueError(f"sweep file {path}: unknown section(s) {unknown}; "
                         "expected 'base', 'configs', 'seeds', 'looks' and 'notebook'")
    base = document.get("base") or {}
    configs = {name: (params or {}) for name, params in document["configs"].items()}
    for name, params in [("base", base), *configs.items()]:
        if not isinstance(params, dict):
            raise ValueError(f"sweep file {path}: {name!r} must be a mapping of parameters")
    if "seeds" in document:
        configs = expand_seeds(configs, document["seeds"])
    return base, configs


def sweep_looks(path) -> list[int] | None:
    """The file's ``looks`` (numbers of seeds at which the sequential design looks, e.g.
    ``[3, 6, 10]``; :mod:`hdlib.book.claims`), checked against its ``seeds``, or None."""
    with open(path) as handle:
        document = yaml.safe_load(handle) or {}
    looks = document.get("looks")
    if looks is None:
        return None
    seeds = document.get("seeds") or []
    if (not isinstance(looks, list) or not looks
            or not all(isinstance(n, int) and n > 0 for n in looks)
            or looks != sorted(set(looks)) or looks[-1] > len(seeds)):
        raise ValueError(f"sweep file {path}: looks must be increasing numbers of seeds, the "
                         f"last at most the {len(seeds)} seeds listed; got {looks!r}")
    return looks


def seed_of(name: str) -> tuple[str, int]:
    """``('NAME', S)`` of a run named ``NAME_seedS``."""
    config, seed = name.rsplit("_seed", 1)
    return config, int(seed)


def run_looks(notebook, configs: dict, output_dir, looks, undecided, **options):
    """The sequential design: run every configuration on its first ``looks[0]`` seeds, then,
    look by look, run the next seeds of the configurations ``undecided(output_dir)`` names,
    until none is undecided or the last look is reached. ``configs`` is expanded over all the
    seeds (:func:`expand_seeds`); ``options`` go to :func:`run_sweep`. Returns the tables of
    every look, concatenated."""
    seeds = sorted({seed_of(name)[1] for name in configs})
    active = {seed_of(name)[0] for name in configs}
    drop_stale(notebook, configs, output_dir, options.get("base"))
    tables = []
    for k, n in enumerate(looks):
        chosen = {name: params for name, params in configs.items()
                  if seed_of(name)[0] in active and seed_of(name)[1] in seeds[:n]}
        tables.append(run_sweep(notebook, chosen, output_dir, **options))
        if k + 1 < len(looks):
            active &= set(undecided(output_dir))
            if not active:
                break
    return pd.concat(tables).groupby(level=0).last()


def drop_stale(notebook, configs: dict, output_dir, base: dict | None = None) -> list[str]:
    """Remove the result files of ``configs`` (all their seeds) in ``output_dir`` that another
    :func:`sweep_key` made (older code, thresholds or parameters), so that a look never
    decides on runs of two code versions and a seed the looks do not reach is not left
    behind from an older version. Returns the names removed."""
    stored = {name: overrides for name, overrides in configs.items()
              if (Path(output_dir) / f"{name}.json").exists()}
    removed = []
    for name, params, key in planned_runs(notebook, stored, output_dir, base):
        path = Path(params["result_path"])
        if not already_done(path, key):
            path.unlink()
            removed.append(name)
    return removed


def planned_runs(notebook, configs: dict, output_dir, base: dict | None = None):
    """``(name, parameters, sweep_key)`` of each configuration: ``base`` merged with its
    overrides, its ``result_path`` in ``output_dir``, and the key its result must carry."""
    output_dir = Path(output_dir).resolve()
    notebook = str(Path(notebook).resolve())
    targets = chapter_targets(output_dir)
    for name, overrides in configs.items():
        params = {**merge(base or {}, overrides),
                  "result_path": str(output_dir / f"{name}.json")}
        yield name, params, sweep_key(notebook, params, targets)


def sweep_notebook(path, given=None) -> str:
    """The notebook a sweep runs: ``given`` (the command line's) or the file's ``notebook``
    entry (relative to the file's folder); one of them is required, and they must agree."""
    with open(path) as handle:
        named = (yaml.safe_load(handle) or {}).get("notebook")
    named = str((Path(path).parent / named).resolve()) if named else None
    if given and named and Path(given).resolve() != Path(named):
        raise ValueError(f"sweep file {path} runs {named}, but the command names {given}")
    if not (given or named):
        raise ValueError(f"name the notebook to run: on the command line or as 'notebook:' "
                         f"in {path}")
    return given or named


def expand_seeds(configs: dict, seeds) -> dict:
    """Each configuration once per seed: ``NAME_seedS`` with parameter ``seed = S``."""
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers; got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat; got {seeds}")
    return {f"{name}_seed{seed}": {**params, "seed": seed}
            for name, params in configs.items() for seed in seeds}


def sweep_key(notebook, parameters: dict, targets: dict | None = None) -> str:
    """What a run depends on: a hash of its merged parameters (without ``result_path``), the
    notebook's source, the code a measurement depends on
    (:func:`hdlib.book.results.measurement_hash`) and the chapter's claim ``targets`` (a
    threshold changed after a run makes the run stale)."""
    chosen = {k: v for k, v in parameters.items() if k != "result_path"}
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode())
    digest.update(Path(notebook).read_bytes())
    digest.update(results.measurement_hash().encode())
    if targets:
        digest.update(json.dumps(targets, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def chapter_targets(output_dir) -> dict | None:
    """The claim targets (:func:`hdlib.book.results.target_record`) of the chapter whose
    number starts the name of ``output_dir`` (``results/04_phases`` -> chapter 04), or None."""
    from .parameters import TARGETS

    number = Path(output_dir).name[:2]
    return results.target_record(TARGETS[number]) if number in TARGETS else None


def _stored_key(record: dict):
    return record.get("provenance", {}).get("sweep_key", record.get("sweep_key"))


def already_done(result_path, key: str) -> bool:
    """Whether ``result_path`` holds the result of a finished run with this :func:`sweep_key`."""
    try:
        record = json.loads(Path(result_path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and _stored_key(record) == key


def check_configs(notebook, configs: dict, base: dict | None = None) -> None:
    """Refuse, before anything runs, a configuration with a parameter the notebook does not
    have or a value its checks reject; the error names the configuration."""
    for name, overrides in configs.items():
        try:
            check_parameters(notebook, merge(base or {}, overrides))
        except ValueError as error:
            raise ValueError(f"sweep configuration {name!r}: {error}") from None


def merge(base: dict, overrides: dict) -> dict:
    """``base`` updated by ``overrides``, merging mapping values one level deep."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _row(record: dict) -> dict:
    """A result file as a table row: its metrics (files of the results format) or its keys."""
    row = dict(record["metrics"]) if "metrics" in record else dict(record)
    row.pop("sweep_key", None)
    return row


def _stamp(result_path, provenance: dict) -> dict:
    """Add the sweep's ``provenance`` (key, command, seconds) to a finished run's result file."""
    record = json.loads(Path(result_path).read_text())
    targets = provenance.pop("targets", None)
    if "metrics" in record:
        record["provenance"] = {**record.get("provenance", {}), **provenance}
        if targets:
            record["targets"] = targets
    else:
        record["sweep_key"] = provenance["sweep_key"]
    with io.atomic_path(result_path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _run_one(notebook: str, parameters: dict, output: str, provenance: dict) -> dict:
    """Worker: run one configuration; never raises (errors are returned). The kernel's own
    console output goes to ``OUTPUT.log``, not to the caller's."""
    import os
    import sys
    import time

    log = open(Path(output).with_suffix(".log"), "w")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    start = time.perf_counter()
    try:
        run_notebook(notebook, parameters, output, progress=False)
        record = _stamp(parameters["result_path"],
                        {**provenance, "seconds": round(time.perf_counter() - start, 1)})
        return {"status": "ok", **_row(record)}
    except Exception as error:  # one failed configuration must not lose the others
        message = str(error).strip().splitlines()
        return {"status": "failed", "error": f"{type(error).__name__}: "
                                             f"{message[-1] if message else ''}"[:300]}
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        log.close()


def run_sweep(notebook, configs: dict, output_dir, base: dict | None = None,
              executor=None, workers: int = 2, progress: bool = True, force: bool = False,
              command: str = "") -> pd.DataFrame:
    """Run ``notebook`` once per configuration; returns one row per configuration (index: the
    configuration's name) with ``status``, ``error`` and the keys of its result JSON.

    Every configuration is checked before the first run (:func:`check_configs`). A run whose
    result file carries the same :func:`sweep_key` is kept and not run again unless ``force``;
    missing, failed and changed ones run. ``command`` is recorded in each result's provenance.
    """
    from tqdm import tqdm

    check_configs(notebook, configs, base)
    output_dir = Path(output_dir).resolve()
    (output_dir / "runs").mkdir(parents=True, exist_ok=True)
    notebook = str(Path(notebook).resolve())
    targets = chapter_targets(output_dir)
    own_pool = executor is None
    if own_pool:
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
    try:
        jobs, rows = {}, {}
        for name, params, key in planned_runs(notebook, configs, output_dir, base):
            if not force and already_done(params["result_path"], key):
                rows[name] = {"status": "ok", "skipped": True,
                              **_row(json.loads(Path(params["result_path"]).read_text()))}
                continue
            Path(params["result_path"]).unlink(missing_ok=True)
            jobs[name] = executor.submit(_run_one, notebook, params,
                                         str(output_dir / "runs" / f"{name}.ipynb"),
                                         {"sweep_key": key, "command": command,
                                          "targets": targets})
        for name, job in tqdm(jobs.items(), desc="sweep", disable=not progress,
                              mininterval=10.0):
            try:
                rows[name] = job.result()
            except Exception as error:  # the engine itself failed for this job
                rows[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    finally:
        if own_pool:
            executor.shutdown()
    table = pd.DataFrame.from_dict({name: rows[name] for name in configs}, orient="index")
    table["skipped"] = table["skipped"].eq(True) if "skipped" in table else False
    if "error" not in table:
        table["error"] = ""
    table["error"] = table["error"].fillna("")
    return table


def make_executor(engine: str, workers: int = 2, folder: str = "_sweep_logs",
                  address: str | None = None):
    """An executor for :func:`run_sweep`: ``'local'`` (process pool), ``'slurm'`` (submitit)
    or ``'dask'`` (a client connected to ``address``)."""
    if engine == "local":
        return concurrent.futures.ProcessPoolExecutor(max_workers=workers)
    if engine == "slurm":
        try:
            import submitit
        except ImportError:
            raise ValueError("engine 'slurm' needs submitit: pip install submitit") from None
        return submitit.AutoExecutor(folder=folder)
    if engine == "dask":
        try:
            from dask.distributed import Client
        except ImportError:
            raise ValueError("engine 'dask' needs dask.distributed: pip install distributed") \
                from None
        return Client(address) if address else Client(n_workers=workers, threads_per_worker=1)
    raise ValueError(f"engine must be 'local', 'slurm' or 'dask'; got {engine!r}")
