"""Head-direction tasks: angular-velocity sequences and the headings they integrate to."""
from __future__ import annotations

import math

import torch

from .. import validate
from ..circular import TWO_PI, wrap
from ..losses import heading_loss


class AVIntegrationDataset:
    """Synthetic angular-velocity (AV) sequences and their integrated headings.

    Each sequence of ``seq_len`` steps starts at a heading ``theta0 ~ U[0, 2*pi)`` and is built
    from constant-velocity bouts:

    * the first ``round(zero_padding_start_ratio * seq_len)`` steps have zero velocity (the
      network must hold its bump);
    * the rest is cut into bouts whose lengths are geometric with mean ``mean_bout_steps``
      (``mean_bout_steps=1`` gives an independent velocity at every step);
    * each bout is still (``av = 0``) with probability ``p`` and otherwise moves at a velocity
      drawn from ``U[-max_av, max_av]`` radians per step; ``p`` is drawn per sequence from
      ``zero_ratios_in_rest``, so ``p`` is the expected fraction of still time after the padding.

    Convention: ``angles[:, t] = wrap(theta0 + sum_{s <= t} av[:, s])``, i.e. the heading at
    step ``t`` *includes* ``av[t]``. :meth:`initial_heading` recovers ``theta0``.

    With ``heading_rotations = k > 1`` every velocity sequence appears ``k`` times in a batch,
    starting from ``k`` headings ``2*pi*j/k`` apart. For a ring whose grid has ``N`` neurons with
    ``k`` dividing ``N`` the ``k`` copies are exact rotations of one another, so the batch
    gradient is unchanged by a rotation of the ring by ``N/k`` neurons: weights that start
    symmetric under that rotation stay so, and training adds no heterogeneity at that scale.

    Batches are drawn from a seeded ``torch.Generator``: two datasets with the same seed yield
    the same batches in the same order. ``num_samples`` is the number of sequences in one epoch
    (see :meth:`epoch`); :meth:`generate_batch` draws fresh sequences each call.
    """

    def __init__(self, num_samples: int, seq_len: int = 120, zero_padding_start_ratio: float = 0.1,
                 zero_ratios_in_rest=(0.2, 0.5, 0.8), max_av: float = 0.1 * math.pi,
                 mean_bout_steps: float = 10.0, heading_rotations: int = 1, seed: int = 0,
                 device="cpu"):
        self.num_samples = validate.positive_int("num_samples", num_samples)
        self.seq_len = validate.positive_int("seq_len", seq_len)
        self.zero_padding_start_ratio = validate.float_in(
            "zero_padding_start_ratio", zero_padding_start_ratio, 0.0, 1.0)
        self.zero_ratios_in_rest = validate.ratios("zero_ratios_in_rest", zero_ratios_in_rest)
        self.max_av = validate.positive_float("max_av", max_av)
        self.mean_bout_steps = validate.float_in("mean_bout_steps", mean_bout_steps, 1.0, math.inf)
        self.heading_rotations = validate.positive_int("heading_rotations", heading_rotations)
        self.seed = validate.non_negative_int("seed", seed)
        self.device = torch.device(device)
        self._generator = torch.Generator().manual_seed(self.seed)

    def __len__(self) -> int:
        return self.num_samples

    @property
    def padding_steps(self) -> int:
        return round(self.zero_padding_start_ratio * self.seq_len)

    def generate_batch(self, batch_size: int, seq_len: int | None = None,
                       generator: torch.Generator | None = None):
        """Draw ``(av_signals, angles)``, each of shape ``(batch_size, seq_len)`` (radians).

        ``seq_len`` defaults to the dataset's; pass a longer one for generalisation tests.
        ``generator`` (a CPU generator) replaces the dataset's own stream for this draw.
        """
        batch_size = validate.positive_int("batch_size", batch_size)
        steps = self.seq_len if seq_len is None else validate.positive_int("seq_len", seq_len)
        k = self.heading_rotations
        if batch_size % k:
            raise ValueError(f"batch_size must be a multiple of heading_rotations={k}; "
                             f"got {batch_size}")
        av, angles = self._draw(batch_size // k, steps, generator or self._generator)
        if k > 1:  # each sequence again from k headings evenly spaced around the ring
            offsets = (TWO_PI / k) * torch.arange(k).repeat(batch_size // k)
            av = av.repeat_interleave(k, dim=0)
            angles = wrap(angles.repeat_interleave(k, dim=0) + offsets[:, None])
        return av.to(self.device), angles.to(self.device)

    def _draw(self, batch_size: int, steps: int, g: torch.Generator):
        theta0 = torch.rand(batch_size, 1, generator=g) * TWO_PI

        # Bout boundaries: a new bout starts at each step with probability 1/mean_bout_steps.
        starts = torch.rand(batch_size, steps, generator=g) < 1.0 / self.mean_bout_steps
        bout = torch.cumsum(starts, dim=1)  # bout index of every step, < steps
        velocity = (2.0 * torch.rand(batch_size, steps, generator=g) - 1.0) * self.max_av
        ratio_table = torch.tensor(self.zero_ratios_in_rest)
        p_still = ratio_table[torch.randint(len(ratio_table), (batch_size, 1), generator=g)]
        moving = torch.rand(batch_size, steps, generator=g) >= p_still
        av = torch.gather(velocity * moving, 1, bout)
        av[:, : self.padding_steps] = 0.0

        return av, wrap(theta0 + torch.cumsum(av, dim=1))

    def epoch(self, batch_size: int):
        """Yield batches that together hold ``num_samples`` sequences (the last may be smaller)."""
        batch_size = validate.positive_int("batch_size", batch_size)
        for start in range(0, self.num_samples, batch_size):
            yield self.generate_batch(min(batch_size, self.num_samples - start))

    @staticmethod
    def initial_heading(av_signals: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """The heading before the first step, ``wrap(angles[:, 0] - av[:, 0])``."""
        return wrap(angles[:, 0] - av_signals[:, 0])


class HeadDirectionTrackingTask:
    """Follow a visual cue: the input is a bump on the true heading; the target is the heading.

    The heading follows smooth random turns: angular velocity is an Ornstein-Uhlenbeck process
    ``v[t] = rho * v[t-1] + sqrt(1 - rho^2) * s * eps`` with ``rho = exp(-dt / tau_turn)`` and
    stationary spread ``s = speed_deg_s`` (degrees per second), and ``theta[t] = theta[t-1] +
    v[t] * dt``. The cue is ``cue_strength`` times a von Mises bump (concentration 8) on
    ``theta[t]``. The loss is :func:`hdlib.losses.heading_loss` of the rates, the network
    starting from ``model.initial_state`` on the first heading: with ``z = sum_i r_i e^{i
    theta_i}`` the population vector, ``1 - Re(z e^{-i theta}) / |z| = 1 - cos(arg z - theta)``,
    so the task fits models whose rates lie on :func:`hdlib.circular.angle_grid` and are decoded
    by the population vector (the E/I ring's ``decode``).
    Following a cue is not path integration: the answer is in the input at every step.
    """

    def __init__(self, num_neurons: int, seq_len: int = 100, dt_ms: float = 1.0,
                 speed_deg_s: float = 90.0, tau_turn_ms: float = 100.0,
                 cue_strength: float = 1.0):
        self.num_neurons = validate.positive_int("num_neurons", num_neurons)
        self.seq_len = validate.positive_int("seq_len", seq_len)
        self.dt_ms = validate.positive_float("dt_ms", dt_ms)
        self.speed_deg_s = validate.float_in("speed_deg_s", speed_deg_s, 0.0, math.inf)
        self.tau_turn_ms = validate.positive_float("tau_turn_ms", tau_turn_ms)
        self.cue_strength = validate.float_in("cue_strength", cue_strength, 0.0, math.inf)

    @classmethod
    def for_model(cls, model, **kwargs) -> HeadDirectionTrackingTask:
        """A task sized for ``model`` (its ``n_exc`` and ``dt``)."""
        return cls(model.n_exc, dt_ms=getattr(model, "dt", 1.0), **kwargs)

    def headings(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Heading trajectories ``(batch_size, seq_len)`` in radians, wrapped."""
        dt_s = self.dt_ms / 1000.0
        rho = math.exp(-self.dt_ms / self.tau_turn_ms)
        spread = math.radians(self.speed_deg_s)
        eps = torch.randn(batch_size, self.seq_len, generator=generator)
        velocity = torch.empty_like(eps)
        velocity[:, 0] = spread * eps[:, 0]
        for t in range(1, self.seq_len):  # a recurrence over time, vectorised over the batch
            velocity[:, t] = rho * velocity[:, t - 1] + math.sqrt(1 - rho**2) * spread * eps[:, t]
        theta0 = torch.rand(batch_size, 1, generator=generator) * TWO_PI
        return wrap(theta0 + torch.cumsum(velocity * dt_s, dim=1))

    def batch(self, split: str, batch_size: int, generator: torch.Generator):
        """``(cue inputs (B, T, N), headings (B, T))``; ``split`` only names the purpose."""
        validate.choice("split", split, ("train", "val"))
        from ..circular import von_mises_bump

        headings = self.headings(validate.positive_int("batch_size", batch_size), generator)
        return self.cue_strength * von_mises_bump(headings, self.num_neurons,
                                                  concentration=8.0), headings

    def loss(self, model, inputs: torch.Tensor, targets: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """``mean(1 - cos(decoded - theta))`` (:func:`hdlib.losses.heading_loss`);
        ``generator`` draws the model's noise."""
        rates, _ = model(inputs, model.initial_state(targets[:, 0]), generator=generator)
        return heading_loss(rates, targets)
