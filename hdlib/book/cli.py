"""Command line of the book.

``python -m hdlib run NOTEBOOK [-p NAME VALUE]... [-f PARAMS.yaml] [-o OUT.ipynb]`` runs a chapter
with papermill; ``--list-params`` prints its parameters. ``python -m hdlib refresh NOTEBOOK...``
re-runs chapters at their defaults and stores the paired notebooks.
``python -m hdlib sweep NOTEBOOK -f SWEEP.yaml [-o DIR] [--workers N] [--engine E]`` runs one
papermill execution per configuration of a sweep file and writes ``DIR/results.csv``; with
``looks`` in the file (e.g. ``[3, 6, 10]``) the seeds run look by look, and only the
configurations of undecided claims (:mod:`hdlib.book.chapter_claims`) get the next look's.
``python -m hdlib fit SESSION [--steps N | --minutes M] [--seed S] [--config FILE.yaml]
[--mapping MAP.yaml] [--baselines-only] [--out DIR]`` fits the E-I RNN to a recorded session
(MATLAB export or NWB; :func:`hdlib.fitters.sc_fit.fit_file`) and prints its held-out scores
beside the baselines'. ``python -m hdlib export-nwb SESSION.mat OUT.nwb`` writes a MATLAB export
as NWB (:func:`hdlib.datasets.nwb.export_nwb`).
"""
from __future__ import annotations

import argparse
import shlex
import sys

from .. import io
from . import runs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hdlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a chapter with papermill")
    run.add_argument("notebook", help="chapter source (notebooks/NN_name.py) or .ipynb")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="set one parameter (value parsed as YAML)")
    run.add_argument("-f", "--parameters-file", action="append", default=[], metavar="PARAMS.yaml",
                     help="YAML file of parameters (applied before -p)")
    run.add_argument("-o", "--output",
                     help="executed notebook (default notebooks/_runs/NAME.ipynb)")
    run.add_argument("--list-params", action="store_true",
                     help="print the chapter's parameters and defaults, then exit")
    run.add_argument("--no-progress", action="store_true", help="hide the cell progress bar")
    refresh = sub.add_parser("refresh", help="re-run chapters at their defaults and store "
                                             "the paired .ipynb that the tests compare against")
    refresh.add_argument("notebooks", nargs="+", help="chapter sources (notebooks/NN_name.py)")
    sweep = sub.add_parser("sweep", help="run a notebook once per configuration of a sweep file")
    sweep.add_argument("notebook", nargs="?",
                       help="notebook that writes its results to `result_path` (default: the "
                            "sweep file's 'notebook' entry)")
    sweep.add_argument("-f", "--sweep-file", required=True, metavar="SWEEP.yaml")
    sweep.add_argument("-o", "--output", default="_sweep", help="folder for runs and results")
    sweep.add_argument("--workers", type=int, default=2, help="local processes (default 2)")
    sweep.add_argument("--engine", default="local", choices=["local", "slurm", "dask"],
                       help="local process pool, Slurm through submitit, or Dask")
    sweep.add_argument("--dask-address", help="scheduler address of an existing Dask cluster")
    sweep.add_argument("--force", action="store_true",
                       help="rerun every configuration, even those already finished")
    fit = sub.add_parser("fit", help="fit the E-I RNN to a recorded session (.mat or .nwb)")
    fit.add_argument("session", help="session file: the SC export schema (.mat, v7.3 or v5) or "
                                     "NWB (.nwb, read through --mapping)")
    budget = fit.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="Adam steps (default: the config's)")
    budget.add_argument("--minutes", type=float, help="train until this much time has passed")
    fit.add_argument("--seed", type=int, default=0, help="training seed (the validation split "
                                                          "does not depend on it)")
    fit.add_argument("--config", metavar="FILE.yaml", help="fit options (FitConfig fields)")
    fit.add_argument("--mapping", metavar="MAP.yaml",
                     help="which NWB columns hold what (default: hdlib/datasets/nwb_mapping.yaml)")
    fit.add_argument("--baselines-only", action="store_true",
                     help="score only the baselines (mean rate, PSTHs, Poisson GLM): seconds")
    fit.add_argument("--out", default="_fit", metavar="DIR",
                     help="folder for metrics.json, model.pt and psth.png (default _fit)")
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    export = sub.add_parser("export-nwb", help="write a MATLAB session export as an NWB file")
    export.add_argument("session", help="session file in the SC export schema (.mat)")
    export.add_argument("out", help="NWB file to write")
    return parser


def _fit(args) -> int:
    from ..fitters import sc_fit

    report = sc_fit.fit_file(args.session, args.out, steps=args.steps, minutes=args.minutes,
                             seed=args.seed, config_file=args.config, mapping=args.mapping,
                             progress=not args.no_progress, baselines_only=args.baselines_only)
    parts = (f"{report['n_train']} training, {report['n_val']} validation and "
             f"{report['n_test']} test trials, {report['n_neurons']} neurons")
    if "fit" in report:
        parts += (f"; {report['steps']} steps in {report['seconds']:.0f} s, best validation "
                  f"state at step {report['best_step']} ({report['stop_reason']})")
    print(f"{report['session']}: {parts}")
    print("held-out scores on the test trials (pooled_metric: the published one; 'trial end' "
          "shows how far it can be gamed):")
    columns = ["bits_per_spike", "psth_r_smooth", "psth_r2_smooth", "psth_r", "single_trial_r",
               "pooled_metric"]
    table = sc_fit.score_table(report)
    print(table[[c for c in columns if c in table]].to_string(float_format="%.3f",
                                                              na_rep=""))
    files = "metrics.json" if args.baselines_only else "metrics.json, model.pt, psth.png"
    print(f"wrote {args.out}/{files}")
    return 0


def _export_nwb(args) -> int:
    from ..datasets import nwb

    print(f"wrote {nwb.export_nwb(args.session, args.out)}")
    return 0


def _sweep(args) -> int:
    from . import sweeps

    base, configs = sweeps.load_sweep(args.sweep_file)
    notebook = sweeps.sweep_notebook(args.sweep_file, args.notebook)
    executor = sweeps.make_executor(args.engine, args.workers, folder=f"{args.output}/logs",
                                    address=args.dask_address)
    command = "python -m hdlib " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    looks = sweeps.sweep_looks(args.sweep_file)
    if looks:
        from .chapter_claims import undecided_configurations

        table = sweeps.run_looks(notebook, configs, args.output, looks,
                                 undecided_configurations, base=base, executor=executor,
                                 force=args.force, command=command)
    else:
        table = sweeps.run_sweep(notebook, configs, args.output, base=base, executor=executor,
                                 force=args.force, command=command)
    out = f"{args.output}/results.csv"
    with io.atomic_path(out, suffix=".csv") as tmp:
        table.to_csv(tmp)
    print(table.drop(columns=[c for c in table if table[c].dtype == object and c not in (
        "status", "error")]).to_string())
    print(f"wrote {out}")
    return 0 if (table["status"] == "ok").all() else 1


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "fit":
            return _fit(args)
        if args.command == "export-nwb":
            return _export_nwb(args)
        if args.command == "refresh":
            for source in args.notebooks:
                print(f"stored {runs.refresh_stored(source)}")
            return 0
        if args.list_params:
            for name, value in runs.notebook_parameters(args.notebook).items():
                print(f"{name} = {value!r}")
            return 0
        parameters = runs.collect_parameters(args.notebook, args.parameter, args.parameters_file)
        out = runs.run_notebook(args.notebook, parameters, args.output,
                                progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # a fit that diverged before any state was kept
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if type(error).__name__ != "PapermillExecutionError":
            raise
        print(f"error: cell {error.exec_count} raised {error.ename}: {error.evalue} "
              f"(the partial notebook is kept beside the output as .failed.ipynb)",
              file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
