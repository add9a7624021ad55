"""hdlib.datasets.nwb: an NWB session built here from known rates is read through a lab's
mapping; the shipped MATLAB export is written as NWB and read back; bad files and mappings
each get one line naming the problem, and nothing is written."""
import datetime
import inspect
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from hdlib.datasets import nwb, sessions

ROOT = Path(__file__).resolve().parents[1]
MAT = ROOT / "data" / "sc" / "rnn_export_Newton_08_14_2025_SC.mat"
BIN_MS, N_BINS, N_TRIALS, FIX_MS = 25.0, 80, 240, 100.0
IDENTITY = {1: "face", 2: "object", 3: "bullseye"}
SALIENCE = {1: "high", 2: "low"}
#: How a (made-up) lab names things; the session below is written with these names.
LAB_MAPPING = {
    "bin_ms": BIN_MS, "align_to": "fix_acquired", "window_ms": [-FIX_MS, N_BINS * BIN_MS - FIX_MS],
    "trial_end": "stop_time",
    "units": {"cell_type": {"column": "waveform_class", "excitatory": ["RS"],
                            "inhibitory": ["FS"]}, "brain_area": None},
    "labels": {"trial_reward": "rewarded", "trial_probability": "reward_prob",
               "trial_identity": {"column": "image_class",
                                  "values": {v: k for k, v in IDENTITY.items()}},
               "trial_salience": {"column": "contrast",
                                  "values": {v: k for k, v in SALIENCE.items()}},
               "trial_location": "target_position"},
    "inputs": {"input_fixation_on": {"start": "fix_acquired", "stop": "go"},
               "input_go_signal": {"start": "go", "duration_ms": 2 * BIN_MS},
               "input_reward_on": {"start": "reward", "duration_ms": 8 * BIN_MS,
                                   "when": {"rewarded": 1}},
               **{f"input_is_{n}": {"start": "target", "when": {"image_class": v}}
                  for n, v in (("face", "face"), ("nonface", "object"),
                               ("bullseye", "bullseye"))},
               "input_high_salience": {"start": "target", "when": {"contrast": "high"}},
               "input_low_salience": {"start": "target", "when": {"contrast": "low"}},
               **{f"input_target_loc_{loc}": {"start": "target",
                                              "when": {"target_position": loc}}
                  for loc in (1, 2, 3, 4)}},
    "eye_position": "gaze"}


def known_rates(inputs):
    """Rates (spikes/s) ``(K, B, 6)`` driven by the task: 6 at rest, +10 while fixating, +30
    while a target is shown at the unit's preferred location (unit n prefers n % 4 + 1)."""
    return np.stack([6 + 10 * inputs[..., 0] + 30 * inputs[..., 10 + n % 4] for n in range(6)],
                    axis=-1)


@pytest.fixture(scope="module")
def synthetic():
    """A small session with known rates: the task of :func:`sessions.task_inputs`, its event
    times read off the input traces (jittered inside their bin), spike counts drawn from the
    rates, spikes placed uniformly inside their bin, trials separated by gaps with spikes."""
    rng = np.random.default_rng(7)
    bin_s = BIN_MS / 1000
    inputs, labels, duration_ms = sessions.task_inputs(N_TRIALS, N_BINS, BIN_MS, rng)
    start = 1.0 + np.cumsum(np.r_[0, rng.uniform(0.2, 0.8, N_TRIALS - 1)]) + \
        np.arange(N_TRIALS) * N_BINS * bin_s
    recorded = np.arange(N_BINS)[None, :] < (duration_ms / BIN_MS)[:, None]

    def event(trace, fallback):  # time of the first bin where a trace is on, jittered
        on = trace != 0
        when = start + (on.argmax(1) + rng.uniform(0, 0.95, N_TRIALS)) * bin_s
        return np.where(on.any(1), when, fallback)

    go = event(inputs[..., 1], np.nan)
    rewarded = labels["trial_reward"] == 1
    trials = {
        "start_time": start, "stop_time": start + duration_ms / 1000,
        "fix_acquired": start + FIX_MS / 1000,  # exactly on a bin edge
        "go": go,
        # Unrewarded trials get a reward time too (the mapping's `when` must ignore it);
        # rewarded trials whose reward falls after the window get one after it.
        "reward": event(inputs[..., 2], np.where(rewarded, start + (N_BINS + 3) * bin_s,
                                                 go + 0.5)),
        "target": event(inputs[..., 5:].max(-1), np.nan),
        "rewarded": labels["trial_reward"].astype(int),
        "reward_prob": labels["trial_probability"],
        "image_class": [IDENTITY[i] for i in labels["trial_identity"]],
        "contrast": [SALIENCE[s] for s in labels["trial_salience"]],
        "target_position": labels["trial_location"].astype(int)}
    rates = known_rates(inputs)
    counts = np.where(recorded[..., None], rng.poisson(rates * bin_s), 0)
    spikes = []
    for n in range(6):
        k, b = np.nonzero(counts[..., n])
        k, b = np.repeat(k, counts[k, b, n]), np.repeat(b, counts[k, b, n])
        # 1e-4 bin clear of the next edge (the reader puts times within 1e-6 bin of an edge
        # in the later bin).
        inside = start[k] + (b + rng.uniform(0, 1 - 1e-4, len(k))) * bin_s
        gaps = rng.uniform(0, start[-1] + 3, 400)
        between = ~((gaps[:, None] >= start - bin_s)
                    & (gaps[:, None] < start + (N_BINS + 1) * bin_s)).any(1)
        spikes.append(np.sort(np.r_[inside, gaps[between]]))
    eye = inputs[..., 3:5]  # two samples per bin, +-0.1 around the bin's value
    stamps = start[:, None, None] + (np.arange(N_BINS)[None, :, None] + [0.25, 0.75]) * bin_s
    values = eye[:, :, None, :] + np.array([0.1, -0.1])[None, None, :, None]
    return {"trials": trials, "spikes": spikes, "units": {"waveform_class": ["RS"] * 4
                                                          + ["FS"] * 2},
            "eye": (stamps.ravel(), values.reshape(-1, 2)), "inputs": inputs, "labels": labels,
            "counts": counts, "rates": rates, "recorded": recorded}


def write_nwb(path, data, trials=True, units=True):
    """``data`` as an NWB file, with pynwb directly (not through the code under test)."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwbfile = NWBFile(session_description="synthetic session with known rates",
                      identifier="synthetic", session_id="synthetic",
                      session_start_time=datetime.datetime(2025, 1, 1,
                                                           tzinfo=datetime.timezone.utc))
    if trials:
        columns = data["trials"]
        for name in columns:
            if name not in ("start_time", "stop_time"):
                nwbfile.add_trial_column(name, f"{name} of the trial")
        for k in range(len(columns["start_time"])):
            nwbfile.add_trial(**{name: values[k] for name, values in columns.items()})
    if units:
        for name in data["units"]:
            nwbfile.add_unit_column(name, f"{name} of the unit")
        for n, times in enumerate(data["spikes"]):
            nwbfile.add_unit(spike_times=times,
                             **{name: values[n] for name, values in data["units"].items()})
    stamps, values = data["eye"]
    nwbfile.add_acquisition(TimeSeries(name="gaze", data=values, timestamps=stamps,
                                       unit="degrees"))
    with NWBHDF5IO(str(path), "w") as writer:
        writer.write(nwbfile)
    return Path(path)


@pytest.fixture(scope="module")
def lab_file(synthetic, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    (folder / "lab.yaml").write_text(yaml.safe_dump(LAB_MAPPING))
    return write_nwb(folder / "lab.nwb", synthetic), folder / "lab.yaml"


def test_mapping_yaml_file_dict_and_default(lab_file):
    path, mapping = lab_file
    assert nwb.load_mapping(mapping) == nwb.load_mapping(LAB_MAPPING)
    default = nwb.load_mapping(None)
    assert default["align_to"] == "align_time" and set(default["inputs"]) == set(nwb.CHANNELS)
    # A top-level key left out keeps the default's value.
    assert nwb.load_mapping({"bin_ms": 12.5})["window_ms"] == default["window_ms"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"hdlib.datasets" = ["*.yaml"]' in pyproject  # the default ships with the package


@pytest.mark.parametrize("edit, message", [
    ({"align_too": "x"}, "unknown key 'align_too'"),
    ({"inputs": {**LAB_MAPPING["inputs"], "input_go_signal": {"start": "go", "durations_ms": 5}}},
     "unknown key 'inputs.input_go_signal.durations_ms'"),
    ({"labels": {**LAB_MAPPING["labels"], "trial_colour": "c"}},
     "unknown key 'labels.trial_colour'"),
    ({"units": {"cell_type": None, "area": "x"}}, "unknown key 'units.area'"),
    ({"inputs": {k: v for k, v in LAB_MAPPING["inputs"].items() if k != "input_reward_on"}},
     "inputs has no entry for input_reward_on"),
    ({"window_ms": [0, 110]}, "not a whole number"),
])
def test_bad_mappings_are_one_line_naming_the_key(edit, message):
    with pytest.raises(ValueError, match=message) as error:
        nwb.load_mapping({**LAB_MAPPING, **edit})
    assert "\n" not in str(error.value) and str(error.value).startswith("mapping: ")


def test_synthetic_session_reads_back_through_a_lab_mapping(synthetic, lab_file):
    path, mapping = lab_file
    session = sessions.load_session(path, mapping=mapping)
    recorded = torch.as_tensor(synthetic["recorded"])
    assert torch.equal(session.mask, recorded)
    # Every spike comes back in its bin: rates are exactly the drawn counts / bin width.
    expected = np.where(synthetic["recorded"][..., None], synthetic["counts"] / 0.025, 0.0)
    torch.testing.assert_close(session.rates, torch.as_tensor(expected, dtype=torch.float32),
                               rtol=0, atol=0)
    np.testing.assert_allclose(session.time_ms, -FIX_MS + BIN_MS * (np.arange(N_BINS) + 0.5))
    assert session.is_excitatory.tolist() == [True] * 4 + [False] * 2
    # Inputs: the task's traces within recorded bins (eye z-scored over them, as documented).
    inputs = np.where(synthetic["recorded"][..., None], synthetic["inputs"], 0.0)
    for i in (3, 4):
        values = synthetic["inputs"][..., i][synthetic["recorded"]]
        inputs[..., i] = np.where(synthetic["recorded"],
                                  (synthetic["inputs"][..., i] - values.mean()) / values.std(), 0)
    torch.testing.assert_close(session.inputs, torch.as_tensor(inputs, dtype=torch.float32),
                               rtol=0, atol=1e-5)
    for name, values in synthetic["labels"].items():
        np.testing.assert_array_equal(session.labels[name], values)
    identity, location = (synthetic["labels"][f"trial_{n}"] for n in ("identity", "location"))
    np.testing.assert_array_equal(session.condition.numpy(), (identity - 1) * 4 + location - 1)


def test_synthetic_psths_match_the_known_rates(synthetic, lab_file):
    """PSTH per unit and target location (mean over the trials that recorded a bin) against
    the same mean of the known rates: Pearson r > 0.9 (0.96 when written) over bins recorded in
    at least 20 trials of a location."""
    path, mapping = lab_file
    session = sessions.load_session(path, mapping=mapping)
    r = _psth_correlation(session.rates.numpy(), synthetic)
    assert r > 0.9, r


def test_events_on_bin_edges_fall_in_the_later_bin():
    # An event j whole bins after the alignment event, on clocks where the subtraction rounds
    # either way, starts its channel in bin j + 4 (the window starts 100 ms = 4 bins before).
    align = np.linspace(1.0, 3000.0, 500)
    spec = nwb.load_mapping({**LAB_MAPPING, "inputs": {
        **{name: None for name in nwb.CHANNELS},
        "input_go_signal": {"start": "go", "duration_ms": BIN_MS}}})
    for j in (1, 7, 30):
        go = nwb.event_inputs({"go": align + j * BIN_MS / 1000}, spec, align, N_BINS)
        assert (go["input_go_signal"].argmax(1) == j + 4).all() and go["input_go_signal"].sum() \
            == len(align)


def _psth_correlation(rates, synthetic):
    mask, location = synthetic["recorded"], synthetic["labels"]["trial_location"]
    measured, known = [], []
    for loc in (1, 2, 3, 4):
        trials = location == loc
        n = mask[trials].sum(0)
        keep = n >= 20
        for values, out in ((rates, measured), (synthetic["rates"], known)):
            psth = (values[trials] * mask[trials][..., None]).sum(0)[keep] / n[keep][:, None]
            out.append(psth.ravel())
    return np.corrcoef(np.concatenate(measured), np.concatenate(known))[0, 1]


def _fit_file(path, out, mapping, monkeypatch, **options):
    """``fit_file`` on ``path`` read through ``mapping`` (passed on if ``fit_file`` takes a
    mapping; else it stands in for the default mapping)."""
    from hdlib.fitters import sc_fit

    if "mapping" in inspect.signature(sc_fit.fit_file).parameters:
        return sc_fit.fit_file(path, out, mapping=mapping, **options)
    monkeypatch.setattr(nwb, "DEFAULT_MAPPING", Path(mapping))
    return sc_fit.fit_file(path, out, **options)


@pytest.mark.slow
def test_synthetic_nwb_session_fits_and_recovers_the_psths(synthetic, lab_file, tmp_path,
                                                           monkeypatch):
    """``hdlib fit`` on the NWB file, 300 steps (about 4 s on one core): the fitted model's
    PSTHs (noise off, all trials) correlate with those of the known rates at r > 0.75 (0.86 when
    written; 30 steps reach only 0.2)."""
    from hdlib.fitters import sc_fit

    path, mapping = lab_file
    try:
        metrics = _fit_file(path, tmp_path / "fit", mapping, monkeypatch, steps=300,
                            progress=False)
    except TypeError as error:
        pytest.skip(f"sc_fit.fit_file(path, out, steps=..., progress=False) does not run as "
                    f"called here (its signature is being changed): {error}")
    assert (metrics["n_trials"], metrics["n_bins"], metrics["n_neurons"]) == (N_TRIALS, N_BINS, 6)
    assert metrics["n_exc"] == 4
    assert {p.name for p in (tmp_path / "fit").iterdir()} >= {"model.pt", "metrics.json",
                                                               "psth.png"}
    model = sc_fit.load_fitted(tmp_path / "fit" / "model.pt").eval()
    inputs = sessions.load_session(path, mapping=mapping).inputs
    with torch.no_grad():
        rates = model(inputs)[..., :6].numpy()
    r = _psth_correlation(rates, synthetic)
    assert r > 0.75, r


# ------------------------------------------------------------------------------ bad files
def _not_hdf5(path, data):
    path.write_text("not a recording\n")


def _hdf5_not_nwb(path, data):
    with h5py.File(path, "w") as f:
        f["firing_rates"] = np.zeros((2, 3))


def _edit(**columns):
    def write(path, data):
        trials = {**data["trials"], **columns}
        write_nwb(path, {**data, "trials": {k: v for k, v in trials.items() if v is not None}})
    return write


def _unit_types(types):
    def write(path, data):
        write_nwb(path, {**data, "units": {"waveform_class": types}})
    return write


def _nan_at(column, indices):
    def write(path, data):
        values = np.array(data["trials"][column], dtype=float)
        values[indices] = np.nan
        _edit(**{column: values})(path, data)
    return write


@pytest.mark.parametrize("make, message", [
    (_not_hdf5, "bad.nwb: not an NWB file (it is not even HDF5)"),
    (_hdf5_not_nwb, "bad.nwb: not a readable NWB file"),
    (lambda path, data: write_nwb(path, data, trials=False), "bad.nwb: no trials table"),
    (lambda path, data: write_nwb(path, data, units=False), "bad.nwb: no units table"),
    (_edit(image_class=None), "bad.nwb: trials table has no column 'image_class' (mapping key "
                              "labels.trial_identity); its columns are: start_time"),
    (_nan_at("fix_acquired", [3, 7]), "bad.nwb: alignment event 'fix_acquired' (mapping key "
     "align_to) is missing (NaN) in 2 of 240 trials (trials 3, 7)"),
    (_edit(image_class=["house"] + ["face"] * (N_TRIALS - 1)),
     "label column 'image_class' (mapping key labels.trial_identity) has unexpected values "
     "house"),
    (_edit(target_position=np.r_[5, np.ones(N_TRIALS - 1, int)]),
     "label column 'target_position' (mapping key labels.trial_location) has unexpected values "
     "5"),
    (_unit_types(["RS", "XX", "RS", "RS", "FS", "FS"]),
     "units column 'waveform_class' has unexpected values XX"),
], ids=["not-hdf5", "hdf5-not-nwb", "no-trials", "no-units", "label-missing", "align-nan",
        "label-values", "location-values", "cell-type-values"])
def test_bad_files_get_one_line_and_nothing_is_written(make, message, synthetic, lab_file,
                                                       tmp_path, monkeypatch):
    path = tmp_path / "bad.nwb"
    make(path, synthetic)
    with pytest.raises(ValueError) as error:
        sessions.load_session(path, mapping=lab_file[1])
    assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="bad.nwb"):
        _fit_file(path, tmp_path / "fit", lab_file[1], monkeypatch, steps=1, progress=False)
    assert not (tmp_path / "fit").exists()


# ------------------------------------------------------------------------------ the shipped session
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return nwb.export_nwb(MAT, tmp_path_factory.mktemp("export") / "newton.nwb")


def test_exported_file_is_valid_nwb(exported):
    from pynwb import NWBHDF5IO, validate

    assert validate(path=str(exported)) == []
    with NWBHDF5IO(str(exported), "r") as reader:
        nwbfile = reader.read()
        assert nwbfile.session_id == "Newton_08_14_2025_SC"
        assert nwbfile.subject.subject_id == "Newton"
        assert nwbfile.session_start_time.date() == datetime.date(2025, 8, 14)
        assert len(nwbfile.trials) == 536 and len(nwbfile.units) == 41
        stop = nwbfile.trials["stop_time"].data[:]
        start = nwbfile.trials["start_time"].data[:]
        # Back to back on one clock, one 219 x 25 ms window each.
        np.testing.assert_allclose(np.diff(start), 219 * 0.025)
        assert (stop >= start).all()
        assert sorted(set(nwbfile.units["cell_type"].data[:])) == ["excitatory", "inhibitory"]


def test_round_trip_of_the_shipped_session(exported):
    """Exactly equal: rates, mask, all 14 inputs (eye position too: one sample per bin),
    labels, conditions, cell types, unit ids and the split. To float rounding: the time axis
    (the export's own differs from exact bin centres by 1e-12 ms) and trial durations (1e-6 ms;
    the masks they give are equal). Not carried: rates of bins after a trial's end (NaN from
    NWB, numbers in this export; masked either way) and the export's pipeline-version string."""
    mat, back = sessions.load_session(MAT), sessions.load_session(exported)
    for name in ("rates", "mask", "inputs", "condition", "is_excitatory", "train_idx",
                 "val_idx"):
        assert torch.equal(getattr(mat, name), getattr(back, name)), name
    assert back.input_names == mat.input_names
    for name in sessions.LABEL_FIELDS:
        np.testing.assert_array_equal(back.labels[name], mat.labels[name])
    np.testing.assert_allclose(back.time_ms, mat.time_ms, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.info["neuron_ids"], mat.info["neuron_ids"])
    assert back.bin_size_ms == 25.0 and back.info["session_name"] == mat.info["session_name"]
    raw_mat, raw_back = sessions.read_fields(MAT), nwb.read_fields(exported)
    np.testing.assert_allclose(raw_back["trial_duration_ms"], raw_mat["trial_duration_ms"].ravel(),
                               rtol=0, atol=1e-6)
    recorded = ~np.isnan(raw_back["firing_rates"])
    np.testing.assert_array_equal(raw_back["firing_rates"][recorded],
                                  raw_mat["firing_rates"][recorded])


@pytest.fixture(scope="module")
def shipped_fields():
    """The shipped export's fields, cut to its first 40 trials (small files, quick tests)."""
    raw = sessions.read_fields(MAT)
    cut = {}
    for name, value in raw.items():
        if isinstance(value, np.ndarray) and 536 in value.shape:
            value = np.take(value, np.arange(40), axis=value.shape.index(536))
        cut[name] = value
    cut["n_trials"] = np.array([[40.0]])
    return cut


def test_export_of_part_of_the_shipped_session_reads_back_exactly(shipped_fields, tmp_path):
    mat = sessions.write_session_v73(tmp_path / "part.mat", shipped_fields)
    back = nwb.export_nwb(mat, tmp_path / "part.nwb")
    a, b = sessions.load_session(mat), sessions.load_session(back)
    for name in ("rates", "mask", "inputs", "condition", "is_excitatory"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def _go_pulse(fields):  # a 2-bin go cue, as in sessions.task_inputs
    go = fields["input_go_signal"]
    onset = np.cumsum(go, axis=0)
    fields["input_go_signal"] = ((onset >= 1) & (onset <= 2) & (go > 0)).astype(float)


@pytest.mark.parametrize("edit, message", [
    (_go_pulse, "part.mat: input(s) input_go_signal do not have the shapes"),
    (lambda f: f.update(firing_rates=f["firing_rates"] * 1.1),
     "part.mat: firing rates x bin width are not whole spike counts"),
    (lambda f: f.update(time_axis=f["time_axis"] + 25), "part.mat: its bins are not those"),
])
def test_export_refuses_what_it_cannot_express_and_writes_nothing(edit, message,
                                                                  shipped_fields, tmp_path):
    fields = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in shipped_fields.items()}
    edit(fields)
    mat = sessions.write_session_v73(tmp_path / "part.mat", fields)
    with pytest.raises(ValueError) as error:
        nwb.export_nwb(mat, tmp_path / "out.nwb")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.mat"]


def test_every_problem_of_a_file_is_named_in_one_line(lab_file):
    mapping = {**LAB_MAPPING, "eye_position": "eyes",
               "labels": {**LAB_MAPPING["labels"], "trial_reward": "reward_given"}}
    with pytest.raises(ValueError) as error:
        nwb.read_fields(lab_file[0], mapping)
    message = str(error.value)
    assert message.startswith("lab.nwb: trials table has no column 'reward_given' (mapping key "
                              "labels.trial_reward); its columns are: start_time, stop_time,")
    assert "no TimeSeries named 'eyes'" in message and "TimeSeries in the file: gaze" in message
    assert "\n" not in message


def test_export_command_writes_what_load_session_reads(shipped_fields, tmp_path, capsys):
    """`python -m hdlib export-nwb` on part of the shipped export: the NWB file reads back with
    the same rates, mask and conditions; a bad input is one line and writes no file."""
    from hdlib.book.cli import main as cli

    mat = sessions.write_session_v73(tmp_path / "part.mat", shipped_fields)
    out = tmp_path / "part.nwb"
    assert cli(["export-nwb", str(mat), str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    a, b = sessions.load_session(mat), sessions.load_session(out)
    for name in ("rates", "mask", "condition"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert cli(["export-nwb", str(tmp_path / "missing.mat"), str(tmp_path / "x.nwb")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nwb").exists()
