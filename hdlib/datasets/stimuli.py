"""Synthetic free-viewing video: a natural-statistics image seen through a window that follows
the gaze.

* The image has a 1/f amplitude spectrum (the average spectrum of natural scenes) and random
  phases.
* The gaze fixates with a slow random-walk drift and jumps in saccades. Inter-saccade
  intervals follow a gamma distribution (mean ``1 / saccade_rate_hz``, shape 4), amplitudes are
  uniform in ``saccade_amplitude_deg`` and durations follow the main sequence,
  ``duration = 21 ms + 2.2 ms/deg * amplitude``; the position moves along a raised-cosine
  velocity profile during the saccade.
* The saccade gate ``q`` in [0, 1] comes from gaze speed: 0 below ``gate_low_deg_s``, 1 above
  ``gate_high_deg_s`` and linear in between.

Everything is vectorised over trials; one seeded ``numpy.random.Generator`` makes a video
reproducible.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .. import validate


def pink_noise_images(n_images: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_images, size, size)`` images with a 1/f amplitude spectrum, zero mean, unit SD."""
    n_images = validate.positive_int("n_images", n_images)
    size = validate.positive_int("size", size)
    fx = np.fft.fftfreq(size)[:, None]
    fy = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    amplitude = 1.0 / radius
    amplitude[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, (n_images,) + amplitude.shape)
    images = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(size, size))
    images -= images.mean(axis=(1, 2), keepdims=True)
    return images / images.std(axis=(1, 2), keepdims=True)


@dataclasses.dataclass
class GazeModel:
    """Fixations with drift and saccades (see the module docstring); angles in degrees."""

    fps: float = 120.0
    saccade_rate_hz: float = 3.0
    saccade_amplitude_deg: tuple = (2.0, 8.0)
    drift_deg_per_sqrt_s: float = 0.3
    gate_low_deg_s: float = 10.0
    gate_high_deg_s: float = 60.0

    def __post_init__(self):
        self.fps = validate.positive_float("fps", self.fps)
        self.saccade_rate_hz = validate.positive_float("saccade_rate_hz", self.saccade_rate_hz)
        low, high = self.saccade_amplitude_deg
        validate.positive_float("saccade_amplitude_deg[0]", low)
        validate.float_in("saccade_amplitude_deg[1]", high, low, math.inf)
        validate.float_in("drift_deg_per_sqrt_s", self.drift_deg_per_sqrt_s, 0.0, math.inf)
        validate.positive_float("gate_low_deg_s", self.gate_low_deg_s)
        validate.float_in("gate_high_deg_s", self.gate_high_deg_s, self.gate_low_deg_s, math.inf,
                          low_open=True)

    def trajectories(self, n_trials: int, n_frames: int, rng: np.random.Generator,
                     max_eccentricity_deg: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
        """Gaze ``(n_trials, n_frames, 2)`` in degrees and saccade flags ``(n_trials, n_frames)``.

        A saccade that would leave the disc of radius ``max_eccentricity_deg`` is aimed back
        toward the centre instead.
        """
        n_trials = validate.positive_int("n_trials", n_trials)
        n_frames = validate.positive_int("n_frames", n_frames)
        dt = 1.0 / self.fps
        # Drift: a random walk, one draw per frame and trial.
        steps = rng.normal(0, self.drift_deg_per_sqrt_s * math.sqrt(dt), (n_trials, n_frames, 2))
        # Saccade plan: at most one per 60 ms; onset frames from gamma intervals.
        n_max = int(n_frames * dt / 0.06) + 2
        mean_interval = self.fps / self.saccade_rate_hz
        intervals = rng.gamma(4.0, mean_interval / 4.0, (n_trials, n_max))
        onsets = np.round(np.cumsum(intervals, axis=1)).astype(int)
        amplitudes = rng.uniform(*self.saccade_amplitude_deg, (n_trials, n_max))
        directions = rng.uniform(0, 2 * np.pi, (n_trials, n_max))
        durations = np.maximum(2, np.round((0.021 + 0.0022 * amplitudes) * self.fps)).astype(int)
        gaze = np.zeros((n_trials, n_frames, 2))
        saccading = np.zeros((n_trials, n_frames), dtype=bool)
        position = np.zeros((n_trials, 2))
        # Frames are visited in order (the recentring rule depends on the current position);
        # every operation inside is vectorised over trials.
        next_saccade = np.zeros(n_trials, dtype=int)
        target_step = np.zeros((n_trials, 2))
        remaining = np.zeros(n_trials, dtype=int)
        elapsed = np.zeros(n_trials, dtype=int)
        total = np.ones(n_trials, dtype=int)
        rows = np.arange(n_trials)
        for t in range(n_frames):
            k = np.minimum(next_saccade, n_max - 1)
            start = (remaining == 0) & (onsets[rows, k] == t) & (next_saccade < n_max)
            if start.any():
                vector = amplitudes[rows, k, None] * np.stack(
                    [np.cos(directions[rows, k]), np.sin(directions[rows, k])], axis=1)
                landing = position + vector
                outside = np.linalg.norm(landing, axis=1) > max_eccentricity_deg
                vector[outside] = -vector[outside] * np.sign(
                    (vector[outside] * position[outside]).sum(1, keepdims=True) + 1e-12)
                target_step[start] = vector[start]
                remaining[start] = durations[rows, k][start]
                total[start] = durations[rows, k][start]
                elapsed[start] = 0
            # Skip planned onsets that fell inside a saccade.
            late = (remaining == 0) & (onsets[rows, k] <= t)
            next_saccade += late | start
            moving = remaining > 0
            # Raised-cosine velocity: the fraction of the jump made in this frame.
            e, n = elapsed, total
            fraction = 0.5 * (np.cos(np.pi * e / n) - np.cos(np.pi * (e + 1) / n))
            position = position + np.where(moving[:, None], fraction[:, None] * target_step,
                                           steps[:, t])
            saccading[:, t] = moving
            elapsed += moving
            remaining -= moving
            gaze[:, t] = position
        return gaze, saccading

    def gate(self, gaze) -> torch.Tensor:
        """Saccade gate ``q`` in [0, 1] from gaze speed, ``(..., n_frames)``.

        The speed of frame ``t`` is ``|gaze[t] - gaze[t-1]| * fps`` (0 for the first frame).
        """
        gaze = torch.as_tensor(gaze, dtype=torch.float32)
        if gaze.dim() < 2 or gaze.shape[-1] != 2:
            raise ValueError(f"gaze must have shape (..., n_frames, 2); got {tuple(gaze.shape)}")
        speed = torch.zeros(gaze.shape[:-1])
        speed[..., 1:] = (gaze[..., 1:, :] - gaze[..., :-1, :]).norm(dim=-1) * self.fps
        ramp = (speed - self.gate_low_deg_s) / (self.gate_high_deg_s - self.gate_low_deg_s)
        return ramp.clamp(0.0, 1.0)


@dataclasses.dataclass
class FreeViewingVideo:
    """A batch of videos: ``frames (trials, T, window, window)``, gaze in degrees, the window's
    top-left corner in image pixels ``(trials, T, 2)`` as (column, row), the saccade gate, and
    the saccade flags of the generator."""

    frames: torch.Tensor
    gaze: torch.Tensor
    corner_px: torch.Tensor
    gate: torch.Tensor
    saccading: torch.Tensor
    fps: float
    pixels_per_degree: float

    def saccade_rate_hz(self) -> float:
        """Saccade onsets (a frame flagged as saccading after one that is not) per second of
        video, over all trials."""
        onsets = (self.saccading[:, 1:] & ~self.saccading[:, :-1]).sum().item()
        return onsets / (self.saccading.numel() / self.fps)

    def gate_open_fraction(self, threshold: float = 0.5) -> float:
        """Fraction of frames whose saccade gate exceeds ``threshold``."""
        threshold = validate.float_in("threshold", threshold, 0.0, 1.0)
        return (self.gate > threshold).float().mean().item()


def free_viewing_video(n_trials: int, n_frames: int, *, window: int = 32, image_size: int = 256,
                       pixels_per_degree: float = 4.0, gaze_model: GazeModel | None = None,
                       seed: int = 0) -> FreeViewingVideo:
    """Each trial views its own 1/f image through a ``window``-pixel square centred on the gaze.

    Gaze is rounded to whole pixels for the crop, so a 1-pixel step is ``1/pixels_per_degree``
    degrees. The image must be large enough to hold the window at the largest eccentricity.
    """
    window = validate.positive_int("window", window)
    image_size = validate.positive_int("image_size", image_size)
    pixels_per_degree = validate.positive_float("pixels_per_degree", pixels_per_degree)
    gaze_model = gaze_model or GazeModel()
    rng = np.random.default_rng(validate.non_negative_int("seed", seed))
    max_ecc = (image_size - window) / 2 / pixels_per_degree - 1.0
    if max_ecc < 2 * gaze_model.saccade_amplitude_deg[1] / 3:
        raise ValueError(f"image_size {image_size} is too small for window {window} and saccades "
                         f"of {gaze_model.saccade_amplitude_deg[1]} deg at {pixels_per_degree} "
                         f"pixels/deg")
    images = pink_noise_images(n_trials, image_size, rng)
    gaze, saccading = gaze_model.trajectories(n_trials, n_frames, rng, max_eccentricity_deg=max_ecc)
    corner = np.round(gaze * pixels_per_degree).astype(int) + (image_size - window) // 2
    offsets = np.arange(window)
    rows = corner[..., 1, None, None] + offsets[:, None]  # (trials, T, window, 1)
    cols = corner[..., 0, None, None] + offsets[None, :]  # (trials, T, 1, window)
    trial = np.arange(n_trials)[:, None, None, None]
    frames = images[trial, rows, cols]
    gaze_t = torch.as_tensor(gaze, dtype=torch.float32)
    return FreeViewingVideo(frames=torch.as_tensor(frames, dtype=torch.float32), gaze=gaze_t,
                            corner_px=torch.as_tensor(corner, dtype=torch.float32),
                            gate=gaze_model.gate(gaze_t), saccading=torch.as_tensor(saccading),
                            fps=gaze_model.fps, pixels_per_degree=pixels_per_degree)
