"""Recorded sessions exported from MATLAB (and the task inputs of synthetic ones).

A session file holds the fields of :data:`FIELDS` with MATLAB shapes written in terms of
``N`` neurons, ``B`` time bins and ``K`` trials. MATLAB v7.3 files are HDF5: h5py reads every
array with its dimensions reversed (``firing_rates`` arrives as ``(K, B, N)``) and strings as
uint16 character codes. Older files are read with :func:`scipy.io.loadmat`. Trials shorter than
the longest are padded with NaN; :func:`load_session` turns them into a boolean ``mask`` and
zeros, so that no NaN can reach a loss.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch

from .. import io, validate

INPUT_FIELDS = ["input_fixation_on", "input_go_signal", "input_reward_on", "input_eye_x",
                "input_eye_y", "input_is_face", "input_is_nonface", "input_is_bullseye",
                "input_high_salience", "input_low_salience"]
LABEL_FIELDS = ["trial_reward", "trial_probability", "trial_identity", "trial_salience",
                "trial_location"]
STRING_FIELDS = ["session_name", "export_date", "pipeline_version"]
#: Every field and its MATLAB shape; ``None`` marks a string, ``()`` a scalar.
FIELDS = {"firing_rates": ("N", "B", "K"), "neuron_ids": ("N",), "neuron_type": ("N",),
          "brain_area": ("N",), "n_trials": (), "n_neurons": (), "n_time_bins": (),
          "bin_size_ms": (), "time_axis": ("B",), "trial_duration_ms": ("K",),
          **{f: ("B", "K") for f in INPUT_FIELDS}, "input_target_loc": (4, "B", "K"),
          **{f: ("K",) for f in LABEL_FIELDS}, **{f: None for f in STRING_FIELDS}}


@dataclasses.dataclass
class Session:
    """A loaded session, trial-major and ready for torch.

    ``rates (K, B, N)`` spikes/s with padded bins set to 0; ``mask (K, B)`` true where a bin
    was recorded; ``inputs (K, B, n_inputs)`` named by ``input_names`` (eye position z-scored
    over recorded bins); ``is_excitatory (N,)``; ``labels`` name -> ``(K,)`` integer arrays;
    ``condition (K,)`` = identity x location; ``train_idx``/``val_idx``/``test_idx`` a seeded
    three-way split stratified by condition (training; validation, for stopping and choices;
    test, for reporting only).
    """

    rates: torch.Tensor
    mask: torch.Tensor
    inputs: torch.Tensor
    input_names: list
    is_excitatory: torch.Tensor
    labels: dict
    condition: torch.Tensor
    time_ms: np.ndarray
    bin_size_ms: float
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    info: dict
    test_idx: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0, dtype=int))

    @property
    def n_neurons(self) -> int:
        return self.rates.shape[-1]

    def trials(self, index) -> dict:
        """Tensors of a subset of trials, as the fitting code consumes them."""
        return {"rates": self.rates[index], "mask": self.mask[index],
                "inputs": self.inputs[index], "condition": self.condition[index]}


# ------------------------------------------------------------------------------ reading
def read_fields(path) -> dict:
    """Every field of a session file, unchecked: numpy arrays in MATLAB dimension order,
    strings as ``str`` (the inverse of :func:`write_session_v73`)."""
    path = Path(path)
    if h5py.is_hdf5(path):
        raw = {}
        with h5py.File(path, "r") as f:
            for name in f:
                if isinstance(f[name], h5py.Dataset):
                    value = f[name][()]
                    if f[name].attrs.get("MATLAB_class", b"") in (b"char", "char"):
                        raw[name] = "".join(map(chr, np.asarray(value).ravel()))
                    else:
                        raw[name] = np.asarray(value).T
        return raw
    try:
        mat = scipy.io.loadmat(path, squeeze_me=False)
    except Exception as error:
        raise ValueError(f"{path} is neither a MATLAB v7.3 (HDF5) nor an older .mat file: "
                         f"{error}") from None
    raw = {}
    for name, value in mat.items():
        if name.startswith("__"):
            continue
        raw[name] = str(value[0]) if value.dtype.kind == "U" else np.asarray(value)
    return raw


def _shape_of(raw: dict, name: str, spec, sizes: dict) -> np.ndarray:
    value = raw[name]
    if spec is None:
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a string")
        return value
    value = np.asarray(value, dtype=np.float64)
    if spec == ():
        if value.size != 1:
            raise ValueError(f"field {name!r} must be a scalar; got shape {value.shape}")
        return value.reshape(())
    if len(spec) == 1:  # MATLAB stores vectors as 1 x n or n x 1
        if value.ndim > 2 or (value.ndim == 2 and min(value.shape) != 1):
            raise ValueError(f"field {name!r} must be a vector; got shape {value.shape}")
        value = value.ravel()
    expected = tuple(sizes[d] if isinstance(d, str) else d for d in spec)
    if value.shape != expected:
        letters = "x".join(str(d) for d in spec)
        raise ValueError(f"field {name!r} must have shape [{letters}] = {list(expected)}; "
                         f"got {list(value.shape)}")
    return value


def load_session(path, val_fraction: float = 0.2, seed: int = 0, test_fraction: float = 0.0,
                 mapping=None) -> Session:
    """Read and check a session file (either MATLAB format, or NWB through
    :func:`hdlib.datasets.nwb.read_fields` with the YAML ``mapping``); see the module
    docstring. ``test_fraction > 0`` holds out that share of each condition's trials as
    ``test_idx``."""
    path = Path(validate.path_string("path", str(path)))
    if not path.exists():
        raise FileNotFoundError(f"session file {str(path)!r} does not exist")
    val_fraction = validate.float_in("val_fraction", val_fraction, 0.0, 1.0, low_open=True,
                                     high_open=True)
    test_fraction = validate.float_in("test_fraction", test_fraction, 0.0, 1.0 - val_fraction,
                                      high_open=True)
    if path.suffix.lower() == ".nwb":
        from . import nwb

        raw = nwb.read_fields(path, mapping)
    elif mapping is not None:
        raise ValueError(f"mapping applies to NWB files only; {path.name} is not .nwb")
    else:
        raw = read_fields(path)
    missing = [name for name in FIELDS if name not in raw]
    if missing:
        raise ValueError(f"{path.name}: missing field(s) {', '.join(missing)}")
    rates_shape = np.shape(raw["firing_rates"])
    if len(rates_shape) != 3:
        raise ValueError(f"field 'firing_rates' must be [neurons x bins x trials]; "
                         f"got shape {list(rates_shape)}")
    sizes = dict(zip("NBK", rates_shape))
    fields = {name: _shape_of(raw, name, spec, sizes) for name, spec in FIELDS.items()}
    for count, letter in (("n_neurons", "N"), ("n_time_bins", "B"), ("n_trials", "K")):
        if int(fields[count]) != sizes[letter]:
            raise ValueError(f"field {count!r} is {int(fields[count])} but 'firing_rates' has "
                             f"{sizes[letter]}")
    types = fields["neuron_type"]
    if not np.isin(types, (1, 2)).all():
        raise ValueError("field 'neuron_type' must hold 1 (classic, excitatory) or 2 "
                         f"(interneuron, inhibitory); got values {sorted(set(types.tolist()))}")
    rates = np.transpose(fields["firing_rates"], (2, 1, 0))  # (K, B, N)
    time_ms = fields["time_axis"]
    duration = fields["trial_duration_ms"]
    mask = ~np.isnan(rates).any(axis=2) & (time_ms[None, :] < duration[:, None])
    rates = np.where(mask[..., None], np.nan_to_num(rates), 0.0)
    inputs = [fields[name].T for name in INPUT_FIELDS]
    names = list(INPUT_FIELDS)
    for name in ("input_eye_x", "input_eye_y"):
        i = names.index(name)
        values = np.nan_to_num(inputs[i])
        mean, std = values[mask].mean(), values[mask].std() + 1e-9
        inputs[i] = np.where(mask, (values - mean) / std, 0.0)
    for loc in range(4):
        inputs.append(fields["input_target_loc"][loc].T)
        names.append(f"input_target_loc_{loc + 1}")
    inputs = np.where(mask[..., None], np.nan_to_num(np.stack(inputs, axis=-1)), 0.0)
    labels = {name: np.nan_to_num(fields[name]) for name in LABEL_FIELDS}
    for name, n in (("trial_identity", 3), ("trial_location", 4)):
        if not np.isin(labels[name], np.arange(1, n + 1)).all():
            raise ValueError(f"field {name!r} must hold integers 1-{n}")
    condition = ((labels["trial_identity"] - 1) * 4 + (labels["trial_location"] - 1)).astype(int)
    train_idx, val_idx, test_idx = stratified_split(condition, val_fraction, seed,
                                                    test_fraction=test_fraction)
    info = {name: fields[name] for name in STRING_FIELDS}
    info.update(path=str(path), brain_area=fields["brain_area"], neuron_ids=fields["neuron_ids"])
    return Session(
        rates=torch.as_tensor(rates, dtype=torch.float32), mask=torch.as_tensor(mask),
        inputs=torch.as_tensor(inputs, dtype=torch.float32), input_names=names,
        is_excitatory=torch.as_tensor(types == 1), labels=labels,
        condition=torch.as_tensor(condition), time_ms=time_ms,
        bin_size_ms=float(fields["bin_size_ms"]), train_idx=train_idx, val_idx=val_idx,
        test_idx=test_idx, info=info)


def stratified_split(condition, val_fraction: float, seed: int, test_fraction: float = 0.0):
    """Train/validation(/test) trial indices with each condition split in the same
    proportions; each part keeps at least one trial of a condition that has enough trials for
    it (2 for a validation trial, 3 for a test trial too). Returns ``(train, val, test)``;
    ``test`` is empty when ``test_fraction = 0``."""
    rng = np.random.default_rng(validate.non_negative_int("seed", seed))
    condition = np.asarray(condition)
    parts = ([], [], [])
    for c in np.unique(condition):
        trials = rng.permutation(np.flatnonzero(condition == c))
        n = len(trials)
        n_test = int(round(test_fraction * n))
        if test_fraction > 0 and n >= 3:
            n_test = min(max(n_test, 1), n - 2)
        n_val = int(round(val_fraction * n))
        if n - n_test >= 2:
            n_val = min(max(n_val, 1), n - n_test - 1)
        parts[2].extend(trials[:n_test])
        parts[1].extend(trials[n_test:n_test + n_val])
        parts[0].extend(trials[n_test + n_val:])
    return tuple(torch.as_tensor(np.sort(np.asarray(p, dtype=int))) for p in parts)


# ------------------------------------------------------------------------------ writing
def write_session_v73(path, fields: dict) -> Path:
    """Write ``fields`` (MATLAB shapes, strings as ``str``) as a MATLAB v7.3 file: HDF5 with a
    512-byte MATLAB header, arrays stored with reversed dimensions and strings as uint16.
    The file appears only once complete (:func:`hdlib.io.atomic_path`)."""
    path = Path(path)
    with io.atomic_path(path, suffix=".mat") as tmp:
        _write_hdf5(tmp, fields)
    return path


def _write_hdf5(tmp: Path, fields: dict) -> None:
    with h5py.File(tmp, "w", userblock_size=512) as f:
        for name, value in fields.items():
            if isinstance(value, str):
                codes = np.array([ord(c) for c in value], dtype=np.uint16)[:, None]
                dataset = f.create_dataset(name, data=codes)
                dataset.attrs["MATLAB_class"] = np.bytes_("char")
            else:
                array = np.asarray(value, dtype=np.float64)
                array = array.reshape(1, 1) if array.ndim == 0 else array
                array = array[None, :] if array.ndim == 1 else array
                big = array.size > 4096
                dataset = f.create_dataset(name, data=array.T, compression="gzip" if big else None,
                                           compression_opts=1 if big else None)
                dataset.attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: hdlib HDF5 schema 1.00 ."
    with open(tmp, "r+b") as handle:
        handle.write(header.ljust(128, b" "))


def task_inputs(n_trials: int, n_bins: int, bin_size_ms: float, rng: np.random.Generator):
    """Inputs ``(K, B, 14)`` (the order of :data:`INPUT_FIELDS`, then 4 target locations),
    labels, and trial durations of a delayed-saccade task with a rewarded target.

    Fixation from 100 ms; a target (face, non-face or bullseye; high or low salience) at one of
    4 locations from 400-700 ms; the go cue 500-900 ms later; a saccade to the target 150-250 ms
    after go; reward 300 ms after the saccade on rewarded trials; the trial ends 0.3-2.5 s
    after that (or at the last bin).
    """
    b = lambda ms: np.round(np.asarray(ms) / bin_size_ms).astype(int)  # noqa: E731
    K, B = n_trials, n_bins
    t = np.arange(B)[None, :]
    identity = rng.integers(1, 4, K)
    location = rng.integers(1, 5, K)
    salience = rng.integers(1, 3, K)  # 1 high, 2 low
    probability = rng.choice([0.25, 0.75], K)
    reward = (rng.random(K) < probability).astype(float)
    fix_on = b(np.full(K, 100.0))
    target_on = fix_on + b(rng.uniform(300, 600, K))
    go = target_on + b(rng.uniform(500, 900, K))
    saccade = go + b(rng.uniform(150, 250, K))
    reward_on = saccade + b(300.0)
    end = np.minimum(reward_on + b(rng.uniform(300, 2500, K)), B)
    duration_ms = end * bin_size_ms
    between = lambda a, z: ((t >= a[:, None]) & (t < z[:, None])).astype(float)  # noqa: E731
    shown = between(target_on, end)
    angle = (location - 1) * np.pi / 2 + np.pi / 4
    moved = between(saccade, end)
    eye_x = 10 * np.cos(angle)[:, None] * moved + rng.normal(0, 0.3, (K, B))
    eye_y = 10 * np.sin(angle)[:, None] * moved + rng.normal(0, 0.3, (K, B))
    inputs = [between(fix_on, go), between(go, go + 2), between(reward_on, reward_on + 8)
              * reward[:, None], eye_x, eye_y]
    inputs += [shown * (identity == i)[:, None] for i in (1, 2, 3)]
    inputs += [shown * (salience == s)[:, None] for s in (1, 2)]
    inputs += [shown * (location == loc)[:, None] for loc in (1, 2, 3, 4)]
    labels = {"trial_reward": reward, "trial_probability": probability,
              "trial_identity": identity, "trial_salience": salience, "trial_location": location}
    return np.stack(inputs, axis=-1), labels, duration_ms
