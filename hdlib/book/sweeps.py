"""Parameter sweeps: one papermill run of a notebook per configuration.

A sweep file (YAML)::

    base:                 # parameters of every run
      steps: 120
      fit_options: {learning_rate: 0.03}
    configs:              # name -> parameters that differ from base
      baseline: {}
      poisson_ltrial: {fit_options: {ltrial_distance: poisson}}

Mapping-valued parameters are merged key by key (``fit_options`` above). An optional top-level
``seeds: [0, 1, 2]`` runs every configuration once per seed (runs named ``NAME_seedS``). Every
run receives ``result_path``: the notebook writes its results there as JSON
(:func:`hdlib.book.results.write_result`), and :func:`run_sweep` gathers them into one table.
A run whose result file already holds the same parameters is not run again, so an interrupted
sweep resumes where it stopped. Executed notebooks and logs go to ``OUTPUT/runs/``.

Runs go to any executor with ``submit(fn, *args)`` returning an object with ``result()``: a
local process pool by default, a ``submitit.AutoExecutor`` for Slurm, or a
``dask.distributed.Client``. A failed configuration becomes a row with its error; the others
are kept.
"""
from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pandas as pd
import yaml

from . import results
from .runs import run_notebook


def load_sweep(path) -> tuple[dict, dict]:
    """``(base, configs)`` from a sweep file, checked for shape, with ``seeds`` expanded."""
    with open(path) as handle:
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, dict) or not isinstance(document.get("configs"), dict):
        raise ValueError(f"sweep file {path} must hold a 'configs' mapping (name -> parameters)")
    unknown = sorted(set(document) - {"base", "configs", "seeds"})
    if unknown:
        raise ValueError(f"sweep file {path}: unknown section(s) {unknown}; "
                         "expected 'base', 'configs' and 'seeds'")
    base = document.get("base") or {}
    configs = {name: (params or {}) for name, params in document["configs"].items()}
    for name, params in [("base", base), *configs.items()]:
        if not isinstance(params, dict):
            raise ValueError(f"sweep file {path}: {name!r} must be a mapping of parameters")
    if "seeds" in document:
        configs = expand_seeds(configs, document["seeds"])
    return base, configs


def expand_seeds(configs: dict, seeds) -> dict:
    """Each configuration once per seed: ``NAME_seedS`` with parameter ``seed = S``."""
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative integers; got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat; got {seeds}")
    return {f"{name}_seed{seed}": {**params, "seed": seed}
            for name, params in configs.items() for seed in seeds}


def already_done(result_path, parameters: dict) -> bool:
    """Whether ``result_path`` holds a result of a run with these ``parameters``."""
    try:
        stored = results.read_result(result_path)["parameters"]
    except (FileNotFoundError, ValueError):
        return False
    return all(stored.get(k) == v for k, v in parameters.items() if k != "result_path")


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
    return dict(record["metrics"]) if "metrics" in record else record


def _run_one(notebook: str, parameters: dict, output: str) -> dict:
    """Worker: run one configuration; never raises (errors are returned). The kernel's own
    console output goes to ``OUTPUT.log``, not to the caller's."""
    import os
    import sys

    log = open(Path(output).with_suffix(".log"), "w")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        run_notebook(notebook, parameters, output, progress=False)
        with open(parameters["result_path"]) as handle:
            return {"status": "ok", **_row(json.load(handle))}
    except Exception as error:  # one failed configuration must not lose the others
        message = str(error).strip().splitlines()
        return {"status": "failed", "error": f"{type(error).__name__}: "
                                             f"{message[-1] if message else ''}"[:300]}
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        log.close()


def run_sweep(notebook, configs: dict, output_dir, base: dict | None = None,
              executor=None, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Run ``notebook`` once per configuration; returns one row per configuration (index: the
    configuration's name) with ``status``, ``error`` and the keys of its result JSON."""
    from tqdm import tqdm

    output_dir = Path(output_dir).resolve()
    (output_dir / "runs").mkdir(parents=True, exist_ok=True)
    notebook = str(Path(notebook).resolve())
    own_pool = executor is None
    if own_pool:
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
    try:
        jobs, rows = {}, {}
        for name, overrides in configs.items():
            params = merge(base or {}, overrides)
            params["result_path"] = str(output_dir / f"{name}.json")
            if already_done(params["result_path"], params):
                rows[name] = {"status": "ok", **_row(results.read_result(params["result_path"]))}
                continue
            Path(params["result_path"]).unlink(missing_ok=True)
            jobs[name] = executor.submit(_run_one, notebook, params,
                                         str(output_dir / "runs" / f"{name}.ipynb"))
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
