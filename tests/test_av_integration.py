import pytest
import torch

from hdlib.datasets.tasks import AVIntegrationDataset
from hdlib.fitters import av_integration as avi
from hdlib.models.leaky_ring import LeakyRingAttractor


def test_short_training_reduces_the_loss():
    model = LeakyRingAttractor(60, init_scale=0.0, seed=0)
    data = AVIntegrationDataset(32, seed=1)
    history = avi.train_integrator(model, data, [[20, 60]], batch_size=32,
                                   learning_rate=3e-3, progress=False, snapshot_every=20)
    assert len(history.loss) == 60
    assert sum(history.loss[-10:]) < 0.8 * sum(history.loss[:10])
    assert [it for it, _ in history.snapshots] == [0, 20, 40, 60]



def test_non_finite_loss_stops_training():
    model = LeakyRingAttractor(16)
    with torch.no_grad():
        model.J1.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"at step 0 \(learning rate"):
        avi.train_integrator(model, AVIntegrationDataset(8), [[5, 3]], batch_size=8, progress=False)



@pytest.mark.parametrize("curriculum", [[], "fast", [[10]], [[0, 5]], [[10, -1]]])
def test_bad_curriculum(curriculum):
    with pytest.raises(ValueError, match="curriculum"):
        avi.train_integrator(LeakyRingAttractor(8), AVIntegrationDataset(8), curriculum,
                             progress=False)



def test_debug_perfect_cannot_be_trained():
    with pytest.raises(ValueError, match="trainable"):
        avi.train_integrator(LeakyRingAttractor(8, init="debug_perfect"), AVIntegrationDataset(8),
                             [[5, 2]], progress=False)



def test_velocity_gain_of_ideal_ring_is_close_to_one():
    model = LeakyRingAttractor(120, init="debug_perfect")
    av = torch.tensor([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3])
    speed = avi.velocity_gain(model, av)
    nonzero = av.abs() > 0
    assert torch.allclose(speed[nonzero] / av[nonzero], torch.ones(6), atol=0.02)
    assert abs(speed[~nonzero].item()) < 1e-5

