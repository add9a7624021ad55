"""hdlib.datasets.stimuli: free-viewing videos."""
import numpy as np
import pytest
import torch

from hdlib.datasets import stimuli


def test_video_statistics():
    video = stimuli.free_viewing_video(16, 480, window=36, seed=3)
    assert video.frames.shape == (16, 480, 36, 36)
    saccading = video.saccading.float()
    assert 1.5 < video.saccade_rate_hz() < 4.5
    assert 0.03 < saccading.mean() < 0.25
    # The gate is open during saccades and closed during fixation.
    assert video.gate[video.saccading].mean() > 0.8
    assert video.gate[~video.saccading].mean() < 0.05
    # Same seed, same video.
    again = stimuli.free_viewing_video(16, 480, window=36, seed=3)
    assert torch.equal(video.frames, again.frames)


def test_images_have_exactly_a_one_over_f_spectrum():
    # Random phases on a 1/f amplitude: away from the DC and Nyquist rows and columns (where a
    # real image forces symmetry) |FFT|^2 f^2 is the same at every frequency of an image.
    size = 64
    images = stimuli.pink_noise_images(3, size, np.random.default_rng(0))
    assert images.shape == (3, size, size)
    assert np.allclose(images.mean(axis=(1, 2)), 0, atol=1e-12)
    assert np.allclose(images.std(axis=(1, 2)), 1)
    power = np.abs(np.fft.fft2(images)) ** 2
    fx, fy = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    inside = ((fx != 0) & (np.abs(fx) != 0.5) & (fy != 0) & (np.abs(fy) != 0.5))
    scaled = (power * (fx ** 2 + fy ** 2))[:, inside]
    assert np.allclose(scaled / scaled.mean(axis=1, keepdims=True), 1.0, rtol=1e-9)


def test_gate_is_the_speed_ramp_by_hand():
    # Speeds of 0, 10, 35, 60 and 90 deg/s at 120 Hz: q = clip((v - 10) / 50, 0, 1).
    model = stimuli.GazeModel()
    speeds = [0.0, 10.0, 35.0, 60.0, 90.0]
    x = np.concatenate([[0.0], np.cumsum(np.array(speeds) / 120.0)])
    gaze = np.stack([x, np.zeros_like(x)], axis=-1)[None]
    q = model.gate(gaze)[0]
    assert q[0] == 0.0  # the first frame has no speed
    assert torch.allclose(q[1:], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]), atol=1e-5)
    with pytest.raises(ValueError, match="gaze"):
        model.gate(np.zeros((4, 3)))


def test_saccade_rate_and_gate_fraction_count_frames():
    # Two trials of 12 frames at 120 Hz (0.2 s in all): three onsets; a saccade running from
    # the first frame is not an onset.
    saccading = torch.zeros(2, 12, dtype=torch.bool)
    saccading[0, 2:4] = saccading[0, 7:9] = saccading[1, :3] = saccading[1, 5:6] = True
    gate = torch.zeros(2, 12)
    gate[0, :3] = torch.tensor([0.2, 0.6, 1.0])
    video = stimuli.FreeViewingVideo(frames=torch.zeros(2, 12, 4, 4), gaze=torch.zeros(2, 12, 2),
                                     corner_px=torch.zeros(2, 12, 2), gate=gate,
                                     saccading=saccading, fps=120.0, pixels_per_degree=4.0)
    assert video.saccade_rate_hz() == pytest.approx(3 / 0.2)
    assert video.gate_open_fraction() == pytest.approx(2 / 24)
    assert video.gate_open_fraction(0.1) == pytest.approx(3 / 24)
    with pytest.raises(ValueError, match="threshold"):
        video.gate_open_fraction(2.0)


def test_long_recordings_reach_the_planned_saccade_rate():
    # Short videos fall below the rate because each opens with a full interval.
    gaze, saccading = stimuli.GazeModel(saccade_rate_hz=3.0).trajectories(
        8, 6000, np.random.default_rng(1), max_eccentricity_deg=30.0)
    onsets = (saccading[:, 1:] & ~saccading[:, :-1]).sum()
    assert 2.85 < onsets / (saccading.size / 120) < 3.15
