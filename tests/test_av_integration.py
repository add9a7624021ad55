import math

import pytest
import torch

from hdlib.circular import angle_grid
from hdlib.datasets.tasks import AVIntegrationDataset
from hdlib.fitters import av_integration as avi
from hdlib.models.leaky_ring import LeakyRingAttractor


def test_short_training_reduces_the_loss():
    model = LeakyRingAttractor(60, init_scale=0.0, seed=0)
    data = AVIntegrationDataset(32, seed=1)
    history = avi.train_integrator(model, data, [[20, 60]], batch_size=32,
                                   learning_rate=3e-3, progress=False, snapshot_every=20)
    assert len(history.loss) == len(history.grad_norm) == 60
    assert sum(history.loss[-10:]) < 0.8 * sum(history.loss[:10])
    assert [it for it, _ in history.snapshots] == [0, 20, 40, 60]


def test_learning_rate_follows_cosine_times_stage_factor():
    model = LeakyRingAttractor(8, seed=0)
    history = avi.train_integrator(model, AVIntegrationDataset(4), [[3, 4], [5, 6]],
                                   batch_size=4, learning_rate=0.01, min_lr_ratio=0.1,
                                   stage_lr_factors=[1.0, 0.5], progress=False)
    expected = [(1.0 if t < 4 else 0.5) * 0.01 * (0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2)
                for t in range(10)]
    assert history.learning_rate == pytest.approx(expected)
    assert history.seq_len == [3] * 4 + [5] * 6
    assert history.stage == [0] * 4 + [1] * 6


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        model = LeakyRingAttractor(16, init_scale=0.5, seed=2)
        runs.append(avi.train_integrator(model, AVIntegrationDataset(8, seed=3), [[6, 5]],
                                         batch_size=8, seed=7, progress=False).loss)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("factors", [[1.0], [1.0, 0.0], "fast", [1.0, -1.0]])
def test_bad_stage_factors(factors):
    with pytest.raises(ValueError, match="stage_lr_factors"):
        avi.train_integrator(LeakyRingAttractor(8), AVIntegrationDataset(8), [[5, 2], [6, 2]],
                             stage_lr_factors=factors, progress=False)


def test_non_finite_loss_stops_training():
    model = LeakyRingAttractor(16)
    with torch.no_grad():
        model.J1.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="at step 0 .*learning rate"):
        avi.train_integrator(model, AVIntegrationDataset(8), [[5, 3]], batch_size=8, progress=False)


def test_stop_on_nonfinite_keeps_the_run_up_to_the_bad_step():
    # The forward pass turns non-finite from its fourth call on: steps 0-2 update the weights,
    # step 3 does not, and the history ends after three steps with the reason recorded.
    model = LeakyRingAttractor(16, seed=0)
    calls = []

    def poison(module, inputs, output):
        calls.append(1)
        return output * float("nan") if len(calls) > 3 else output

    model.register_forward_hook(poison)
    history = avi.train_integrator(model, AVIntegrationDataset(8), [[5, 6]], batch_size=8,
                                   stop_on_nonfinite=True, progress=False)
    assert len(history.loss) == 3
    assert "at step 3" in history.stopped
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("curriculum", [[], "fast", [[10]], [[0, 5]], [[10, -1]]])
def test_bad_curriculum(curriculum):
    with pytest.raises(ValueError, match="curriculum"):
        avi.train_integrator(LeakyRingAttractor(8), AVIntegrationDataset(8), curriculum,
                             progress=False)


def test_debug_perfect_cannot_be_trained():
    with pytest.raises(ValueError, match="trainable"):
        avi.train_integrator(LeakyRingAttractor(8, init="debug_perfect"), AVIntegrationDataset(8),
                             [[5, 2]], progress=False)


def test_stage_summary_by_hand():
    history = avi.TrainingHistory(error_deg=[9.0, 3.0, 1.0, 2.0, 8.0, 1.0],
                                  grad_norm=[1.0, 0.5, 0.2, 0.3, 4.0, 0.1],
                                  seq_len=[20, 20, 20, 40, 40, 40],
                                  stage=[0, 0, 0, 1, 1, 1])
    first, second = avi.stage_summary(history, window=2)
    assert math.isnan(first.pop("peak_vs_previous"))
    assert first == {"seq_len": 20, "iterations": 3, "first_error": 6.0, "peak_error": 9.0,
                     "last_error": 2.0, "max_grad_norm": 1.0}
    assert second == {"seq_len": 40, "iterations": 3, "first_error": 5.0, "peak_error": 8.0,
                      "last_error": 4.5, "peak_vs_previous": 4.0, "max_grad_norm": 4.0}


def test_compare_tracking_pairs_networks_and_tables_errors():
    ideal = LeakyRingAttractor(60, init="debug_perfect")
    still = LeakyRingAttractor(60, init_scale=0.0, seed=0)
    data = AVIntegrationDataset(16, seed=5)
    results = avi.compare_tracking({"ideal": ideal, "other": still}, data, (10, 30),
                                   batch_size=16, seed=3)
    assert set(results) == {("ideal", 10), ("other", 10), ("ideal", 30), ("other", 30)}
    for length in (10, 30):
        assert torch.equal(results[("ideal", length)]["angles"],
                           results[("other", length)]["angles"])
    again = avi.evaluate_tracking(ideal, data, 30, 16, generator=torch.Generator().manual_seed(3))
    assert again["population_vector"] == results[("ideal", 30)]["population_vector"]
    table = avi.error_table(results)
    assert list(table) == ["T = 10", "T = 30"]
    assert list(table["T = 30"]) == ["ideal", "other", "null baseline"]
    assert table["T = 30"]["null baseline"] == results[("other", 30)]["null"]


def test_gain_error_by_hand():
    av = torch.tensor([-0.4, -0.2, 0.001, 0.1, 0.3])
    # -0.4 lies outside the training range and 0.001 below 5% of it: neither counts
    speeds = torch.tensor([0.0, -0.19, 0.5, 0.11, 0.3])
    assert avi.gain_error(av, speeds, max_av=0.3) == pytest.approx(10.0, rel=1e-5)
    with pytest.raises(ValueError, match="training range"):
        avi.gain_error(torch.tensor([0.5]), torch.tensor([0.5]), max_av=0.3)


def test_linspace_grid_biases_decoding_by_half_a_spacing():
    bias = avi.grid_decoding_bias(120, samples=500, seed=1)
    assert bias["ring grid"] < 1e-3
    assert bias["linspace grid"] == pytest.approx(180.0 / 120, rel=0.05)


def test_bump_width_of_a_half_ring():
    half = (angle_grid(12) < math.pi).float()
    assert avi.bump_width(half[None]).item() == pytest.approx(0.5)


def test_velocity_gain_of_ideal_ring_is_close_to_one():
    model = LeakyRingAttractor(120, init="debug_perfect")
    av = torch.tensor([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3])
    speed = avi.velocity_gain(model, av)
    nonzero = av.abs() > 0
    assert torch.allclose(speed[nonzero] / av[nonzero], torch.ones(6), atol=0.02)
    assert abs(speed[~nonzero].item()) < 1e-5


def _history_with_a_spike():
    # stage 0: 3 iterations, stage 1: 4 iterations with a spike at iteration 4
    return avi.TrainingHistory(
        error_deg=[9.0, 3.0, 2.0, 1.5, 30.0, 2.0, 1.0],
        loss=[1.0, 0.5, 0.4, 0.3, 2.0, 0.3, 0.2],
        heading_loss=[0.9, 0.45, 0.35, 0.25, 1.5, 0.25, 0.15],
        learning_rate=[0.1, 0.1, 0.1, 0.05, 0.04, 0.03, 0.02],
        grad_norm=[5.0, 2.0, 0.5, 0.5, 3.0, 0.4, 0.2],
        seq_len=[20, 20, 20, 40, 40, 40, 40], stage=[0, 0, 0, 1, 1, 1, 1])


def test_instability_record_by_hand():
    record = avi.instability_record(_history_with_a_spike(), grad_clip=1.0, window=2)
    assert record["peak_iteration"] == 4
    assert record["peak_error"] == 30.0
    assert record["worst_jump"] == pytest.approx(30.0 / 2.5)  # previous stage ends at (3+2)/2
    assert record["lr_at_peak"] == 0.04
    assert record["grad_norm_at_peak"] == 3.0
    assert record["clipped_fraction"] == pytest.approx(1 / 4)  # only iteration 4 after stage 0
    assert record["amplitude_share_at_peak"] == pytest.approx(0.5 / 2.0)


def test_instability_record_needs_two_stages():
    history = _history_with_a_spike()
    history.stage = [0] * 7
    with pytest.raises(ValueError, match="single curriculum stage"):
        avi.instability_record(history)


def test_block_means_and_stored_configurations():
    assert avi.block_means([1.0, 3.0, 5.0, 7.0, 10.0], 2) == [2.0, 6.0, 10.0]
    assert avi.config_of("plain_cosine_seed12") == "plain_cosine"
    assert avi.config_of("perfect") == "perfect"
    assert avi.config_of("x_seedy") == "x_seedy"
    import pandas as pd

    table = pd.DataFrame({"seed": [1, 0, 0], "error": [2.0, 1.0, 5.0]},
                         index=["a_seed1", "a_seed0", "b_seed0"])
    assert avi.by_config(table, "error") == {"a": [1.0, 2.0], "b": [5.0]}
    with pytest.raises(KeyError, match="missing"):
        avi.by_config(table, "missing")
    overview = avi.config_overview({"error": avi.by_config(table, "error")}, ["error"])
    assert overview.loc["a", "seeds"] == 2
    assert overview.loc["a", "error"] == "1.5 [1, 2]"


def test_derived_claim_quantities_by_hand():
    per_config = {"error_short": {"a": [1.0, 2.0]}, "null_short": {"a": [50.0, 40.0]},
                  "drift_deg_per_step": {"a": [0.01, 0.02]},
                  "argmax_error": {"a": [3.0, 2.5]}, "worst_jump": {"a": [100.0, 2.0]}}
    avi.add_derived(per_config, seq_len=100)
    assert per_config["percent_of_null"]["a"] == pytest.approx([2.0, 5.0])
    assert per_config["drift_per_sequence"]["a"] == pytest.approx([1.0, 2.0])
    assert per_config["argmax_excess"]["a"] == pytest.approx([2.0, 0.5])
    assert per_config["log10_worst_jump"]["a"] == pytest.approx([2.0, math.log10(2.0)])


def test_instability_summary_by_hand():
    per_config = {"worst_jump": {"a": [2.0, 12.0, 30.0]},
                  "peak_iteration": {"a": [600, 630, 660]},
                  "grad_norm_at_peak": {"a": [0.2, 0.5, 0.3]},
                  "clipped_fraction": {"a": [0.0, 0.01, 0.0]},
                  "amplitude_share_at_peak": {"a": [0.1, 0.2, 0.05]}}
    summary = avi.instability_summary(per_config, "a")
    assert summary == pytest.approx({"seeds": 3.0, "blown": 2.0, "jump_max": 30.0,
                                     "peak_it": 630.0, "gn_peak": 0.5, "clipped": 1.0,
                                     "amp_share": 20.0})
    assert avi.instability_summary(per_config, "missing") == {}


def test_stop_after_keeps_the_whole_curriculums_schedule():
    whole = avi.train_integrator(LeakyRingAttractor(8, seed=0), AVIntegrationDataset(4),
                                 [[3, 4], [5, 6]], batch_size=4, learning_rate=0.01,
                                 min_lr_ratio=0.1, progress=False)
    part = avi.train_integrator(LeakyRingAttractor(8, seed=0), AVIntegrationDataset(4),
                                [[3, 4], [5, 6]], batch_size=4, learning_rate=0.01,
                                min_lr_ratio=0.1, stop_after=6, progress=False)
    assert part.learning_rate == whole.learning_rate[:6]
    assert part.loss == whole.loss[:6]
    assert part.seq_len == [3] * 4 + [5] * 2
    assert part.snapshots[-1][0] == 6


def test_relu_from_a_silent_start_has_exactly_zero_gradient():
    # Zero recurrent weights and J0 = 0: every unit's input is exactly 0 after the first step,
    # where ReLU's gradient is 0 (tanh's is 1), so nothing can train the ReLU ring.
    data = AVIntegrationDataset(16, seq_len=10, seed=0)
    relu = LeakyRingAttractor(24, activation="relu", init_scale=0.0, seed=0)
    tanh = LeakyRingAttractor(24, activation="tanh", init_scale=0.0, seed=0)
    assert avi.largest_first_gradient(relu, data, 10) == 0.0
    assert avi.largest_first_gradient(tanh, data, 10) > 1e-3
    random_relu = LeakyRingAttractor(24, activation="relu", init_scale=0.1, seed=0)
    assert avi.largest_first_gradient(random_relu, data, 10) > 1e-3
