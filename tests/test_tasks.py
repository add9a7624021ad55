import math

import pytest
import torch

from hdlib.circular import circular_mae, von_mises_bump, wrap
from hdlib.datasets.tasks import AVIntegrationDataset, HeadDirectionTrackingTask


def test_shapes_range_and_padding():
    ds = AVIntegrationDataset(100, seq_len=50, zero_padding_start_ratio=0.2, seed=3)
    av, angles = ds.generate_batch(16)
    assert av.shape == angles.shape == (16, 50)
    assert torch.all(av[:, :10] == 0)
    assert av.abs().max() <= 0.1 * math.pi + 1e-6
    assert torch.all(angles > -math.pi) and torch.all(angles <= math.pi)


def test_perfect_integrator_matches_angles_including_current_step():
    ds = AVIntegrationDataset(100, seq_len=200, seed=1)
    av, angles = ds.generate_batch(32)
    theta0 = ds.initial_heading(av, angles)
    integrated = wrap(theta0[:, None] + torch.cumsum(av, dim=1))
    assert circular_mae(integrated, angles) < 1e-3
    lagging = wrap(theta0[:, None] + torch.cumsum(av, dim=1) - av)  # excludes av[t]
    assert circular_mae(lagging, angles) > 1.0


def test_seeded_and_reproducible():
    a = AVIntegrationDataset(10, seed=7).generate_batch(8)
    b = AVIntegrationDataset(10, seed=7).generate_batch(8)
    c = AVIntegrationDataset(10, seed=8).generate_batch(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_passed_generator_replaces_the_dataset_stream():
    ds = AVIntegrationDataset(10, seed=7)
    a = ds.generate_batch(8, generator=torch.Generator().manual_seed(3))
    other = AVIntegrationDataset(10, seed=99)
    b = other.generate_batch(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the dataset's own stream was not advanced by the draw above
    fresh = AVIntegrationDataset(10, seed=7)
    assert torch.equal(ds.generate_batch(8)[0], fresh.generate_batch(8)[0])


def test_heading_rotations_repeat_each_sequence_around_the_ring():
    ds = AVIntegrationDataset(10, seq_len=30, heading_rotations=4, seed=2)
    av, angles = ds.generate_batch(8)
    assert torch.equal(av[0], av[3]) and not torch.equal(av[0], av[4])
    turned = wrap(angles[1] - angles[0])
    assert torch.allclose(turned, torch.full((30,), math.pi / 2), atol=1e-5)
    with pytest.raises(ValueError, match="heading_rotations"):
        ds.generate_batch(6)


def test_zero_ratio_controls_still_fraction():
    for ratio in (0.2, 0.8):
        ds = AVIntegrationDataset(10, seq_len=400, zero_padding_start_ratio=0.0,
                                  zero_ratios_in_rest=[ratio], seed=0)
        av, _ = ds.generate_batch(256)
        assert (av == 0).float().mean().item() == pytest.approx(ratio, abs=0.05)


def test_epoch_covers_num_samples():
    ds = AVIntegrationDataset(70, seq_len=10)
    sizes = [av.shape[0] for av, _ in ds.epoch(32)]
    assert sizes == [32, 32, 6]


def test_longer_sequences_on_request():
    av, _ = AVIntegrationDataset(10, seq_len=20).generate_batch(4, seq_len=1200)
    assert av.shape == (4, 1200)


@pytest.mark.parametrize("kwargs, name", [
    ({"num_samples": 0}, "num_samples"),
    ({"num_samples": 10, "seq_len": -5}, "seq_len"),
    ({"num_samples": 10, "seq_len": 2.5}, "seq_len"),
    ({"num_samples": 10, "max_av": 0.0}, "max_av"),
    ({"num_samples": 10, "max_av": -1.0}, "max_av"),
    ({"num_samples": 10, "zero_padding_start_ratio": 1.5}, "zero_padding_start_ratio"),
    ({"num_samples": 10, "zero_ratios_in_rest": [0.2, -0.1]}, r"zero_ratios_in_rest\[1\]"),
    ({"num_samples": 10, "zero_ratios_in_rest": []}, "zero_ratios_in_rest"),
    ({"num_samples": "10"}, "num_samples"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AVIntegrationDataset(**kwargs)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        AVIntegrationDataset(10).generate_batch(0)


def test_tracking_task_headings_are_smooth_and_seeded():
    task = HeadDirectionTrackingTask(32, seq_len=200, speed_deg_s=90.0)
    a = task.headings(8, torch.Generator().manual_seed(1))
    b = task.headings(8, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    steps = torch.remainder(torch.diff(a, dim=1) + math.pi, 2 * math.pi) - math.pi
    assert steps.abs().max().item() < math.radians(2.0)



class _FixedRates(torch.nn.Module):
    """Stands in for a ring model: returns the given rates whatever the input."""

    def __init__(self, rates):
        super().__init__()
        self.rates = rates

    def initial_state(self, heading):
        return None

    def forward(self, inputs, h0=None, generator=None):
        return self.rates, None


def test_tracking_loss_is_one_minus_cos_of_the_population_vector_error():
    # 4 neurons at 0, pi/2, pi, 3pi/2. Rates (1, 0, 0, 0) decode to 0 and (0, 1, 1, 0) to
    # atan2(1, -1) = 3pi/4; against headings pi/3 and pi/4 the errors are pi/3 and pi/2.
    rates = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]])
    headings = torch.tensor([[math.pi / 3, math.pi / 4]])
    task = HeadDirectionTrackingTask(4, seq_len=2)
    loss = task.loss(_FixedRates(rates), torch.zeros(1, 2, 4), headings)
    expected = ((1 - math.cos(math.pi / 3)) + (1 - math.cos(math.pi / 2))) / 2  # 0.75
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_tracking_loss_equals_the_decoded_cosine_form_on_the_ei_ring():
    from hdlib.models.ei_ring import RingAttractorNetwork

    model = RingAttractorNetwork(n_exc=48, n_inh=12, seed=0)
    task = HeadDirectionTrackingTask.for_model(model, seq_len=30)
    inputs, headings = task.batch("val", 3, torch.Generator().manual_seed(2))
    loss = task.loss(model, inputs, headings, generator=torch.Generator().manual_seed(3))
    rates, _ = model(inputs, model.initial_state(headings[:, 0]),
                     generator=torch.Generator().manual_seed(3))
    decoded_form = (1.0 - torch.cos(model.decode(rates) - headings)).mean()
    assert loss.item() == pytest.approx(decoded_form.item(), abs=1e-5)


def test_cue_estimate_holds_the_last_lit_heading_through_darkness():
    # 4 neurons at 0, pi/2, pi, 3pi/2; steps: lit at 0, lit at pi/2, dark, dark, lit at 3pi/2
    bumps = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0],
                          [0, 0, 0, 1.0]])[None]
    visible = torch.tensor([[True, True, False, False, True]])
    estimate = HeadDirectionTrackingTask.cue_estimate(bumps, visible)
    expected = torch.tensor([[0.0, math.pi / 2, math.pi / 2, math.pi / 2, -math.pi / 2]])
    torch.testing.assert_close(estimate, expected)


def test_dark_stretches_take_their_stationary_share_and_input_is_zero_in_darkness():
    # a two-state chain leaving lit with p = 1/150 and dark with q = 1/100 per step spends
    # p / (p + q) = 100 / 250 = 0.4 of its time dark
    task = HeadDirectionTrackingTask(16, seq_len=4000, mean_lit_ms=150.0, mean_dark_ms=100.0,
                                     cue_noise=0.3)
    inputs, _, visible, _ = task.segment("train", 64, torch.Generator().manual_seed(0))
    assert (~visible).float().mean().item() == pytest.approx(0.4, abs=0.03)
    assert visible[:, 0].all()  # sequences start lit
    assert torch.all(inputs[~visible] == 0)
    assert (inputs[visible].std() > 0.25)


def test_cue_noise_has_the_requested_spread_around_the_bump():
    task = HeadDirectionTrackingTask(64, seq_len=200, cue_noise=0.5, cue_strength=1.0)
    inputs, headings = task.batch("train", 16, torch.Generator().manual_seed(1))
    clean = von_mises_bump(headings, 64, concentration=8.0)
    assert (inputs - clean).std().item() == pytest.approx(0.5, rel=0.02)


def test_segments_continue_heading_and_cue_state():
    still = HeadDirectionTrackingTask(16, seq_len=30, speed_deg_s=0.0, mean_lit_ms=1e9,
                                      mean_dark_ms=1e9)
    g = torch.Generator().manual_seed(2)
    _, first, _, end = still.segment("train", 5, g)
    dark_start = {**end, "visible": torch.zeros(5, dtype=torch.bool)}
    _, second, visible, _ = still.segment("train", 5, g, start=dark_start)
    torch.testing.assert_close(second, first[:, -1:].expand(-1, 30))  # no motion: same heading
    assert not visible.any()  # started dark and (almost) never switches back


def test_silent_start_and_bad_task_options():
    assert HeadDirectionTrackingTask(8, initial="silent").initial_state(None, None) is None
    with pytest.raises(ValueError, match="initial"):
        HeadDirectionTrackingTask(8, initial="bumpy")
    with pytest.raises(ValueError, match="cue_noise"):
        HeadDirectionTrackingTask(8, cue_noise=-1.0)
    with pytest.raises(ValueError, match="mean_dark_ms"):
        HeadDirectionTrackingTask(8, mean_dark_ms=0.5)
