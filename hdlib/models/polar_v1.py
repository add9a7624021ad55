"""A small Polar V1 model: quadrature filter features, the two temporal stages, a readout.

Pipeline for each video frame ``I_t`` (see :mod:`hdlib.datasets.stimuli`):

1. quadrature filters ``g_f(x) = exp(-|x|^2 / 2 sigma_f^2) exp(-i k_f . x)`` at a few
   wavelengths, orientations and positions give ``z_f[t] = sum_x I_t(x) g_f(x)``, split into
   amplitude ``|z|`` (normalised by its mean over the video) and phase ``arg z``;
2. :class:`~hdlib.models.polar.PolarDynamics` relaxes the amplitudes with the saccade gate ``q[t]``
   from gaze speed;
3. :class:`~hdlib.models.polar.TemporalSummarizer` keeps fast and slow averages of them;
4. a linear readout of the relaxed amplitude and both summaries gives each neuron's rate,
   ``r_n[t] = RATE_SCALE * softplus(b_n + sum_f U_nf A_f[t] + W_nf fast_f[t] + V_nf slow_f[t])``
   (spikes/s),
   and spike counts per frame are Poisson with mean ``r_n[t] dt``.

The neurons are complex-cell-like: they read amplitudes only. The carried phase
(:meth:`~hdlib.models.polar.PolarDynamics.phase`) is available from :func:`encode_video`.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn

from .. import validate
from ..datasets.stimuli import FreeViewingVideo
from .polar import PolarDynamics, TemporalSummarizer, load_config, time_constants

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
    (kept as buffers) when false. ``backend`` chooses how both recurrences run
    (:mod:`hdlib.models.backends`; default: the fastest for the input's device).
    """

    def __init__(self, n_features: int, n_neurons: int, lambda_fix: float = 10.0,
                 lambda_sac: float = 40.0, alpha_fast: float = 0.74, alpha_slow: float = 0.95,
                 learnable_alphas: bool = True, learnable_lambdas: bool = True,
                 dt: float = 1 / 120, seed: int = 0, backend: str | None = None):
        super().__init__()
        self.n_features = validate.positive_int("n_features", n_features)
        self.n_neurons = validate.positive_int("n_neurons", n_neurons)
        self.dynamics = PolarDynamics(lambda_fix, lambda_sac, dt, learnable=learnable_lambdas,
                                      backend=backend)
        self.summarizer = TemporalSummarizer(alpha_fast, alpha_slow, learnable_alphas, backend)
        generator = torch.Generator().manual_seed(validate.non_negative_int("seed", seed))
        self.readout = nn.utils.skip_init(nn.Linear, 3 * n_features, n_neurons)
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

    def readout_inputs(self, amplitude: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """What the readout sees, ``[A, fast, slow]`` along the last axis ``(trials, T, 3F)``."""
        validate.tensor("amplitude", amplitude, ndim=3, size={2: self.n_features})
        relaxed = self.dynamics(amplitude, gate)
        fast, slow = self.summarizer(relaxed)
        return torch.cat([relaxed, fast, slow], dim=-1)

    def forward(self, amplitude: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        drive = self.readout(self.readout_inputs(amplitude, gate))
        return RATE_SCALE * nn.functional.softplus(drive)

    def with_constants(self, **values) -> PolarV1:
        """A copy whose constants named in ``values`` (any of ``lambda_fix``, ``lambda_sac``,
        ``alpha_fast``, ``alpha_slow``) are replaced; everything else is kept."""
        unknown = sorted(set(values) - {"lambda_fix", "lambda_sac", "alpha_fast", "alpha_slow"})
        if unknown:
            raise ValueError(f"values must name temporal constants; got {unknown}")
        model = copy.deepcopy(self)
        with torch.no_grad():
            for name, value in values.items():
                if name.startswith("lambda"):
                    value = validate.positive_float(name, value)
                    getattr(model.dynamics, f"log_{name}").fill_(math.log(value))
                else:
                    value = validate.float_in(name, value, 0.0, 1.0, low_open=True,
                                              high_open=True)
                    getattr(model.summarizer, f"{name}_logit").fill_(math.log(value / (1 - value)))
        return model

    def learnable_constants(self) -> list[str]:
        """Names of the constants that learn (``lambda_fix``, ``lambda_sac`` when the rates
        learn; ``alpha_fast``, ``alpha_slow`` when the alphas learn)."""
        rates = ["lambda_fix", "lambda_sac"] if isinstance(self.dynamics.log_lambda_fix,
                                                            nn.Parameter) else []
        alphas = ["alpha_fast", "alpha_slow"] if isinstance(self.summarizer.alpha_fast_logit,
                                                            nn.Parameter) else []
        return rates + alphas

    def temporal_parameters(self) -> list[nn.Parameter]:
        """The learnable temporal constants (empty when both stages are frozen)."""
        return list(self.dynamics.parameters()) + list(self.summarizer.parameters())

    def constants(self) -> dict:
        """The four temporal constants and their time constants."""
        values = {"lambda_fix": self.dynamics.lambda_fix.item(),
                  "lambda_sac": self.dynamics.lambda_sac.item(),
                  "alpha_fast": self.summarizer.alpha_fast.item(),
                  "alpha_slow": self.summarizer.alpha_slow.item()}
        return {**values, **time_constants(**values)}

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
