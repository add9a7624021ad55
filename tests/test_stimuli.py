"""Polar V1 temporal stages, configurations, stimuli and the fitting task."""



import torch

from hdlib.datasets import stimuli


def test_video_statistics():
    video = stimuli.free_viewing_video(16, 480, window=36, seed=3)
    assert video.frames.shape == (16, 480, 36, 36)
    saccading = video.saccading.float()
    onsets = (video.saccading[:, 1:] & ~video.saccading[:, :-1]).sum().item()
    rate = onsets / (16 * 480 / 120)
    assert 1.5 < rate < 4.5  # saccades per second
    assert 0.03 < saccading.mean() < 0.25
    # The gate is open during saccades and closed during fixation.
    assert video.gate[video.saccading].mean() > 0.8
    assert video.gate[~video.saccading].mean() < 0.05
    # Same seed, same video.
    again = stimuli.free_viewing_video(16, 480, window=36, seed=3)
    assert torch.equal(video.frames, again.frames)



def test_images_have_a_one_over_f_spectrum():
    import numpy as np
    images = stimuli.pink_noise_images(4, 128, np.random.default_rng(0))
    power = np.abs(np.fft.fft2(images)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128)))
    low = power[:, (f > 0.02) & (f < 0.04)].mean()
    high = power[:, (f > 0.2) & (f < 0.4)].mean()
    assert 40 < low / high < 400  # 1/f^2 power: a factor (10)^2 = 100 expected

