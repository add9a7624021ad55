"""The library never touches the global random generators, and models follow their inputs' device.

Every public entry point is called between two snapshots of the global states (torch's CPU
generator, numpy's legacy generator and Python's ``random``); randomness must come from a
``seed`` or a ``torch.Generator``. The device tests run models on PyTorch's ``meta`` device
(shapes without data): a tensor made on the CPU inside a forward pass either raises there or
leaves its result on the CPU, so an output on ``meta`` shows that everything followed the input.
"""
import dataclasses
import random

import numpy as np
import pytest
import torch

from hdlib import losses
from hdlib.datasets import sessions, stimuli
from hdlib.datasets.tasks import AVIntegrationDataset, HeadDirectionTrackingTask
from hdlib.fitters import av_integration, polar_fit, sc_fit, sc_teacher, training
from hdlib.models import backends, ei_ring, polar, polar_v1
from hdlib.models.ei_ring import RingAttractorNetwork
from hdlib.models.eirnn import EIRNN
from hdlib.models.leaky_ring import LeakyRingAttractor

TYPES = torch.tensor([True, False, True, True, False])


def global_states():
    return torch.random.get_rng_state(), np.random.get_state(), random.getstate()


def assert_untouched(call):
    """Run ``call()`` and check that no global random state moved."""
    torch_before, numpy_before, python_before = global_states()
    call()
    torch_after, numpy_after, python_after = global_states()
    assert torch.equal(torch_before, torch_after), "torch's global generator was used"
    assert numpy_before[0] == numpy_after[0] and np.array_equal(numpy_before[1], numpy_after[1])
    assert numpy_before[2:] == numpy_after[2:], "numpy's global generator was used"
    assert python_before == python_after, "Python's random module was used"


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def small_session(session):
    """The shared synthetic session cut to 60 bins and 40 training trials (a fit step is cheap)."""
    bins = slice(0, 60)
    return dataclasses.replace(session, rates=session.rates[:, bins], mask=session.mask[:, bins],
                               inputs=session.inputs[:, bins], time_ms=session.time_ms[bins],
                               train_idx=session.train_idx[:40])


@pytest.fixture(scope="module")
def polar_data():
    video = stimuli.free_viewing_video(4, 12, window=32, image_size=96, seed=0)
    features = polar_v1.encode_video(video)
    teacher = polar_fit.make_teacher(features.amplitude.shape[-1], 3, seed=0)
    return polar_fit.simulate(teacher, features, seed=0)


# ---------------------------------------------------------------------------- constructors
CONSTRUCTORS = {
    "RingAttractorNetwork": lambda: RingAttractorNetwork(16, 4, seed=1),
    "LeakyRingAttractor-random": lambda: LeakyRingAttractor(12, hidden_gain_neurons=3),
    "LeakyRingAttractor-perfect": lambda: LeakyRingAttractor(12, init="perfect"),
    "LeakyRingAttractor-debug_perfect": lambda: LeakyRingAttractor(12, init="debug_perfect"),
    "EIRNN": lambda: EIRNN(TYPES, 3),
    "EIRNN-low-rank": lambda: EIRNN(TYPES, 3, low_rank=2),
    "EIRNN-hidden": lambda: EIRNN(TYPES, 3, n_hidden_exc=2, n_hidden_inh=1),
    "EIRNN-learnable-tau": lambda: EIRNN(TYPES, 3, learnable_tau="neuron", tau_mode="smooth"),
    "PolarDynamics": lambda: polar.PolarDynamics(),
    "TemporalSummarizer": lambda: polar.TemporalSummarizer(),
    "PolarV1": lambda: polar_v1.PolarV1(6, 4, seed=2),
    "PolarV1-from-config": lambda: polar_v1.PolarV1.from_config("polar_v1", 6, 4),
    "QuadratureFilterBank": lambda: polar_v1.QuadratureFilterBank(),
    "AVIntegrationDataset": lambda: AVIntegrationDataset(8, seq_len=5),
    "HeadDirectionTrackingTask": lambda: HeadDirectionTrackingTask(16, seq_len=5),
}


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_constructors_leave_global_rng_alone(name):
    assert_untouched(CONSTRUCTORS[name])


def test_equal_seeds_give_equal_models():
    """Determinism from the seed alone (the global state is not what makes it repeatable)."""
    makers = [lambda s: RingAttractorNetwork(16, 4, seed=s), lambda s: EIRNN(TYPES, 3, seed=s),
              lambda s: LeakyRingAttractor(12, seed=s), lambda s: polar_v1.PolarV1(6, 4, seed=s)]
    for make in makers:
        a, b = make(3).state_dict(), make(3).state_dict()
        with torch.random.fork_rng():
            torch.manual_seed(123)  # a different global state must not matter
            c = make(3).state_dict()
        other = make(4).state_dict()
        assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
        assert any(not torch.equal(a[k], other[k]) for k in a)


# ---------------------------------------------------------------------------- forward passes
def ring_forward():
    model = RingAttractorNetwork(16, 4)
    model(torch.rand(2, 5, 16, generator=gen()), generator=gen(1))


def eirnn_forward():
    for options in ({}, {"low_rank": 2}, {"n_hidden_exc": 2, "n_hidden_inh": 1}):
        model = EIRNN(TYPES, 3, **options)
        model(torch.rand(2, 6, 3, generator=gen()), generator=gen(1))


def leaky_forward():
    model = LeakyRingAttractor(12)
    model(0.1 * torch.randn(2, 5, generator=gen()), torch.zeros(2))


def polar_forward():
    amplitude, gate = torch.rand(2, 7, 6, generator=gen()), torch.rand(2, 7, generator=gen(1))
    polar.PolarDynamics()(amplitude, gate)
    polar.TemporalSummarizer()(amplitude)
    polar_v1.PolarV1(6, 4)(amplitude, gate)
    polar_v1.QuadratureFilterBank()(torch.rand(2, 3, 32, 32, generator=gen()))


def dataset_batch():
    data = AVIntegrationDataset(8, seq_len=5, heading_rotations=2)
    data.generate_batch(4)  # the dataset's own stream
    data.generate_batch(4, 7, generator=gen())
    list(data.epoch(4))


def task_batch_and_loss():
    model = RingAttractorNetwork(16, 4)
    task = HeadDirectionTrackingTask.for_model(model, seq_len=5)
    inputs, targets = task.batch("train", 2, gen())
    task.loss(model, inputs, targets, generator=gen(1))


FORWARD = {"RingAttractorNetwork": ring_forward, "EIRNN": eirnn_forward,
           "LeakyRingAttractor": leaky_forward, "Polar": polar_forward,
           "AVIntegrationDataset.generate_batch": dataset_batch,
           "HeadDirectionTrackingTask.batch/loss": task_batch_and_loss}


@pytest.mark.parametrize("name", FORWARD)
def test_forward_passes_with_a_generator_leave_global_rng_alone(name):
    assert_untouched(FORWARD[name])


# ---------------------------------------------------------------------------- fitters and tools
def test_adam_cosine_trainer():
    model = RingAttractorNetwork(16, 4)
    task = HeadDirectionTrackingTask.for_model(model, seq_len=5)
    assert_untouched(lambda: training.quick_train(
        model, epochs=2, task=task, batches_per_epoch=1, val_batches=1, batch_size=2,
        val_batch_size=2, progress=False))


def test_train_integrator():
    model = LeakyRingAttractor(12, hidden_gain_neurons=2)
    data = AVIntegrationDataset(4, seq_len=5)
    assert_untouched(lambda: av_integration.train_integrator(
        model, data, [[4, 1], [6, 1]], batch_size=2, progress=False))


def test_sc_fit_and_evaluate(small_session):
    model = sc_fit.build_model(small_session, sc_fit.make_config())
    assert_untouched(lambda: sc_fit.fit(small_session, {"steps": 1, "balance_every": 1},
                                        model=model, progress=False))
    assert_untouched(lambda: sc_fit.evaluate(model, small_session,
                                             index=small_session.val_idx[:12]))


def test_polar_fit(polar_data):
    assert_untouched(lambda: polar_fit.fit("polar_v1", polar_data, max_steps=2, batch_size=2,
                                           progress=False))


def test_synthetic_session_and_loading(tmp_path):
    path = tmp_path / "s.mat"
    assert_untouched(lambda: sc_teacher.make_synthetic_session(path, n_trials=12, n_bins=80))
    assert_untouched(lambda: sessions.load_session(path, seed=3))


def test_free_viewing_video():
    assert_untouched(lambda: stimuli.free_viewing_video(2, 10, window=32, image_size=96, seed=4))


def test_ei_ring_measurements():
    model = RingAttractorNetwork(16, 4)
    task = HeadDirectionTrackingTask.for_model(model, seq_len=5)
    assert_untouched(lambda: ei_ring.darkness_test(model, cue_steps=4, dark_steps=4,
                                                   batch_size=2))
    assert_untouched(lambda: ei_ring.tracking_error_deg(model, task, batch_size=2))
    assert_untouched(lambda: ei_ring.bump_count_grid([0.5], [1.0, 2.0], n_exc=16, n_inh=4,
                                                     steps=4, batch_size=2))


def test_split_half_ceiling(session):
    batch = session.trials(session.val_idx)
    assert_untouched(lambda: losses.split_half_ceiling(batch["rates"], batch["mask"],
                                                       batch["condition"], n_splits=2))


# ---------------------------------------------------------------------------- devices
META = torch.device("meta")


def on_meta(*shape):
    return torch.zeros(*shape, device=META)


def test_meta_device_catches_tensors_made_on_the_cpu():
    """What the device tests rely on: a CPU tensor mixed in raises or leaves the result on the
    CPU, so an output on meta means every tensor a forward pass made followed its input."""
    with pytest.raises(RuntimeError, match="device"):
        torch.zeros(3) + on_meta(3)
    assert (torch.zeros(2, 3) @ on_meta(3, 3)).device.type == "cpu"


@pytest.mark.parametrize("options", [{}, {"low_rank": 2}, {"n_hidden_exc": 2, "n_hidden_inh": 1},
                                     {"learnable_alpha": "population"}])
def test_eirnn_follows_the_input_device(options):
    model = EIRNN(TYPES, 3, **options).to(META)
    rates = model(on_meta(2, 6, 3))  # noise on: drawn on the input's device
    assert rates.device == META and rates.shape == (2, 6, 5 + options.get("n_hidden_exc", 0)
                                                    + options.get("n_hidden_inh", 0))


@pytest.mark.parametrize("init", ["random", "perfect"])
def test_leaky_ring_follows_the_input_device(init):
    model = LeakyRingAttractor(12, hidden_gain_neurons=3, init=init).to(META)
    activity = model(on_meta(2, 5), on_meta(2))
    assert activity.device == META and activity.shape == (2, 5, 12)
    assert model.initial_state(on_meta(3)).device == META


def test_ring_attractor_pieces_follow_the_input_device():
    """The forward pass itself cannot run on meta: :meth:`excitation_modes` keeps as many
    Fourier modes as the spectrum's values call for, a data-dependent size. Its pieces can."""
    model = RingAttractorNetwork(16, 4).to(META)
    r_e, r_i = model.initial_state(on_meta(2))
    assert r_e.device == META and r_i.device == META and r_i.shape == (2, 4)
    assert model.cue(on_meta(2, 5)).device == META
    assert model.w_ee_column().device == META and model.excitation_spectrum().device == META


def test_polar_temporal_stages_follow_the_input_device():
    """PolarV1's forward pass checks that the gate lies in [0, 1], which reads values and so
    cannot run on meta; the summariser and the recurrence it shares with the dynamics can."""
    fast, slow = polar.TemporalSummarizer(backend="torch").to(META)(on_meta(2, 70, 4))
    assert fast.device == META and slow.device == META and fast.shape == (2, 70, 4)
    states = backends.linear_recurrence(on_meta(2, 70), on_meta(2, 70, 4), on_meta(2, 4))
    assert states.device == META and states.shape == (2, 70, 4)
