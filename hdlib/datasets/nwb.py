"""Sessions in Neurodata Without Borders (NWB) files, read and written with ``pynwb``.

:func:`read_fields` turns an NWB file into the fields of a MATLAB export (:data:`sessions.FIELDS`,
MATLAB dimension order), so that :func:`sessions.load_session` checks and converts both alike.
A mapping (YAML; the commented default is ``nwb_mapping.yaml`` beside this module) says which
columns play which role:

- the **units table**: ``spike_times`` (s) of every unit, counted in bins of ``bin_ms`` inside
  a window ``window_ms`` around each trial's alignment event, and divided by the bin width
  (spikes/s); its ids become ``neuron_ids``; an optional cell-class column gives
  ``neuron_type`` (1 excitatory, 2 inhibitory; without one every unit is excitatory) and an
  optional numeric column ``brain_area``;
- the **trials table**: the alignment-event column (0 ms of the window; never NaN), the
  trial-end column (bins whose centre is at or after it are NaN and masked), a column per trial
  factor (``trial_identity`` ...), and event-time columns from which each input channel is
  drawn as a step or a pulse (NaN: no such event in that trial);
- an optional **TimeSeries** of eye position (x, y), averaged per bin; without one both eye
  inputs are zeros.

:func:`export_nwb` writes a MATLAB export as such a file (see its docstring for what it holds
and what comes back exactly). Everything that cannot be mapped is reported in one
``ValueError`` naming the file, before any array is built.
"""
from __future__ import annotations

import datetime
import re
from pathlib import Path

import h5py
import numpy as np
import yaml

from . import sessions

DEFAULT_MAPPING = Path(__file__).with_name("nwb_mapping.yaml")
#: The input channels a mapping draws from events (eye position comes from a TimeSeries).
CHANNELS = [name for name in sessions.INPUT_FIELDS if "_eye_" not in name] + [
    f"input_target_loc_{loc}" for loc in (1, 2, 3, 4)]
CELL_TYPES = {"excitatory": 1, "inhibitory": 2}
_KEYS = {"": {"bin_ms", "window_ms", "align_to", "trial_end", "units", "labels", "inputs",
              "eye_position"},
         "units": {"cell_type", "brain_area"},
         "units.cell_type": {"column", "excitatory", "inhibitory"},
         "label": {"column", "values"},
         "input": {"start", "stop", "duration_ms", "when"}}


# ------------------------------------------------------------------------------ the mapping
def load_mapping(mapping=None) -> dict:
    """The mapping ``None`` (the default), a YAML file or a dict stands for, checked and
    normalised: labels as ``{"column", "values"}``, inputs as ``None`` or ``{"start", "stop",
    "duration_ms", "when"}``. A top-level key it leaves out keeps the default's value; an unknown
    key or a bad value is one ``ValueError`` naming them all."""
    default = _read_yaml(DEFAULT_MAPPING)
    if mapping is None:
        given, name = {}, DEFAULT_MAPPING.name
    elif isinstance(mapping, dict):
        given, name = mapping, "mapping"
    else:
        path = Path(mapping)
        if not path.exists():
            raise FileNotFoundError(f"mapping file {str(path)!r} does not exist")
        given, name = _read_yaml(path), path.name
    problems = []
    _unknown(problems, "", given, _KEYS[""])
    spec = {**default, **{k: v for k, v in given.items() if k in _KEYS[""]}}
    bin_ms, window = spec["bin_ms"], spec["window_ms"]
    if not _number(bin_ms) or bin_ms <= 0:
        problems.append(f"bin_ms must be a positive number, not {bin_ms!r}")
    elif not (isinstance(window, list) and len(window) == 2 and all(map(_number, window))
              and window[1] > window[0]):
        problems.append(f"window_ms must be [start, end] with end > start, not {window!r}")
    elif abs((window[1] - window[0]) / bin_ms - round((window[1] - window[0]) / bin_ms)) > 1e-9:
        problems.append(f"window_ms {window} is not a whole number of {bin_ms} ms bins")
    for key in ("align_to", "trial_end"):
        _text(problems, key, spec[key])
    if spec["eye_position"] is not None:
        _text(problems, "eye_position", spec["eye_position"])
    units = spec["units"] if isinstance(spec["units"], dict) else {}
    if not isinstance(spec["units"], dict):
        problems.append("units must be a mapping with cell_type and brain_area")
    _unknown(problems, "units", units, _KEYS["units"])
    units = {"cell_type": units.get("cell_type"), "brain_area": units.get("brain_area")}
    if units["brain_area"] is not None:
        _text(problems, "units.brain_area", units["brain_area"])
    cell = units["cell_type"]
    if cell is not None:
        if not isinstance(cell, dict):
            problems.append("units.cell_type must be null or {column, excitatory, inhibitory}")
        else:
            _unknown(problems, "units.cell_type", cell, _KEYS["units.cell_type"])
            missing = sorted(_KEYS["units.cell_type"] - set(cell))
            if missing:
                problems.append(f"units.cell_type has no {', '.join(missing)}")
            _text(problems, "units.cell_type.column", cell.get("column"))
            for key in ("excitatory", "inhibitory"):
                if not isinstance(cell.get(key, []), list):
                    problems.append(f"units.cell_type.{key} must be a list of values")
    spec["units"] = units
    spec["labels"] = _entries(problems, "labels", spec["labels"], sessions.LABEL_FIELDS,
                              _label_entry)
    spec["inputs"] = _entries(problems, "inputs", spec["inputs"], CHANNELS, _input_entry)
    if problems:
        raise ValueError(f"{name}: " + "; ".join(problems))
    return spec


def _read_yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path.name} is not valid YAML: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} must hold a mapping of keys to values")
    return value


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(problems: list, key: str, value) -> None:
    if not isinstance(value, str) or not value:
        problems.append(f"{key} must be a column name, not {value!r}")


def _unknown(problems: list, where: str, given: dict, known) -> None:
    for key in given:
        if key not in known:
            hint = " (YAML reads a bare on/off/yes/no as true/false)" * isinstance(key, bool)
            problems.append(f"unknown key {(where + '.' if where else '') + str(key)!r}{hint} "
                            f"(known: {', '.join(sorted(known))})")


def _entries(problems: list, block: str, given, names: list, entry) -> dict:
    if not isinstance(given, dict):
        problems.append(f"{block} must be a mapping of {', '.join(names)}")
        return {}
    _unknown(problems, block, given, names)
    missing = [n for n in names if n not in given]
    if missing:
        problems.append(f"{block} has no entry for {', '.join(missing)}"
                        + (" (write null for a channel of zeros)" if block == "inputs" else ""))
    return {n: entry(problems, f"{block}.{n}", given[n]) for n in names if n in given}


def _label_entry(problems: list, where: str, value):
    if isinstance(value, str):
        return {"column": value, "values": None}
    if not isinstance(value, dict) or "column" not in value:
        problems.append(f"{where} must be a column name or {{column, values}}")
        return None
    _unknown(problems, where, value, _KEYS["label"])
    _text(problems, f"{where}.column", value["column"])
    values = value.get("values")
    if values is not None and not (isinstance(values, dict)
                                   and all(_number(v) for v in values.values())):
        problems.append(f"{where}.values must map file values to numbers")
        values = None
    return {"column": value["column"], "values": values}


def _input_entry(problems: list, where: str, value):
    if value is None:
        return None
    if isinstance(value, dict):
        _unknown(problems, where, value, _KEYS["input"])
    if not isinstance(value, dict) or "start" not in value:
        problems.append(f"{where} must be null or {{start, stop | duration_ms, when}}")
        return None
    entry = {"start": value["start"], "stop": value.get("stop"),
             "duration_ms": value.get("duration_ms"), "when": value.get("when") or {}}
    _text(problems, f"{where}.start", entry["start"])
    if entry["stop"] is not None:
        _text(problems, f"{where}.stop", entry["stop"])
        if entry["duration_ms"] is not None:
            problems.append(f"{where} has both stop and duration_ms")
    if entry["duration_ms"] is not None and not (_number(entry["duration_ms"])
                                                 and entry["duration_ms"] > 0):
        problems.append(f"{where}.duration_ms must be a positive number")
    if not isinstance(entry["when"], dict):
        problems.append(f"{where}.when must map columns to values")
        entry["when"] = {}
    return entry


def _as_in(column: np.ndarray, value):
    """A mapping's ``value`` as ``column`` holds it: text in a text column, else a float (None
    if it is no number)."""
    if column.dtype == object:
        return str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------ reading
def read_fields(path, mapping=None) -> dict:
    """The fields of :data:`sessions.FIELDS` (MATLAB shapes; see the module docstring) of the
    NWB file ``path``, read through ``mapping`` (``None``, a YAML file or a dict; see
    :func:`load_mapping`)."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    spec = load_mapping(mapping)
    if not path.exists():
        raise FileNotFoundError(f"session file {str(path)!r} does not exist")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path.name}: not an NWB file (it is not even HDF5)")
    reader = None
    try:
        reader = NWBHDF5IO(str(path), "r")
        nwbfile = reader.read()
    except Exception as error:
        if reader is not None:
            reader.close()
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"{path.name}: not a readable NWB file ({type(error).__name__}: "
                         f"{first})") from None
    try:
        for table, what in ((nwbfile.trials, "trials"), (nwbfile.units, "units")):
            if table is None or len(table) == 0:
                raise ValueError(f"{path.name}: no {what} table (or an empty one); an hdlib "
                                 f"session needs both a trials and a units table")
        columns, problems = _trial_columns(nwbfile.trials, spec)
        units = _unit_columns(nwbfile.units, spec, problems)
        eye = _eye_series(nwbfile, spec, problems)
        if problems:
            raise ValueError(f"{path.name}: " + "; ".join(problems))
        return _fields(nwbfile, reader.nwb_version[0], spec, columns, units, eye)
    finally:
        reader.close()


def _table_values(table, name: str, where: str, problems: list):
    """A column's values as an array (numbers as float), or None with a problem noted."""
    from hdmf.common import VectorIndex

    column = table[name]
    if isinstance(column, VectorIndex):
        problems.append(f"{table.name} column {name!r} ({where}) holds a list per row, not "
                        f"one value")
        return None
    values = np.asarray(column.data[:])
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values],
                    dtype=object)


def _trial_columns(trials, spec: dict):
    """Every trials-table column the mapping names, by name; and the problems found."""
    needed = {spec["align_to"]: "align_to", spec["trial_end"]: "trial_end"}
    for name, label in spec["labels"].items():
        if label:
            needed.setdefault(label["column"], f"labels.{name}")
    for name, entry in spec["inputs"].items():
        for key in ("start", "stop"):
            if entry and entry[key]:
                needed.setdefault(entry[key], f"inputs.{name}.{key}")
        for column in (entry or {}).get("when", {}):
            needed.setdefault(column, f"inputs.{name}.when")
    problems, columns = [], {}
    missing = [f"no column {c!r} (mapping key {k})" for c, k in needed.items()
               if c not in trials.colnames]
    if missing:
        problems.append(f"trials table has {', '.join(missing)}; its columns are: "
                        f"{', '.join(trials.colnames)}")
    for column, key in needed.items():
        if column in trials.colnames:
            values = _table_values(trials, column, f"mapping key {key}", problems)
            if values is not None:
                columns[column] = values
    times = {spec["align_to"], spec["trial_end"]} | {
        e[k] for e in spec["inputs"].values() if e for k in ("start", "stop") if e[k]}
    for column in sorted(times & set(columns)):
        if columns[column].dtype == object:
            problems.append(f"trials column {column!r} ({needed[column]}) must hold times (s), "
                            f"not text")
            del columns[column]
    for column, key in ((spec["align_to"], "align_to"), (spec["trial_end"], "trial_end")):
        if column in columns and np.isnan(columns[column]).any():
            bad = np.flatnonzero(np.isnan(columns[column]))
            problems.append(f"{'alignment event' if key == 'align_to' else 'trial end'} "
                            f"{column!r} (mapping key {key}) is missing (NaN) in {len(bad)} of "
                            f"{len(trials)} trials (trials {_few(bad)})")
    for name, label in spec["labels"].items():
        if label and label["column"] in columns:
            _label_codes(columns[label["column"]], name, label, problems)
    for name, entry in spec["inputs"].items():
        for column, value in (entry or {}).get("when", {}).items():
            if column in columns and _as_in(columns[column], value) is None:
                problems.append(f"inputs.{name}.when: {value!r} cannot match the numbers in "
                                f"column {column!r}")
    return columns, problems


def _label_codes(values, name: str, label: dict, problems: list):
    """The numeric codes of a label column (None if it cannot be mapped)."""
    column = label["column"]
    if label["values"] is not None:
        codes = {_as_in(values, k): code for k, code in label["values"].items()}
        unexpected = sorted({str(v) for v in values if v not in codes})
        if unexpected:
            problems.append(f"label column {column!r} (mapping key labels.{name}) has "
                            f"unexpected values {', '.join(unexpected)} (mapped: "
                            f"{', '.join(str(k) for k in label['values'])})")
            return None
        return np.array([codes[v] for v in values], dtype=np.float64)
    if values.dtype == object:
        problems.append(f"label column {column!r} (mapping key labels.{name}) holds text; give "
                        f"{{column, values: {{text: code}}}}")
        return None
    allowed = {"trial_identity": (1, 2, 3), "trial_location": (1, 2, 3, 4)}.get(name)
    if allowed is not None and not np.isin(values, allowed).all():
        unexpected = sorted({str(v) for v in values if v not in allowed})
        problems.append(f"label column {column!r} (mapping key labels.{name}) has unexpected "
                        f"values {', '.join(unexpected)} (expected {allowed})")
        return None
    return values


def _unit_columns(units, spec: dict, problems: list) -> dict:
    """Spike times (one sorted array per unit), neuron_type and brain_area of the units."""
    found = {}
    if "spike_times" not in units.colnames:
        problems.append("units table has no spike_times column")
    else:
        flat = np.asarray(units["spike_times"].target.data[:], dtype=np.float64)
        ends = np.asarray(units["spike_times"].data[:], dtype=np.int64)
        found["spike_times"] = [np.sort(part) for part in np.split(flat, ends[:-1])]
    found["neuron_type"] = np.ones(len(units))
    found["brain_area"] = np.full(len(units), np.nan)
    cell, area = spec["units"]["cell_type"], spec["units"]["brain_area"]
    for column, key in ((cell and cell["column"], "units.cell_type.column"),
                        (area, "units.brain_area")):
        if column and column not in units.colnames:
            problems.append(f"units table has no column {column!r} (mapping key {key}); its "
                            f"columns are: {', '.join(units.colnames)}")
    if cell and cell["column"] in units.colnames:
        values = _table_values(units, cell["column"], "mapping key units.cell_type", problems)
        if values is not None:
            codes = {**{_as_in(values, v): 1 for v in cell["excitatory"]},
                     **{_as_in(values, v): 2 for v in cell["inhibitory"]}}
            unexpected = sorted({str(v) for v in values if v not in codes})
            if unexpected:
                problems.append(f"units column {cell['column']!r} has unexpected values "
                                f"{', '.join(unexpected)} (mapped: excitatory "
                                f"{cell['excitatory']}, inhibitory {cell['inhibitory']})")
            else:
                found["neuron_type"] = np.array([codes[v] for v in values], dtype=np.float64)
    if area and area in units.colnames:
        values = _table_values(units, area, "mapping key units.brain_area", problems)
        if values is not None and values.dtype == object:
            problems.append(f"units column {area!r} (mapping key units.brain_area) must be "
                            f"numeric")
        elif values is not None:
            found["brain_area"] = values
    return found


def _eye_series(nwbfile, spec: dict, problems: list):
    """(timestamps, x, y) of the mapped eye-position TimeSeries, or None."""
    from pynwb import TimeSeries

    name = spec["eye_position"]
    if name is None:
        return None
    series = [obj for obj in nwbfile.objects.values()
              if isinstance(obj, TimeSeries) and obj.name == name]
    if len(series) != 1:
        names = sorted({o.name for o in nwbfile.objects.values() if isinstance(o, TimeSeries)})
        problems.append(f"{'no' if not series else 'more than one'} TimeSeries named {name!r} "
                        f"(mapping key eye_position; null if there is none); TimeSeries in the "
                        f"file: {', '.join(names) or 'none'}")
        return None
    data = np.asarray(series[0].data[:], dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        problems.append(f"TimeSeries {name!r} must hold x and y columns; its data has shape "
                        f"{list(data.shape)}")
        return None
    if series[0].timestamps is not None:
        times = np.asarray(series[0].timestamps[:], dtype=np.float64)
    else:
        times = series[0].starting_time + np.arange(len(data)) / series[0].rate
    order = np.argsort(times, kind="stable")
    return times[order], data[order, 0], data[order, 1]


def _few(indices) -> str:
    shown = ", ".join(str(i) for i in indices[:5])
    return shown + (", ..." if len(indices) > 5 else "")


def _fields(nwbfile, version: str, spec: dict, columns: dict, units: dict, eye) -> dict:
    bin_ms, (w0, w1) = float(spec["bin_ms"]), spec["window_ms"]
    n_bins = int(round((w1 - w0) / bin_ms))
    align = columns[spec["align_to"]]
    n_trials, n_units = len(align), len(units["spike_times"])
    time_ms = w0 + bin_ms * (np.arange(n_bins) + 0.5)
    duration_ms = (columns[spec["trial_end"]] - align) * 1000.0
    unrecorded = time_ms[None, :] >= duration_ms[:, None]
    rates = np.empty((n_units, n_bins, n_trials))
    for n, spikes in enumerate(units["spike_times"]):
        trial, b, _ = _assign(spikes, align, spec, n_bins)
        counts = np.bincount(trial * n_bins + b, minlength=n_trials * n_bins)
        rates[n] = np.where(unrecorded, np.nan,
                            counts.reshape(n_trials, n_bins) / (bin_ms / 1000.0)).T
    inputs = event_inputs(columns, spec, align, n_bins)
    fields = {name: inputs[name].T for name in CHANNELS if not name.startswith("input_target")}
    fields["input_target_loc"] = np.stack([inputs[f"input_target_loc_{loc}"].T
                                           for loc in (1, 2, 3, 4)])
    fields["input_eye_x"] = fields["input_eye_y"] = np.zeros((n_bins, n_trials))
    if eye is not None:
        trial, b, pos = _assign(eye[0], align, spec, n_bins)
        cell = trial * n_bins + b
        counts = np.bincount(cell, minlength=n_trials * n_bins)
        for name, values in zip(("input_eye_x", "input_eye_y"), eye[1:]):
            sums = np.bincount(cell, values[pos], n_trials * n_bins)
            with np.errstate(invalid="ignore"):  # a bin without samples is NaN
                fields[name] = (sums / counts).reshape(n_trials, n_bins).T
    for name, label in spec["labels"].items():
        fields[name] = _label_codes(columns[label["column"]], name, label, [])
    created = nwbfile.file_create_date
    fields.update(
        firing_rates=rates, neuron_ids=np.asarray(nwbfile.units.id[:], dtype=np.float64),
        neuron_type=units["neuron_type"], brain_area=units["brain_area"],
        n_trials=float(n_trials), n_neurons=float(n_units), n_time_bins=float(n_bins),
        bin_size_ms=bin_ms, time_axis=time_ms, trial_duration_ms=duration_ms,
        session_name=nwbfile.session_id or nwbfile.identifier,
        export_date=str(created[0]) if created is not None and len(created) else "",
        pipeline_version=f"NWB {version}")
    return fields


def _bin_of(times, align, spec: dict):
    """The bin (as a float; NaN stays NaN) holding each time (s) in its trial's window, counted
    from the alignment event ``align`` (s). A nudge of 1e-6 bin puts a time on a bin edge (the
    alignment event itself, say) in the later bin whatever the rounding."""
    return np.floor(((times - align) * 1000.0 - spec["window_ms"][0]) / spec["bin_ms"] + 1e-6)


def _assign(times, align, spec: dict, n_bins: int):
    """Which (trial, bin) each of the sorted ``times`` falls in, one window per trial (windows
    may overlap; a time then counts in each). Returns trial indices, bin indices and positions
    in ``times``."""
    w0, w1 = (align[:, None] + np.asarray(spec["window_ms"]) / 1000.0).T
    margin = spec["bin_ms"] / 1000.0  # the bins themselves decide at the edges
    lo, hi = np.searchsorted(times, w0 - margin), np.searchsorted(times, w1 + margin)
    n = hi - lo
    trial = np.repeat(np.arange(len(align)), n)
    pos = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    b = _bin_of(times[pos], align[trial], spec).astype(np.int64)
    keep = (b >= 0) & (b < n_bins)
    return trial[keep], b[keep], pos[keep]


def event_inputs(columns: dict, spec: dict, align, n_bins: int) -> dict:
    """Each input channel of ``spec["inputs"]`` as a ``(K, B)`` array of 0/1, from the event
    times in ``columns`` (s) and the alignment events ``align`` (s)."""
    bins = np.arange(n_bins)[None, :]

    def event_bin(column):  # NaN where the event is absent
        return _bin_of(columns[column], align, spec)

    out = {}
    for name in CHANNELS:
        entry = spec["inputs"][name]
        if entry is None:
            out[name] = np.zeros((len(align), n_bins))
            continue
        on = event_bin(entry["start"])
        if entry["stop"] is not None:
            off = np.nan_to_num(event_bin(entry["stop"]), nan=n_bins)
        elif entry["duration_ms"] is not None:
            off = on + round(entry["duration_ms"] / spec["bin_ms"])
        else:
            off = np.full(len(align), float(n_bins))
        gate = ~np.isnan(on)
        for column, value in entry["when"].items():
            gate &= columns[column] == _as_in(columns[column], value)
        on = np.nan_to_num(on, nan=n_bins)
        out[name] = ((bins >= on[:, None]) & (bins < off[:, None]) & gate[:, None]).astype(float)
    return out


# ------------------------------------------------------------------------------ writing
def export_nwb(mat_path, out_path) -> Path:
    """Write the MATLAB export ``mat_path`` as the NWB file ``out_path`` (atomically), in the
    layout the default mapping reads.

    Trials lie back to back on one clock, each taking its window (``time_axis``; bin edges on
    the file's clock). The **units** table holds each unit's spike times: a bin's rate x width
    spikes (a whole number, else this is an error) spread evenly inside the bin, so that binning
    them again gives the same counts; ids are ``neuron_ids``, ``cell_type`` is "excitatory" (1)
    or "inhibitory" (2), ``brain_area`` the export's code. The **trials** table: ``start_time``
    = window start, ``align_time`` = its 0 ms, ``stop_time`` = ``align_time`` +
    ``trial_duration_ms``; the five labels; and the onset of each input, at the centre of the
    bin where it switches on (NaN if it never does): ``fixation_on_time``, ``go_cue_time``,
    ``reward_on_time``, ``target_on_time`` (identity, salience and location channels switch on
    together). The export must have the bins and input shapes the default mapping reads
    (checked: the inputs rebuilt from these times must equal the export's, else nothing is
    written). Bins after a trial's end keep their spikes and inputs (the reader marks them
    unrecorded). **Eye
    position** is a SpatialSeries ``processing/behavior/EyeTracking/eye_position``, one
    sample per bin at its centre. Session metadata (start date from the session name, file
    date from the export date) are fixed by the export, not by the clock.
    """
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import EyeTracking, SpatialSeries
    from pynwb.file import Subject
    from pynwb.misc import Units

    from .. import io

    mat_path, out_path = Path(mat_path), Path(out_path)
    raw = sessions.read_fields(mat_path)
    missing = [name for name in sessions.FIELDS if name not in raw]
    if missing:
        raise ValueError(f"{mat_path.name}: missing field(s) {', '.join(missing)}")
    sizes = dict(zip("NBK", np.shape(raw["firing_rates"])))
    f = {name: sessions._shape_of(raw, name, spec, sizes)
         for name, spec in sessions.FIELDS.items()}
    n_units, n_bins, n_trials = f["firing_rates"].shape
    bin_ms = float(f["bin_size_ms"])
    bin_s = bin_ms / 1000.0
    default = load_mapping(None)
    w0, w1 = default["window_ms"]
    if not (np.isclose(bin_ms, default["bin_ms"]) and np.allclose(
            f["time_axis"], w0 + bin_ms * (np.arange(n_bins) + 0.5), rtol=0, atol=1e-6)
            and np.isclose(w0 + n_bins * bin_ms, w1)):
        raise ValueError(f"{mat_path.name}: its bins are not those the default NWB mapping "
                         f"reads ({w0:g} to {w1:g} ms around the alignment event in "
                         f"{default['bin_ms']:g} ms bins)")
    if np.isnan(f["trial_duration_ms"]).any() or (f["trial_duration_ms"] < w0).any():
        raise ValueError(f"{mat_path.name}: trial_duration_ms must be known and after the "
                         f"window's start in every trial")
    counts = np.nan_to_num(f["firing_rates"]) * bin_s  # (N, B, K); NaN bins hold no spikes
    if np.abs(counts - np.round(counts)).max() > 1e-6:
        raise ValueError(f"{mat_path.name}: firing rates x bin width are not whole spike "
                         f"counts, so no spike times can be reconstructed")
    counts = np.round(counts).astype(np.int64)
    start = np.arange(n_trials) * (n_bins * bin_s)
    align = start - w0 / 1000.0

    def onset(trace):  # (B, K) -> first bin where the input is on, n_bins if it never is
        on = np.nan_to_num(trace) != 0
        return np.where(on.any(0), on.argmax(0), n_bins)

    def centre(b):  # a bin's centre on the file's clock (s), NaN for n_bins
        return np.where(b < n_bins, start + (b + 0.5) * bin_s, np.nan)

    targets = [f[name] for name in sessions.INPUT_FIELDS[5:]] + list(f["input_target_loc"])
    events = {"fixation_on_time": centre(onset(f["input_fixation_on"])),
              "go_cue_time": centre(onset(f["input_go_signal"])),
              "reward_on_time": centre(onset(f["input_reward_on"])),
              "target_on_time": centre(np.min([onset(t) for t in targets], axis=0))}
    labels = {"reward": f["trial_reward"], "probability": f["trial_probability"],
              "identity": f["trial_identity"], "salience": f["trial_salience"],
              "location": f["trial_location"]}
    rebuilt = event_inputs({**events, **labels}, default, align, n_bins)
    wrong = [name for name in CHANNELS if not np.array_equal(
        rebuilt[name].T, np.nan_to_num(f[name] if name in f else
                                       f["input_target_loc"][int(name[-1]) - 1]))]
    if wrong:
        raise ValueError(f"{mat_path.name}: input(s) {', '.join(wrong)} do not have the shapes "
                         f"the default NWB mapping draws from event times (see nwb_mapping.yaml)")

    name = f["session_name"]
    day = re.search(r"(\d\d)_(\d\d)_(\d{4})", name)
    created = datetime.datetime.fromisoformat(f["export_date"]).replace(
        tzinfo=datetime.timezone.utc)
    session_start = (datetime.datetime(int(day[3]), int(day[1]), int(day[2]),
                                       tzinfo=datetime.timezone.utc) if day else created)
    nwbfile = NWBFile(
        session_description=(
            f"Session {name}: {n_trials} trials of a delayed-saccade task with face, non-face and "
            f"bullseye targets, {n_units} units, converted by hdlib from the lab's MATLAB export "
            f"(pipeline {f['pipeline_version']}, {f['export_date']}) of {bin_ms:g} ms binned "
            f"rates; spike times are reconstructed from the bin counts, trials laid back to "
            f"back."),
        identifier=f"hdlib-{name}", session_id=name, session_start_time=session_start,
        file_create_date=created,
        subject=Subject(subject_id=name.split("_")[0],
                        description=f"monkey {name.split('_')[0]!r} (species not given in the "
                                    f"export)"))
    nwbfile.add_trial_column("align_time", "0 ms of the trial's window (the export's alignment "
                                           "event), s")
    for column in events:
        nwbfile.add_trial_column(column, f"{column[:-5].replace('_', ' ')} (s; centre of the "
                                         f"bin where the input switches on; NaN: none)")
    descriptions = {"reward": "reward label of the trial (0/1)",
                    "probability": "reward-probability label of the trial",
                    "identity": "target identity: 1 face, 2 non-face, 3 bullseye",
                    "salience": "target salience: 1 high, 2 low (0: none)",
                    "location": "target location, 1-4"}
    for column, text in descriptions.items():
        nwbfile.add_trial_column(column, text)
    stop = align + f["trial_duration_ms"] / 1000.0
    for k in range(n_trials):
        nwbfile.add_trial(start_time=start[k], stop_time=stop[k], align_time=align[k],
                          **{c: v[k] for c, v in events.items()},
                          **{c: v[k] for c, v in labels.items()})
    spikes = [_spread(counts[n].T, start, bin_s) for n in range(n_units)]
    types = {v: k for k, v in CELL_TYPES.items()}
    spike_times = VectorData(name="spike_times", description="spike times (s)",
                             data=H5DataIO(np.concatenate(spikes), compression="gzip"))
    nwbfile.units = Units(
        name="units", description="units of the export; spike times rebuilt from bin counts",
        id=f["neuron_ids"].astype(np.int64), columns=[
            spike_times,
            VectorIndex(name="spike_times_index", target=spike_times,
                        data=np.cumsum([len(t) for t in spikes])),
            VectorData(name="cell_type", data=[types[int(t)] for t in f["neuron_type"]],
                       description="cell class: excitatory (classic) or inhibitory (putative "
                                   "interneuron)"),
            VectorData(name="brain_area", data=f["brain_area"],
                       description="recording-area code of the export")])
    eye = np.stack([f["input_eye_x"].T.ravel(), f["input_eye_y"].T.ravel()], axis=1)
    behavior = nwbfile.create_processing_module("behavior", "eye position")
    behavior.add(EyeTracking(spatial_series=SpatialSeries(
        name="eye_position", data=H5DataIO(eye, compression="gzip"), unit="degrees",
        reference_frame="as in the lab's export", starting_time=bin_s / 2, rate=1.0 / bin_s,
        description="eye x and y, one sample per bin at the bin's centre")))
    with io.atomic_path(out_path, suffix=".nwb") as tmp, NWBHDF5IO(str(tmp), "w") as writer:
        writer.write(nwbfile)
    return out_path


def _spread(counts, start, bin_s: float):
    """Spike times (s) with ``counts[k, b]`` spikes evenly inside bin ``b`` of the window
    starting at ``start[k]``: at ``(j + 1/2) / count`` of the bin, ``j = 0 .. count - 1``."""
    flat = counts.ravel()
    cell = np.repeat(np.arange(flat.size), flat)
    j = np.arange(flat.sum()) - np.repeat(np.cumsum(flat) - flat, flat)
    trial, b = np.divmod(cell, counts.shape[1])
    return start[trial] + (b + (j + 0.5) / flat[cell]) * bin_s
