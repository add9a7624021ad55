import math

import pytest
import torch

from hdlib.circular import circular_mae, wrap
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
