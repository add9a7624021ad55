"""Head-direction tasks: angular-velocity sequences and the headings they integrate to."""
from __future__ import annotations

import math

import torch

from .. import validate
from ..circular import TWO_PI, population_vector, von_mises_bump, wrap
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
    ``theta[t]``.

    Three options make the cue imperfect (all off by default, where the answer is in the input
    at every step):

    * ``cue_noise``: Gaussian noise of this standard deviation added to every input neuron while
      the cue is visible;
    * ``mean_dark_ms`` / ``mean_lit_ms``: the cue is switched off and on by a two-state Markov
      chain, each step leaving the lit state with probability ``dt / mean_lit_ms`` and the dark
      state with probability ``dt / mean_dark_ms`` (mean stretch lengths); a sequence starts
      lit, and in darkness the input is zero.

    The loss is :func:`hdlib.losses.heading_loss` of the rates: with ``z = sum_i r_i e^{i
    theta_i}`` the population vector, ``1 - Re(z e^{-i theta}) / |z| = 1 - cos(arg z -
    theta)``. The network starts each sequence from ``model.initial_state`` on the first heading
    (``initial="bump"``) or from silence (``initial="silent"``).

    :meth:`segment` continues trajectories from the end of earlier ones (heading, velocity and
    cue state), which is what training with the network's state passed between steps needs.
    """

    def __init__(self, num_neurons: int, seq_len: int = 100, dt_ms: float = 1.0,
                 speed_deg_s: float = 90.0, tau_turn_ms: float = 100.0,
                 cue_strength: float = 1.0, cue_noise: float = 0.0, mean_lit_ms: float = 300.0,
                 mean_dark_ms: float = 0.0, initial: str = "bump"):
        self.num_neurons = validate.positive_int("num_neurons", num_neurons)
        self.seq_len = validate.positive_int("seq_len", seq_len)
        self.dt_ms = validate.positive_float("dt_ms", dt_ms)
        self.speed_deg_s = validate.float_in("speed_deg_s", speed_deg_s, 0.0, math.inf)
        self.tau_turn_ms = validate.positive_float("tau_turn_ms", tau_turn_ms)
        self.cue_strength = validate.float_in("cue_strength", cue_strength, 0.0, math.inf)
        self.cue_noise = validate.float_in("cue_noise", cue_noise, 0.0, math.inf)
        self.mean_lit_ms = validate.float_in("mean_lit_ms", mean_lit_ms, self.dt_ms, math.inf)
        self.mean_dark_ms = validate.float_in("mean_dark_ms", mean_dark_ms, 0.0, math.inf)
        if 0.0 < self.mean_dark_ms < self.dt_ms:
            raise ValueError(f"mean_dark_ms must be 0 (no darkness) or at least dt_ms "
                             f"({self.dt_ms}); got {mean_dark_ms}")
        self.initial = validate.choice("initial", initial, ("bump", "silent"))

    @classmethod
    def for_model(cls, model, **kwargs) -> HeadDirectionTrackingTask:
        """A task sized for ``model`` (its ``n_exc`` and ``dt``)."""
        return cls(model.n_exc, dt_ms=getattr(model, "dt", 1.0), **kwargs)

    def _trajectory(self, batch_size: int, steps: int, generator: torch.Generator,
                    start: dict | None):
        """Headings and velocities ``(B, steps)``, continuing ``start`` when given."""
        dt_s = self.dt_ms / 1000.0
        rho = math.exp(-self.dt_ms / self.tau_turn_ms)
        spread = math.radians(self.speed_deg_s)
        eps = torch.randn(batch_size, steps, generator=generator)
        velocity = torch.empty_like(eps)
        if start is None:
            velocity[:, 0] = spread * eps[:, 0]
        else:
            velocity[:, 0] = rho * start["velocity"] + math.sqrt(1 - rho**2) * spread * eps[:, 0]
        for t in range(1, steps):  # a recurrence over time, vectorised over the batch
            velocity[:, t] = rho * velocity[:, t - 1] + math.sqrt(1 - rho**2) * spread * eps[:, t]
        if start is None:
            theta0 = torch.rand(batch_size, 1, generator=generator) * TWO_PI
        else:
            theta0 = start["heading"][:, None]
        return wrap(theta0 + torch.cumsum(velocity * dt_s, dim=1)), velocity

    def _visibility(self, batch_size: int, steps: int, generator: torch.Generator,
                    start: dict | None) -> torch.Tensor:
        """``(B, steps)`` booleans, True where the cue is visible."""
        if self.mean_dark_ms == 0.0:
            return torch.ones(batch_size, steps, dtype=torch.bool)
        leave_lit = self.dt_ms / self.mean_lit_ms
        leave_dark = self.dt_ms / self.mean_dark_ms
        draws = torch.rand(batch_size, steps, generator=generator)
        visible = torch.empty(batch_size, steps, dtype=torch.bool)
        state = (torch.ones(batch_size, dtype=torch.bool) if start is None
                 else start["visible"].clone())
        for t in range(steps):  # a Markov chain over time, vectorised over the batch
            if t > 0 or start is not None:
                switch = torch.where(state, draws[:, t] < leave_lit, draws[:, t] < leave_dark)
                state = state ^ switch
            visible[:, t] = state
        return visible

    def segment(self, split: str, batch_size: int, generator: torch.Generator,
                start: dict | None = None, steps: int | None = None):
        """``(inputs (B, T, N), headings (B, T), visible (B, T), end)`` for ``T = steps``
        (default ``seq_len``) steps. ``end`` (``heading``, ``velocity``, ``visible`` of the last
        step) passed back as ``start`` continues the same trajectories; ``split`` only names
        the purpose."""
        validate.choice("split", split, ("train", "val"))
        batch_size = validate.positive_int("batch_size", batch_size)
        steps = self.seq_len if steps is None else validate.positive_int("steps", steps)
        headings, velocity = self._trajectory(batch_size, steps, generator, start)
        inputs = self.cue_strength * von_mises_bump(headings, self.num_neurons, concentration=8.0)
        visible = self._visibility(batch_size, steps, generator, start)
        if self.cue_noise > 0.0:
            inputs = inputs + self.cue_noise * torch.randn(inputs.shape, generator=generator)
        inputs = inputs * visible[..., None]
        end = {"heading": headings[:, -1], "velocity": velocity[:, -1],
               "visible": visible[:, -1]}
        return inputs, headings, visible, end

    def headings(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Heading trajectories ``(batch_size, seq_len)`` in radians, wrapped."""
        return self._trajectory(batch_size, self.seq_len, generator, None)[0]

    def batch(self, split: str, batch_size: int, generator: torch.Generator):
        """``(cue inputs (B, T, N), headings (B, T))`` of fresh sequences (:meth:`segment`)."""
        inputs, headings, _, _ = self.segment(split, batch_size, generator)
        return inputs, headings

    def initial_state(self, model, targets: torch.Tensor):
        """The state a fresh sequence starts from: a bump on the first heading, or ``None``
        (silence) when ``initial="silent"``."""
        return model.initial_state(targets[:, 0]) if self.initial == "bump" else None

    def run(self, model, inputs: torch.Tensor, targets: torch.Tensor, h0=None,
            generator: torch.Generator | None = None):
        """``(loss, final state)`` of ``model`` over one segment from state ``h0``."""
        rates, state = model(inputs, h0, generator=generator)
        return heading_loss(rates, targets), state

    def loss(self, model, inputs: torch.Tensor, targets: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """``mean(1 - cos(decoded - theta))`` (:func:`hdlib.losses.heading_loss`) from the
        task's initial state; ``generator`` draws the model's noise."""
        return self.run(model, inputs, targets, self.initial_state(model, targets), generator)[0]

    @staticmethod
    def cue_estimate(inputs: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Heading decoded from the cue alone ``(B, T)``: the population vector of the input
        where the cue is visible, held at its last visible value through darkness (0 before
        the cue is first seen)."""
        decoded = population_vector(inputs)
        steps = torch.arange(inputs.shape[1], device=inputs.device).expand_as(visible)
        last_seen = torch.where(visible, steps, torch.zeros_like(steps)).cummax(dim=1).values
        held = torch.gather(decoded, 1, last_seen)
        seen = visible.long().cummax(dim=1).values.bool()
        return torch.where(seen, held, torch.zeros_like(held))
