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


def test_images_have_a_one_over_f_spectrum():
    images = stimuli.pink_noise_images(4, 128, np.random.default_rng(0))
    power = np.abs(np.fft.fft2(images)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128)))
    low = power[:, (f > 0.02) & (f < 0.04)].mean()
    high = power[:, (f > 0.2) & (f < 0.4)].mean()
    assert 40 < low / high < 400  # 1/f^2 power: a factor (10)^2 = 100 expected


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
