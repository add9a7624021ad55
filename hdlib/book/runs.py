"""Run a chapter with papermill parameters: ``python -m hdlib run NOTEBOOK [-p NAME VALUE]...``.

papermill cannot read the jupytext ``.py`` sources, so the source is read with jupytext and the
notebook node is handed to papermill, with the notebook's folder as working directory (the same
one nbval and Jupyter Book use). Unknown parameter names are an error, and every chosen value
goes through the chapter's own checks (the ``hdlib.book.parameters`` spec its validation cell
names) before a kernel starts. The output is written
through :func:`hdlib.io.atomic_path` and moved into place only when the run succeeds, so a failed
run never overwrites a stored notebook; it is kept as ``OUT.failed.ipynb`` for inspection.
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import yaml

from .. import io
from . import results

KERNEL_NAME = "python3"
SPEC_CALL = re.compile(r"validate\.parameters\(\s*globals\(\)\s*,\s*parameters\.(\w+)\s*\)")


def _read(path: Path):
    import jupytext

    if not path.exists():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    return jupytext.read(path)


def _parameters_cell(notebook, path: Path):
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell
    raise ValueError(f"{path} has no code cell tagged 'parameters'")


def _defaults(notebook, path) -> dict[str, object]:
    cell = _parameters_cell(notebook, path)
    defaults = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                defaults[target.id] = ast.literal_eval(node.value)
    return defaults


def _check_names(chosen, defaults, path) -> None:
    unknown = sorted(set(chosen) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {path}; "
                         f"known: {', '.join(defaults)}")


def _check_values(chosen, notebook) -> None:
    """Apply the checks of the spec named by the notebook's ``validate.parameters`` call to
    the chosen values; the first bad value raises ``ValueError`` naming it."""
    from . import parameters as specs

    for cell in notebook.cells:
        match = SPEC_CALL.search(cell.source) if cell.cell_type == "code" else None
        if match:
            spec = getattr(specs, match.group(1), {})
            for name, value in chosen.items():
                if name in spec:
                    spec[name](name, value)
            return


def check_parameters(path, chosen: dict) -> None:
    """Names and values of ``chosen`` checked against the notebook at ``path`` (its parameters
    cell and its spec) without running it; a bad one raises ``ValueError`` naming it."""
    path = Path(path)
    notebook = _read(path)
    _check_names(chosen, _defaults(notebook, path), path.name)
    _check_values(chosen, notebook)


def notebook_parameters(path) -> dict[str, object]:
    """The names and default values assigned in the notebook's ``parameters`` cell."""
    path = Path(path)
    return _defaults(_read(path), path)


def collect_parameters(path, pairs=(), files=()) -> dict[str, object]:
    """Merge parameter files (YAML mappings) then ``-p NAME VALUE`` pairs, checking names.

    Values from ``-p`` are parsed as YAML (``-p epochs 10`` gives an int, ``-p sizes [1,2]`` a
    list), as papermill's own command line does.
    """
    chosen: dict[str, object] = {}
    for file in files:
        with open(file) as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"parameter file {file} must hold a mapping of names to values")
        chosen.update(loaded)
    for name, value in pairs:
        chosen[name] = yaml.safe_load(value)
    check_parameters(path, chosen)
    return chosen


def default_output(path) -> Path:
    path = Path(path)
    return path.parent / "_runs" / f"{path.stem}.ipynb"


def run_notebook(path, parameters: dict | None = None, output=None, progress: bool = True,
                 kernel_name: str = KERNEL_NAME) -> Path:
    """Execute a chapter with papermill and return the path of the executed notebook."""
    import papermill

    path = Path(path).resolve()
    notebook = _read(path)
    parameters = dict(parameters or {})
    _check_names(parameters, _defaults(notebook, path), path.name)
    _check_values(parameters, notebook)
    output = Path(output) if output is not None else default_output(path)
    with io.atomic_path(output, suffix=".ipynb") as tmp:
        try:
            papermill.execute_notebook(notebook, str(tmp), parameters=parameters,
                                       cwd=str(path.parent), kernel_name=kernel_name,
                                       progress_bar=progress, log_output=False)
        except BaseException:
            if tmp.exists() and tmp.stat().st_size:  # papermill wrote the cells it ran
                os.replace(tmp, output.with_suffix(".failed.ipynb"))
            raise
    return output


def refresh_stored(path, progress: bool = True) -> Path:
    """Re-run a chapter at its defaults and store the result as its paired ``.ipynb``, stamped
    with the hash of hdlib's source it ran on (``metadata.hdlib.source_hash``; a test compares
    the stamp with the library, so stale stored outputs cannot land).

    papermill's per-cell bookkeeping is stripped and the pair is passed through
    ``jupytext --sync``, so that the stored pair is exactly what jupytext would keep.
    """
    import nbformat

    path = Path(path)
    stored = path.with_suffix(".ipynb")
    run_notebook(path, {}, stored, progress=progress)
    notebook = nbformat.read(stored, as_version=4)
    notebook.metadata.pop("papermill", None)
    notebook.metadata["hdlib"] = {"source_hash": results.source_hash()}
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    nbformat.write(notebook, stored)
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--sync", "--quiet", str(stored)])  # normalise the pair's metadata
    return stored
