"""A small Polar V1 model, a teacher that generates spikes from it, and the fitting task.

Pipeline for each video frame ``I_t`` (see :mod:`hdlib.stimuli`):

1. quadrature filters ``g_f(x) = exp(-|x|^2 / 2 sigma_f^2) exp(-i k_f . x)`` at a few
   wavelengths, orientations and positions give ``z_f[t] = sum_x I_t(x) g_f(x)``, split into
   amplitude ``|z|`` (normalised by its mean over the video) and phase ``arg z``;
2. :class:`~hdlib.polar.PolarDynamics` relaxes the amplitudes with the saccade gate ``q[t]``
   from gaze speed;
3. :class:`~hdlib.polar.TemporalSummarizer` keeps fast and slow averages of them;
4. a linear readout of the relaxed amplitude and both summaries gives each neuron's rate,
   ``r_n[t] = RATE_SCALE * softplus(b_n + sum_f U_nf A_f[t] + W_nf fast_f[t] + V_nf slow_f[t])``
   (spikes/s),
   and spike counts per frame are Poisson with mean ``r_n[t] dt``.

The neurons are complex-cell-like: they read amplitudes only. The carried phase
(:meth:`~hdlib.polar.PolarDynamics.phase`) is available from :func:`encode_video`.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from . import validate
from .polar import PolarDynamics, TemporalSummarizer, load_config
from .stimuli import FreeViewingVideo

#: Peak scale of the readout nonlinearity (spikes/s per unit of softplus).
RATE_SCALE = 30.0


class QuadratureFilterBank(nn.Module):
    """Complex Gabor filters (zero-mean real part) applied with a stride over the window."""

    def __init__(self, wavelengths=(3.0, 6.0, 12.0), n_orientations: int = 4, kernel: int = 21,
                 stride: int = 15):
        super().__init__()
        wavelengths = validate.list_of(validate.positive_float, "wavelengths")(
            "wavelengths", wavelengths)
        n_orientations = validate.positive_int("n_orientations", n_orientations)
        self.kernel = validate.positive_int("kernel", kernel)
        self.stride = validate.positive_int("stride", stride)
        half = (kernel - 1) / 2
        y, x = torch.meshgrid(torch.arange(kernel) - half, torch.arange(kernel) - half,
                              indexing="ij")
        filters, vectors = [], []
        for wavelength in wavelengths:
            sigma = 0.45 * wavelength
            envelope = torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
            for o in range(n_orientations):
                theta = math.pi * o / n_orientations
                k = 2 * math.pi / wavelength * torch.tensor([math.cos(theta), math.sin(theta)])
                carrier = k[0] * x + k[1] * y
                real = envelope * torch.cos(carrier)
                real = real - envelope * (real.sum() / envelope.sum())
                imag = -envelope * torch.sin(carrier)
                norm = (real.square().sum() + imag.square().sum()).sqrt()
                filters.append(torch.complex(real, imag) / norm)
                vectors.append(k)
        self.register_buffer("filters", torch.stack(filters))  # (n_filters, kernel, kernel)
        self.register_buffer("wave_vectors", torch.stack(vectors))  # rad/pixel, (x, y)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Complex responses ``(..., n_filters * positions)`` of frames ``(..., H, W)``,
        ordered filter-major."""
        validate.tensor("frames", frames, ndim=(3, 4))
        lead = frames.shape[:-2]
        flat = frames.reshape(-1, 1, *frames.shape[-2:])
        weight = torch.cat([self.filters.real, self.filters.imag])[:, None]
        out = torch.nn.functional.conv2d(flat, weight, stride=self.stride)
        n = self.filters.shape[0]
        z = torch.complex(out[:, :n], out[:, n:])
        return z.reshape(*lead, -1)

    def feature_wave_vectors(self, n_features: int) -> torch.Tensor:
        """Wave vector (rad/pixel) of each of ``n_features`` outputs, ``(n_features, 2)``."""
        return self.wave_vectors.repeat_interleave(n_features // len(self.wave_vectors), dim=0)


@dataclasses.dataclass
class PolarFeatures:
    """Filter outputs of a video: ``amplitude``, ``phase`` and the phase shift the window's
    motion predicts ``(trials, T, F)``, and the saccade gate ``(trials, T)``."""

    amplitude: torch.Tensor
    phase: torch.Tensor
    phase_shift: torch.Tensor
    gate: torch.Tensor

    def trials(self, index) -> PolarFeatures:
        return PolarFeatures(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def encode_video(video: FreeViewingVideo, bank: QuadratureFilterBank | None = None
                 ) -> PolarFeatures:
    """Amplitudes (each feature divided by its mean over the whole video), phases, and the
    phase shift ``k_f . (corner[t] - corner[t-1])`` of a window moved across the image."""
    bank = bank or QuadratureFilterBank()
    z = bank(video.frames)
    amplitude = z.abs()
    amplitude = amplitude / amplitude.mean(dim=(0, 1), keepdim=True)
    step = torch.zeros_like(video.corner_px)
    step[:, 1:] = video.corner_px[:, 1:] - video.corner_px[:, :-1]
    shift = step @ bank.feature_wave_vectors(z.shape[-1]).T
    return PolarFeatures(amplitude, z.angle(), shift, video.gate)


class PolarV1(nn.Module):
    """Filter features -> :class:`PolarDynamics` -> :class:`TemporalSummarizer` -> readout.

    ``forward(amplitude (trials, T, F), gate (trials, T))`` returns rates in spikes/s,
    ``(trials, T, n_neurons)``. ``learnable_lambdas``/``learnable_alphas`` freeze the constants
    (kept as buffers) when false.
    """

    def __init__(self, n_features: int, n_neurons: int, lambda_fix: float = 10.0,
                 lambda_sac: float = 40.0, alpha_fast: float = 0.74, alpha_slow: float = 0.95,
                 learnable_alphas: bool = True, learnable_lambdas: bool = True,
                 dt: float = 1 / 120, seed: int = 0):
        super().__init__()
        self.n_features = validate.positive_int("n_features", n_features)
        self.n_neurons = validate.positive_int("n_neurons", n_neurons)
        self.dynamics = PolarDynamics(lambda_fix, lambda_sac, dt, learnable=learnable_lambdas)
        self.summarizer = TemporalSummarizer(alpha_fast, alpha_slow, learnable_alphas)
        generator = torch.Generator().manual_seed(validate.non_negative_int("seed", seed))
        self.readout = nn.Linear(3 * n_features, n_neurons)
        with torch.no_grad():
            self.readout.weight.normal_(0.0, 0.1 / math.sqrt(n_features), generator=generator)
            self.readout.bias.fill_(0.5)

    @classmethod
    def from_config(cls, config: str | dict, n_features: int, n_neurons: int, **kwargs):
        """A model whose constants come from a YAML configuration (:func:`load_config`)."""
        values = load_config(config) if isinstance(config, str) else dict(config)
        return cls(n_features, n_neurons, **values, **kwargs)

    @property
    def dt(self) -> float:
        return self.dynamics.dt

    def forward(self, amplitude: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        validate.tensor("amplitude", amplitude, ndim=3, size={2: self.n_features})
        relaxed = self.dynamics(amplitude, gate)
        fast, slow = self.summarizer(relaxed)
        drive = self.readout(torch.cat([relaxed, fast, slow], dim=-1))
        return RATE_SCALE * nn.functional.softplus(drive)

    def constants(self) -> dict:
        """The four temporal constants and their time constants."""
        lam_fix, lam_sac = self.dynamics.lambda_fix.item(), self.dynamics.lambda_sac.item()
        a_fast, a_slow = self.summarizer.alpha_fast.item(), self.summarizer.alpha_slow.item()
        return {"lambda_fix": lam_fix, "lambda_sac": lam_sac,
                "tau_fix_ms": 1000 / lam_fix, "tau_sac_ms": 1000 / lam_sac,
                "alpha_fast": a_fast, "alpha_slow": a_slow,
                "tau_fast_frames": 1 / (1 - a_fast), "tau_slow_frames": 1 / (1 - a_slow)}

    monitor = constants  # what AdamCosineTrainer records after every epoch

    def sanity_checks(self) -> dict:
        """The document's checks: positive rates in 1-100/s, ``lambda_sac > lambda_fix``,
        alphas in 0.5-0.99 and ``alpha_slow > alpha_fast``."""
        c = self.constants()
        return {
            "rates positive": c["lambda_fix"] > 0 and c["lambda_sac"] > 0,
            "rates in 1-100/s": all(1 <= c[k] <= 100 for k in ("lambda_fix", "lambda_sac")),
            "lambda_sac > lambda_fix": c["lambda_sac"] > c["lambda_fix"],
            "alphas in 0.5-0.99": all(0.5 <= c[k] <= 0.99 for k in ("alpha_fast", "alpha_slow")),
            "alpha_slow > alpha_fast": c["alpha_slow"] > c["alpha_fast"],
        }


def make_teacher(n_features: int, n_neurons: int, seed: int = 0, **constants) -> PolarV1:
    """A teacher with the original constants (unless overridden) and a readout in which every
    neuron mixes the relaxed amplitude and the fast and slow traces of a few features."""
    teacher = PolarV1(n_features, n_neurons, seed=seed, **constants)
    generator = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        weight = torch.randn(n_neurons, 3 * n_features, generator=generator)
        keep = torch.rand(n_neurons, 3 * n_features, generator=generator) < 0.25
        # Mixed signs across the traces make neurons transient (fast minus slow) or
        # sustained, so every time scale shapes the responses.
        weight = weight * keep * 3.0 / math.sqrt(0.25 * 3 * n_features)
        teacher.readout.weight.copy_(weight)
        teacher.readout.bias.copy_(1.0 - weight.sum(dim=1))
    return teacher


@dataclasses.dataclass
class SpikeData:
    """Features, true rates and Poisson counts per frame, ``(trials, T, n_neurons)``."""

    features: PolarFeatures
    rates: torch.Tensor
    counts: torch.Tensor

    def trials(self, index) -> SpikeData:
        return SpikeData(self.features.trials(index), self.rates[index], self.counts[index])


@torch.no_grad()
def simulate(teacher: PolarV1, features: PolarFeatures, seed: int = 0) -> SpikeData:
    """The teacher's rates and Poisson spike counts (one draw, seeded)."""
    rates = teacher(features.amplitude, features.gate)
    generator = torch.Generator().manual_seed(validate.non_negative_int("seed", seed))
    counts = torch.poisson(rates * teacher.dt, generator=generator)
    return SpikeData(features, rates, counts)


def poisson_nll(rates: torch.Tensor, counts: torch.Tensor, dt: float) -> torch.Tensor:
    """Mean Poisson negative log-likelihood per bin (without the ``log k!`` term)."""
    mean = rates * dt
    return (mean - counts * torch.log(mean + 1e-8)).mean()


class PolarFitTask:
    """Fit a :class:`PolarV1` to spike counts; the ``task`` interface of
    :class:`hdlib.training.AdamCosineTrainer`. Training batches draw trials from ``train``;
    validation uses every trial of ``val``."""

    def __init__(self, train: SpikeData, val: SpikeData):
        self.data = {"train": train, "val": val}

    def batch(self, split: str, batch_size: int, generator: torch.Generator):
        data = self.data[validate.choice("split", split, self.data)]
        n = data.counts.shape[0]
        index = (torch.randperm(n, generator=generator)[:batch_size] if split == "train"
                 else torch.arange(n))
        part = data.trials(index)
        return (part.features.amplitude, part.features.gate), part.counts

    def loss(self, model: PolarV1, inputs, counts) -> torch.Tensor:
        return poisson_nll(model(*inputs), counts, model.dt)


@torch.no_grad()
def evaluate(model: PolarV1, data: SpikeData) -> dict:
    """Held-out fit: Poisson log-likelihood gain over each neuron's mean rate in bits per spike
    (model, and the teacher's true rates as the ceiling), and the correlation of the model's
    rates with the true rates (per neuron over trials x frames, averaged)."""
    rates = model(data.features.amplitude, data.features.gate)
    counts = data.counts.flatten(0, 1)
    dt = model.dt

    def log_likelihood(r):
        mean = r.flatten(0, 1) * dt + 1e-8
        return (counts * torch.log(mean) - mean).sum()

    null = counts.mean(dim=0, keepdim=True).expand_as(counts) / dt
    n_spikes = counts.sum()
    base = log_likelihood(null.reshape(data.counts.shape))
    bits = lambda r: ((log_likelihood(r) - base) / n_spikes / math.log(2)).item()  # noqa: E731
    x = rates.flatten(0, 1) - rates.flatten(0, 1).mean(0)
    y = data.rates.flatten(0, 1) - data.rates.flatten(0, 1).mean(0)
    corr = (x * y).sum(0) / (x.norm(dim=0) * y.norm(dim=0) + 1e-12)
    return {"bits_per_spike": bits(rates), "ceiling_bits_per_spike": bits(data.rates),
            "rate_correlation": corr.mean().item()}


def fit(initial: str | dict, train: SpikeData, val: SpikeData, *, steps: int = 800,
        learning_rate: float = 5e-2, temporal_lr_scale: float = 0.1, batch_size: int = 16,
        learnable: bool = True, seed: int = 0, progress: bool = True):
    """Fit a :class:`PolarV1` with constants started from ``initial`` (a configuration name or
    dict) to ``train`` with the book's trainer: one optimiser step per epoch, so that
    ``trainer.param_history`` holds every constant after every step. ``learnable=False``
    freezes the four constants (only the readout learns). Returns ``(model, trainer)``."""
    from .training import AdamCosineTrainer, create_training_config

    values = load_config(initial) if isinstance(initial, str) else dict(initial)
    values["learnable_alphas"] = learnable
    model = PolarV1(train.features.amplitude.shape[-1], train.counts.shape[-1], **values,
                    learnable_lambdas=learnable, seed=seed)
    config = create_training_config(
        learning_rate=learning_rate, max_epochs=steps, min_lr=learning_rate / 100,
        batches_per_epoch=1, batch_size=batch_size, val_batches=1,
        val_batch_size=val.counts.shape[0], early_stopping=False, weight_decay=0.0,
        grad_clip=1e6, constraints={}, group_lr_scale={"temporal": temporal_lr_scale},
        seed=seed, progress=progress, plot_progress=False)
    trainer = AdamCosineTrainer(model, config, PolarFitTask(train, val))
    trainer.train()
    return model, trainer


#: Checks for the parameters of the Polar V1 chapter.
CHAPTER_PARAMETERS = {
    "n_train_trials": validate.positive_int,
    "n_val_trials": validate.positive_int,
    "n_frames": validate.positive_int,
    "n_neurons": validate.positive_int,
    "window": lambda n, v: validate.float_in(n, v, 21, 128),
    "teacher_config": validate.path_string,
    "initial_configs": validate.list_of(validate.path_string, "configuration names"),
    "temporal_lr_scales": validate.list_of(validate.positive_float, "positive numbers"),
    "steps": validate.positive_int,
    "batch_size": validate.positive_int,
    "learning_rate": validate.positive_float,
    "recovery_tolerance": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "seed": validate.non_negative_int,
}
