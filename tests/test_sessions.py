"""hdlib.datasets.sessions: MATLAB v7.3 and older session files, checks, the split."""
import numpy as np
import pytest
import scipy.io
import torch

from hdlib.datasets import sessions as nd


def test_v73_file_is_hdf5_with_reversed_dimensions(synthetic):
    import h5py
    with h5py.File(synthetic.path) as f:
        assert f["firing_rates"].shape == (120, 140, 54)  # (trials, bins, neurons) in HDF5
        assert f["session_name"].dtype == np.uint16
    with open(synthetic.path, "rb") as f:
        assert f.read(10) == b"MATLAB 7.3"


def test_loaded_session(session, synthetic):
    assert session.rates.shape == (120, 140, 54)
    assert session.inputs.shape == (120, 140, 14)
    assert int(session.is_excitatory.sum()) == 41
    assert session.info["session_name"] == "synthetic_teacher_session"
    assert not torch.isnan(session.rates).any() and not torch.isnan(session.inputs).any()
    assert (session.rates[~session.mask] == 0).all()
    eye = session.inputs[..., session.input_names.index("input_eye_x")][session.mask]
    assert abs(eye.mean()) < 1e-3 and abs(eye.std() - 1) < 1e-2
    # The split is disjoint, complete and stratified by condition.
    train, val = set(session.train_idx.tolist()), set(session.val_idx.tolist())
    assert not train & val and len(train | val) == 120
    for c in torch.unique(session.condition):
        in_c = (session.condition == c).nonzero().flatten().tolist()
        share = len(set(in_c) & val) / len(in_c)
        assert 0 < share < 0.5


def test_old_matlab_format_loads_the_same(session, synthetic, tmp_path):
    raw = nd.read_fields(synthetic.path)
    path = tmp_path / "v5.mat"
    scipy.io.savemat(path, raw)
    old = nd.load_session(path)
    torch.testing.assert_close(old.rates, session.rates)
    torch.testing.assert_close(old.inputs, session.inputs)
    assert old.info["pipeline_version"] == session.info["pipeline_version"]


def test_nan_padding_becomes_the_mask(session):
    # Bins after a trial's end were written as NaN; they must all be masked.
    ends = session.mask.sum(1)
    assert (ends < session.mask.shape[1]).any()
    for k in range(5):
        assert session.mask[k, : ends[k]].all() and not session.mask[k, ends[k]:].any()


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.pop("input_go_signal"), "input_go_signal"),
    (lambda f: f.update(n_neurons=f["n_neurons"] + 1), "n_neurons"),
    (lambda f: f.update(time_axis=np.zeros(7)), "time_axis"),
    (lambda f: f.update(neuron_type=np.full(54, 3.0)), "neuron_type"),
    (lambda f: f.update(input_target_loc=np.zeros((3, 140, 120))), "input_target_loc"),
])
def test_bad_session_files_name_the_field(synthetic, tmp_path, edit, message):
    fields = nd.read_fields(synthetic.path)
    edit(fields)
    path = nd.write_session_v73(tmp_path / "bad.mat", fields)
    with pytest.raises(ValueError, match=message):
        nd.load_session(path)


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "x.mat"
    path.write_text("hello")
    with pytest.raises(ValueError, match="MATLAB"):
        nd.load_session(path)


def test_write_then_read_gives_the_fields_back(tmp_path):
    fields = {"matrix": np.arange(6.0).reshape(2, 3), "vector": np.array([1.0, 2.0]),
              "scalar": 3.0, "name": "abc"}
    path = nd.write_session_v73(tmp_path / "f.mat", fields)
    raw = nd.read_fields(path)
    np.testing.assert_array_equal(raw["matrix"], fields["matrix"])
    np.testing.assert_array_equal(raw["vector"], [[1.0, 2.0]])  # MATLAB keeps vectors 2-D
    np.testing.assert_array_equal(raw["scalar"], [[3.0]])
    assert raw["name"] == "abc"


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = nd.write_session_v73(tmp_path / "s.mat", {"a": 1.0})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        nd.write_session_v73(path, {"a": 2.0, "b": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.mat"]
