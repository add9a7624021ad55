"""The Polar V1 model's two temporal stages (document 004) and their learnable constants.

Both stages are first-order linear recurrences along time,

    s[t] = d[t] * s[t-1] + (1 - d[t]) * x[t],

the amplitude relaxation with ``d[t] = exp(-lambda[t] dt)`` and the exponential average with
``d = alpha``. :func:`amplitude_relaxation` and :func:`exponential_average` state them frame by
frame in plain torch: they are the model's definition. :class:`PolarDynamics` and
:class:`TemporalSummarizer` run them through a ``backend`` (:mod:`hdlib.models.backends`):
``"reference"`` (these two functions), ``"torch"`` (a closed form over chunks of frames, any
device) or ``"numba"`` (compiled kernels, the CPU's default).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import yaml
from torch import nn

from .. import validate
from . import backends


def exponential_average(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Document 004's summary of ``x (..., T, F)`` at every frame, with the start-up correction:
    ``acc[t] = alpha acc[t-1] + (1 - alpha) x[t]`` from ``acc[-1] = 0``, returned as
    ``acc[t] / (1 - alpha^(t+1))`` so that a constant input is summarised as itself."""
    acc = torch.zeros_like(x[..., 0, :])
    frames = []
    for t in range(x.shape[-2]):
        acc = alpha * acc + (1 - alpha) * x[..., t, :]
        frames.append(acc / (1 - alpha ** (t + 1)))
    return torch.stack(frames, dim=-2)


def amplitude_relaxation(drive: torch.Tensor, decay: torch.Tensor,
                         initial: torch.Tensor) -> torch.Tensor:
    """Document 004's amplitude dynamics for a drive ``a (..., T, F)`` and per-frame decays
    ``d = exp(-lambda dt)`` of shape ``(..., T)``:
    ``A[t] = a[t] + (A[t-1] - a[t]) d[t]`` from ``A[-1] = initial (..., F)``."""
    state = initial
    frames = []
    for t in range(drive.shape[-2]):
        state = drive[..., t, :] + (state - drive[..., t, :]) * decay[..., t, None]
        frames.append(state)
    return torch.stack(frames, dim=-2)


def _check_time_axis(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"{name} must be a tensor (..., T, F) with time on axis -2; got "
                         f"{getattr(x, 'shape', type(x).__name__)}")


def _check_gate(gate: torch.Tensor) -> None:
    if not gate.numel():
        return
    low, high = torch.aminmax(gate.detach())
    if bool((low < 0) | (high > 1)):
        raise ValueError(f"gate must lie in [0, 1]; got values from {low.item():.3g} to "
                         f"{high.item():.3g}")


class PolarDynamics(nn.Module):
    """Amplitude relaxation with a fixation and a saccade rate (:func:`amplitude_relaxation`).

    ``A[t] = a_bar[t] + (A[t-1] - a_bar[t]) exp(-lambda[t] dt)``, with
    ``lambda[t] = (1 - q[t]) lambda_fix + q[t] lambda_sac`` and the saccade gate ``q`` in [0, 1].
    ``a_bar`` is the amplitude the current frame drives (its filter amplitude); the state keeps
    the previous frames' amplitudes for about ``1 / lambda`` seconds. The rates are stored as
    logarithms (``log_lambda_fix``, ``log_lambda_sac``), so they stay positive whatever the
    optimiser does; ``lambda_fix``/``lambda_sac`` are the rates in 1/s.

    Phase is carried on the unit circle: the phasor ``P = exp(i phi)`` follows the same
    relaxation toward the current frame's phase while being rotated by the phase shift that
    retinal motion predicts, ``P[t] = d[t] exp(i dphi[t]) P[t-1] + (1 - d[t]) exp(i phi_in[t])``.

    ``backend`` (:data:`hdlib.models.backends.BACKENDS`, default: the fastest for the input's
    device) chooses how the relaxation is computed; every backend gives the same values.
    """

    def __init__(self, lambda_fix: float = 10.0, lambda_sac: float = 40.0, dt: float = 1 / 120,
                 learnable: bool = True, backend: str | None = None):
        super().__init__()
        lambda_fix = validate.positive_float("lambda_fix", lambda_fix)
        lambda_sac = validate.positive_float("lambda_sac", lambda_sac)
        self.dt = validate.positive_float("dt", dt)
        self.backend = backends.chosen(backend)
        for name, value in (("log_lambda_fix", lambda_fix), ("log_lambda_sac", lambda_sac)):
            tensor = torch.tensor(math.log(value))
            if learnable:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    @property
    def lambda_fix(self) -> torch.Tensor:
        return self.log_lambda_fix.exp()

    @property
    def lambda_sac(self) -> torch.Tensor:
        return self.log_lambda_sac.exp()

    def log_decay(self, gate: torch.Tensor) -> torch.Tensor:
        """``log d[t] = -lambda[t] dt`` for a gate ``(..., T)``."""
        _check_gate(gate)
        fix = self.lambda_fix
        return (fix + gate * (self.lambda_sac - fix)) * -self.dt

    def forward(self, amplitude: torch.Tensor, gate: torch.Tensor,
                initial: torch.Tensor | None = None) -> torch.Tensor:
        """Relaxed amplitudes of ``amplitude``'s shape, for a drive ``(..., T, F)`` with gate
        ``(..., T)``. ``initial`` is the amplitude before the first frame, ``(..., F)`` or
        broadcastable to it (default: the first frame's drive, i.e. the model starts at
        rest)."""
        _check_time_axis("amplitude", amplitude)
        if gate.shape != amplitude.shape[:-1]:
            raise ValueError(f"gate must have shape {tuple(amplitude.shape[:-1])} to match "
                             f"amplitude; got {tuple(gate.shape)}")
        start = amplitude[..., 0, :] if initial is None else initial.to(amplitude.dtype)
        # a gate expanded over channels keeps one decay per trial (the backends broadcast it)
        log_d = self.log_decay(gate[tuple(slice(0, 1) if stride == 0 else slice(None)
                                          for stride in gate.stride())])
        backend = backends.resolve(self.backend, amplitude)
        if backend == "reference":
            return amplitude_relaxation(amplitude, log_d.exp(), start)
        return backends.RELAXATION[backend](amplitude, log_d, start)

    @torch.no_grad()
    def step_response(self, n_frames: int, gate: float = 0.0) -> torch.Tensor:
        """``A[t]``, ``t < n_frames``, for a unit drive switched on at frame 0 from ``A[-1] = 0``
        at a constant gate ``q``: ``1 - exp(-lambda (t + 1) dt)``, with ``lambda = (1 - q)
        lambda_fix + q lambda_sac``."""
        n_frames = validate.positive_int("n_frames", n_frames)
        drive = torch.ones(1, n_frames, 1)
        return self(drive, torch.full((1, n_frames), float(gate)),
                    initial=torch.zeros(1, 1))[0, :, 0]

    def phase(self, phase: torch.Tensor, phase_shift: torch.Tensor, gate: torch.Tensor,
              initial: torch.Tensor | None = None) -> torch.Tensor:
        """Carried phase ``(..., T, F)`` from measured phase ``(..., T, F)``, the phase shift
        retinal motion predicts for each frame ``(..., T, F)``, and the gate ``(..., T)``."""
        if phase.shape != phase_shift.shape:
            raise ValueError(f"phase_shift must have the shape of phase {tuple(phase.shape)}; "
                             f"got {tuple(phase_shift.shape)}")
        log_d = self.log_decay(gate)[..., None]  # (..., T, 1)
        rotated = log_d + 1j * phase_shift  # (..., T, F)
        measured = torch.polar(torch.ones_like(phase), phase)
        # One recurrence per feature: features become a batch axis, time the recurrence axis.
        start = measured[..., 0, :] if initial is None else torch.polar(
            torch.ones_like(initial), initial)
        phasor = backends.linear_recurrence(rotated.transpose(-1, -2),
                                            measured.transpose(-1, -2)[..., None],
                                            start[..., None],
                                            gain=-torch.expm1(log_d).transpose(-1, -2))
        return torch.angle(phasor[..., 0]).transpose(-1, -2)


class TemporalSummarizer(nn.Module):
    """Fast and slow exponential moving averages (:func:`exponential_average`),
    ``acc[t] = alpha acc[t-1] + (1 - alpha) x[t]``.

    The alphas are stored as logits (``alpha = sigmoid(logit)`` stays in (0, 1)); their time
    constants are ``1 / (1 - alpha)`` frames. An average that starts at zero underestimates its
    input for the first few time constants; it is divided by ``1 - alpha^(t+1)``, the weight its
    first ``t + 1`` frames carry, so that a constant input is summarised as itself from frame 0.
    Inputs are ``(..., T, F)``; ``backend`` as in :class:`PolarDynamics`.
    """

    def __init__(self, alpha_fast: float = 0.74, alpha_slow: float = 0.95,
                 learnable_alphas: bool = True, backend: str | None = None):
        super().__init__()
        self.backend = backends.chosen(backend)
        for name, value in (("alpha_fast", alpha_fast), ("alpha_slow", alpha_slow)):
            value = validate.float_in(name, value, 0.0, 1.0, low_open=True, high_open=True)
            logit = torch.logit(torch.tensor(value, dtype=torch.float64)).float()
            if learnable_alphas:
                setattr(self, f"{name}_logit", nn.Parameter(logit))
            else:
                self.register_buffer(f"{name}_logit", logit)

    @property
    def alpha_fast(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_fast_logit)

    @property
    def alpha_slow(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_slow_logit)

    @torch.no_grad()
    def kernels(self, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fast, slow)`` weights ``(1 - alpha) alpha^k`` that each average gives the frame
        ``k`` frames back, ``k < n_frames``, before the start-up correction."""
        n_frames = validate.positive_int("n_frames", n_frames)
        lag = torch.arange(n_frames, dtype=torch.float32)
        return tuple((1 - a) * a ** lag for a in (self.alpha_fast, self.alpha_slow))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fast, slow)`` summaries of every frame of ``x (..., T, F)``, each of ``x``'s
        shape."""
        _check_time_axis("x", x)
        logits = [self.alpha_fast_logit, self.alpha_slow_logit]
        backend = backends.resolve(self.backend, x)
        if backend == "reference":
            fast, slow = (exponential_average(x, torch.sigmoid(logit)) for logit in logits)
        else:
            fast, slow = backends.AVERAGES[backend](x, logits)
        return fast, slow


def time_constants(lambda_fix: float, lambda_sac: float, alpha_fast: float,
                   alpha_slow: float) -> dict:
    """The time constants the four constants set: ``tau_fix_ms = 1000 / lambda_fix``,
    ``tau_sac_ms = 1000 / lambda_sac`` (rates in 1/s) and ``tau_fast_frames = 1 / (1 -
    alpha_fast)``, ``tau_slow_frames = 1 / (1 - alpha_slow)`` (the mean lag of an average's
    weights ``(1 - alpha) alpha^k``, plus one frame)."""
    return {"tau_fix_ms": 1000 / lambda_fix, "tau_sac_ms": 1000 / lambda_sac,
            "tau_fast_frames": 1 / (1 - alpha_fast), "tau_slow_frames": 1 / (1 - alpha_slow)}


# ---------------------------------------------------------------------------- configurations
CONFIG_DIR = Path(__file__).parent / "configs"
CONFIG_KEYS = {
    "lambda_fix": lambda n, v: validate.float_in(n, v, 0.0, 1000.0, low_open=True),
    "lambda_sac": lambda n, v: validate.float_in(n, v, 0.0, 1000.0, low_open=True),
    "alpha_fast": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "alpha_slow": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "learnable_alphas": validate.boolean,
}


def available_configs() -> list[str]:
    """Names of the configurations shipped with hdlib."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str) -> dict:
    """The temporal constants of a configuration (a shipped name or a YAML path), validated.

    The file holds ``recurrent: {type: polar, params: {...}}`` with the keys of
    :data:`CONFIG_KEYS`; a missing key takes :class:`PolarDynamics`/:class:`TemporalSummarizer`
    defaults; an unknown key or an out-of-range value is a ``ValueError`` naming it.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ValueError(f"config must be one of {available_configs()} or a YAML path; "
                             f"got {name_or_path!r}")
    try:
        with open(path) as handle:
            document = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"config {str(path)!r} could not be read: {error}") from None
    recurrent = document.get("recurrent") if isinstance(document, dict) else None
    if not isinstance(recurrent, dict) or recurrent.get("type") != "polar":
        raise ValueError(f"{path}: expected a 'recurrent' section with type: polar")
    params = recurrent.get("params") or {}
    unknown = sorted(set(params) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; expected {sorted(CONFIG_KEYS)}")
    defaults = {"lambda_fix": 10.0, "lambda_sac": 40.0, "alpha_fast": 0.74, "alpha_slow": 0.95,
                "learnable_alphas": True}
    merged = {**defaults, **params}
    return {key: CONFIG_KEYS[key](f"{path.name}: {key}", value) for key, value in merged.items()}
