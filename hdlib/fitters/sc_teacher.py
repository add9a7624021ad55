"""A synthetic superior-colliculus session from a known teacher :class:`~hdlib.models.eirnn.EIRNN`:
the place where the ground truth of a fit (its time constants) is known."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .. import validate
from ..datasets.sessions import INPUT_FIELDS, task_inputs, write_session_v73
from ..models.eirnn import EIRNN


@dataclasses.dataclass
class SyntheticSession:
    """Where a synthetic session was written, and the teacher that generated it."""

    path: Path
    teacher: torch.nn.Module
    tau_e_ms: float
    tau_i_ms: float
    rates: torch.Tensor  # the teacher's noise-driven rates before Poisson spiking, (K, B, N)


def make_synthetic_session(path, n_trials: int = 1043, n_exc: int = 41, n_inh: int = 13,
                           n_bins: int = 219, bin_size_ms: float = 25.0, tau_e_ms: float = 100.0,
                           tau_i_ms: float = 50.0, noise_scale: float = 0.3,
                           seed: int = 0) -> SyntheticSession:
    """Simulate a teacher :class:`~hdlib.models.eirnn.EIRNN` on the task of :func:`task_inputs` and
    write the session in the MATLAB v7.3 layout. Spike counts per bin are Poisson; variability
    across trials of one condition comes from the timing of task events, the teacher's process
    noise and Poisson spiking. Recorded E and I neurons are interleaved at random."""
    n_trials = validate.positive_int("n_trials", n_trials)
    n_bins = validate.positive_int("n_bins", n_bins)
    rng = np.random.default_rng(validate.non_negative_int("seed", seed))
    inputs, labels, duration_ms = task_inputs(n_trials, n_bins, bin_size_ms, rng)
    types = rng.permutation(np.r_[np.ones(validate.positive_int("n_exc", n_exc)),
                                  np.full(validate.positive_int("n_inh", n_inh), 2.0)])
    teacher = EIRNN(torch.as_tensor(types == 1), inputs.shape[-1], dt=bin_size_ms,
                    tau_e=tau_e_ms, tau_i=tau_i_ms, noise_scale=noise_scale, rate_scale=10.0,
                    rate_baseline=2.0, spectral_radius=0.9, seed=seed + 1)
    with torch.no_grad():
        teacher.W_in.mul_(2.5)
        teacher.bias.normal_(1.5, 0.5, generator=torch.Generator().manual_seed(seed + 3))
        eye = torch.as_tensor(inputs, dtype=torch.float32)
        eye[..., 3:5] = (eye[..., 3:5] - eye[..., 3:5].mean()) / eye[..., 3:5].std()
        generator = torch.Generator().manual_seed(seed + 2)
        rates = teacher(eye, generator=generator)
        counts = torch.poisson(rates * bin_size_ms / 1000, generator=generator)
    recorded = (counts / (bin_size_ms / 1000)).numpy().astype(np.float64)
    time_ms = (np.arange(n_bins) + 0.5) * bin_size_ms
    padded = time_ms[None, :] >= duration_ms[:, None]
    recorded[padded] = np.nan
    fields = {"firing_rates": recorded.transpose(2, 1, 0),
              "neuron_ids": np.arange(1, len(types) + 1), "neuron_type": types,
              "brain_area": np.ones(len(types)), "n_trials": n_trials,
              "n_neurons": len(types), "n_time_bins": n_bins, "bin_size_ms": bin_size_ms,
              "time_axis": time_ms, "trial_duration_ms": duration_ms}
    for i, name in enumerate(INPUT_FIELDS):
        fields[name] = np.where(padded, np.nan, inputs[..., i]).T
    fields["input_target_loc"] = np.where(padded[None], np.nan,
                                          inputs[..., 10:14].transpose(2, 0, 1)).transpose(0, 2, 1)
    fields.update({name: np.asarray(value, dtype=float) for name, value in labels.items()})
    fields.update(session_name="synthetic_teacher_session", export_date="2026-01-23",
                  pipeline_version="hdlib-synthetic-1")
    written = write_session_v73(path, fields)
    return SyntheticSession(written, teacher, tau_e_ms, tau_i_ms, rates)
