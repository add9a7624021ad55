"""Speed of the temporal summariser (document 004) on feature maps against the document's loop.

The document's model holds features as ``(B, C, T, H, W)`` and summarises them frame by frame,
``acc = alpha * acc + (1 - alpha) * x[:, :, t]``, once for the fast and once for the slow alpha.
Written from that description, the reference forms are

- *all frames*: the loop keeps every ``acc`` and stacks them (what a model that reads every
  frame's summary needs);
- *last frame*: the loop keeps only the final ``acc`` (the document's summary collapses time).

hdlib's :class:`~hdlib.models.polar.TemporalSummarizer` computes both averages in one compiled
pass over the input in its own layout (:mod:`hdlib.models.scans`; its backward pass is the
adjoint recurrence run backwards in time), and
:meth:`~hdlib.models.polar.TemporalSummarizer.last_frame` one weighted sum over time.
It also divides by the start-up weight ``1 - alpha^(t+1)``, which the document's loop does not:
hdlib does slightly more work.

Settings, at B = 8, T = 240 (2 s at 120 Hz) and C x H x W in {48 x 1 x 1, 64 x 8 x 8,
64 x 16 x 16}:

- ``all frames, x requires grad``: forward + backward (the summariser inside a trained model);
- ``all frames, x fixed``: forward, and forward + backward to the alphas only (chapter 05);
- ``last frame, x fixed``: forward.

The floor of each setting is the memory traffic it cannot avoid, timed on this machine as reads
of x (a sum) and writes of new tensors of x's size (allocated together and filled, the first
touch of the new pages included, since every form must return new outputs): all-frames forward
reads x and writes two averages (1 read + 2 writes). A backward pass to the alphas alone needs
x and both output gradients (3 reads: hdlib recomputes the averages as it goes); with x's
gradient, it reads both output gradients, x and both averages (5 reads) and writes x's gradient
(1 write). The last frame needs one read of x. Every size and setting is swept twice
(``--passes``), minutes apart, and each form and floor kept at its best (:func:`best_of`).
Results go to
``benchmarks/results/polar_summarizer.{csv,json}``.

The amplitude relaxation of :class:`~hdlib.models.polar.PolarDynamics` gets the same treatment
on feature maps (``benchmarks/results/polar_relaxation``): the document's frame loop
``A = a[:, :, t] + (A - a[:, :, t]) * exp(-lambda[:, t] dt)``, every frame kept, against hdlib's
compiled pass (:func:`hdlib.models.scans.relax` and its adjoint), with the drive requiring a
gradient and fixed.

It also times the Polar V1 model's amplitude relaxation against the document's frame loop, and
one training step with the four temporal constants frozen and learnable (what learning them
costs), at 32 trials x 240 frames x 48 features (``benchmarks/results/polar_model``).
Run: ``python -m benchmarks.polar_speed``.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks import common
from hdlib import losses
from hdlib.models import polar, scans
from hdlib.models.polar import PolarDynamics, TemporalSummarizer
from hdlib.models.polar_v1 import PolarV1

SIZES = [(48, 1, 1), (64, 8, 8), (64, 16, 16)]


def document_loop(x: torch.Tensor, alpha: torch.Tensor, keep_frames: bool) -> torch.Tensor:
    """The document's summariser: ``acc = alpha acc + (1 - alpha) x[:, :, t]`` over frames."""
    acc = torch.zeros_like(x[:, :, 0])
    frames = []
    for t in range(x.shape[2]):
        acc = alpha * acc + (1 - alpha) * x[:, :, t]
        if keep_frames:
            frames.append(acc)
    return torch.stack(frames, dim=2) if keep_frames else acc


def forms(summarizer: TemporalSummarizer):
    """``name -> (fast, slow)`` for the document's loop and hdlib, all frames and last frame."""
    def loop(x, keep):
        return tuple(document_loop(x, a, keep)
                     for a in (summarizer.alpha_fast, summarizer.alpha_slow))
    return {
        ("all frames", "loop"): lambda x: loop(x, True),
        ("all frames", "hdlib"): summarizer,
        ("last frame", "loop"): lambda x: loop(x, False),
        ("last frame", "hdlib"): summarizer.last_frame,
    }


#: Columns of the printed loop-against-hdlib tables (:func:`summarise`'s keys).
COLUMNS = [("size", "C x H x W", ""), ("setting", "setting", ""),
           ("loop_ms", "loop ms", ".1f"), ("hdlib_ms", "hdlib ms", ".1f"),
           ("speedup", "speed-up", ".1f"), ("loop_mb", "loop MB", ".0f"),
           ("hdlib_mb", "hdlib MB", ".0f"), ("floor_ms", "floor ms", ".1f"),
           ("floor_fraction", "of floor", ".2f")]


def timed_row(benchmark: str, x: torch.Tensor, setting: str, form: str, work, reads: int,
              writes: int, repeats: int) -> dict:
    """One row: the CPU seconds and peak memory of ``work()``, and the floor of ``reads`` reads
    of a tensor of ``x``'s size and ``writes`` new ones allocated together, timed right after
    the form (on a shared virtual machine the cost of new memory drifts during a run, and a
    floor timed minutes apart would not be comparable)."""
    seconds, peak = common.cpu_seconds(work, repeats)
    floor = reads * common.read_seconds(x) + common.write_seconds(x, writes)
    return {"benchmark": benchmark, "size": "x".join(map(str, (x.shape[1], *x.shape[3:]))),
            "elements": x.numel(), "setting": setting, "form": form, "seconds": seconds,
            "peak_mb": peak, "floor_seconds": floor}


def compile_kernels() -> None:
    """Call every compiled kernel of the summariser and the relaxation once on a tiny input
    (one feature and several per frame; forward, backward, last frame), so that no timing
    includes numba's first compilation (or its loading from the on-disk cache)."""
    summarizer, dynamics = TemporalSummarizer(), PolarDynamics()
    for shape in [(1, 1, 3, 1, 1), (1, 1, 3, 2, 2)]:
        x = torch.rand(shape, requires_grad=True)
        outputs = [*summarizer(x), *summarizer.last_frame(x), dynamics(x, torch.zeros(1, 3))]
        sum(y.sum() for y in outputs).backward()


class _ReturnsTwo(torch.autograd.Function):
    """A custom autograd function that returns two new tensors of a given shape and, when
    ``read``, reads ``x`` once (its sum) before; its backward pass returns no gradients. What
    PyTorch charges a differentiable call made from Python that returns two tensors, with and
    without the one read of the input that the last frame needs."""

    @staticmethod
    def forward(ctx, x, shape, read, *logits):
        if read:
            x.sum()
        ctx.save_for_backward(x, *logits)
        return x.new_empty(shape), x.new_empty(shape)

    @staticmethod
    def backward(ctx, *grads):
        return None, None, None, *(None for _ in ctx.saved_tensors[1:])


def call_costs(channels: int, batch: int, frames: int, repeats: int) -> dict:
    """CPU seconds of what bounds hdlib at the smallest size, ``(batch, channels, T, 1, 1)``:

    - hdlib's calls on a single frame ``(batch, channels, 1, 1, 1)``: what a call costs beyond
      its arithmetic (the module, autograd's custom function, the compiled kernel's dispatch,
      new outputs);
    - PyTorch's own share of any such call: a custom autograd function that returns the two
      last-frame tensors and computes nothing, or only reads x once (:class:`_ReturnsTwo`),
      with the alphas' logits requiring a gradient as in the timed settings;
    - PyTorch's native alternative for the last frame: one matrix product of the rows
      ``(batch * channels, T)`` with the two weight columns ``(T, 2)``;
    - the compiled kernels alone (:func:`hdlib.models.scans.average_frames`,
      :func:`~hdlib.models.scans.average_sensitivities` and
      :func:`~hdlib.models.scans.weighted_sums` on arrays allocated beforehand), the arithmetic
      with no call around it."""
    generator = torch.Generator().manual_seed(0)
    frame = torch.rand(batch, channels, 1, 1, 1, generator=generator)
    x = torch.rand(batch, channels, frames, 1, 1, generator=generator)
    summarizer = TemporalSummarizer()
    logits = summarizer.alpha_fast_logit, summarizer.alpha_slow_logit
    grid = x.numpy().reshape(batch * channels, frames, 1)
    outputs = np.empty_like(grid), np.empty_like(grid)
    values = tuple(logit.item() for logit in logits)
    a, b, _, slopes = polar._decay_table(values, frames, x.dtype)
    grads = [torch.rand(x.shape, generator=generator).numpy().reshape(grid.shape)
             for _ in range(2)]
    weights = polar._last_frame_table(values, frames, x.dtype)[0]
    sums = np.empty((2, batch * channels, 1), grid.dtype)
    rows, columns = x.view(batch * channels, frames), torch.from_numpy(weights.T.copy())
    costs = {
        "hdlib all frames, on a single frame": lambda: summarizer(frame),
        "hdlib last frame, on a single frame": lambda: summarizer.last_frame(frame),
        "empty autograd function": lambda: _ReturnsTwo.apply(x, frame.shape[:2], False, *logits),
        "autograd function reading x once":
            lambda: _ReturnsTwo.apply(x, frame.shape[:2], True, *logits),
        "one matrix product": lambda: torch.mm(rows, columns),
        "all-frames kernel alone": lambda: scans.average_frames(grid, a, b, *outputs),
        "alphas' backward kernel alone":
            lambda: scans.average_sensitivities(grid, *grads, a, b, slopes),
        "last-frame kernel alone": lambda: scans.weighted_sums(grid, weights, sums),
    }
    return {name: common.cpu_seconds(work, repeats)[0] for name, work in costs.items()}


def measure(channels: int, height: int, width: int, batch: int, frames: int,
            repeats: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    shape = (batch, channels, frames, height, width)
    x = torch.rand(shape, generator=generator)
    grads = torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)
    summarizer = TemporalSummarizer()
    run = forms(summarizer)
    rows = []
    x_grad = x.clone().requires_grad_()

    def trained(form):
        torch.autograd.backward(form(x_grad), grads)
        x_grad.grad = None

    def alphas_only(form):
        torch.autograd.backward(form(x), grads)
        summarizer.zero_grad()

    settings = [  # (setting, the work for a form, reads and writes of the floor)
        ("all frames, x requires grad: fwd+bwd", "all frames", trained, 6, 3),
        ("all frames, x fixed: fwd", "all frames", lambda form: form(x), 1, 2),
        ("all frames, x fixed: fwd+bwd", "all frames", alphas_only, 4, 2),
        ("last frame, x fixed: fwd", "last frame", lambda form: form(x), 1, 0),
    ]
    for setting, output, work, reads, writes in settings:
        for name in ("loop", "hdlib"):  # side by side, so that both see the same machine
            form = run[(output, name)]
            rows.append(timed_row("004 summariser", x, setting, name,
                                  lambda work=work, form=form: work(form), reads, writes,
                                  repeats))
    summarizer.zero_grad()
    return rows


def relaxation_loop(dynamics: PolarDynamics, amplitude: torch.Tensor,
                    gate: torch.Tensor) -> torch.Tensor:
    """The document's relaxation on feature maps, frame by frame, every frame kept:
    ``A = a[:, :, t] + (A - a[:, :, t]) * exp(-lambda[:, t] dt)``."""
    rate = (1 - gate) * dynamics.lambda_fix + gate * dynamics.lambda_sac
    decay = torch.exp(-rate * dynamics.dt)
    state, frames = amplitude[:, :, 0], []
    for t in range(amplitude.shape[2]):
        frame = amplitude[:, :, t]
        state = frame + (state - frame) * decay[:, t, None, None, None]
        frames.append(state)
    return torch.stack(frames, dim=2)


def measure_relaxation(channels: int, height: int, width: int, batch: int, frames: int,
                       repeats: int) -> list[dict]:
    """:class:`PolarDynamics` on a feature map ``(B, C, T, H, W)`` against
    :func:`relaxation_loop`, with the saccade gate of each trial and frame (10% of frames).

    Floors: the forward pass reads the drive and writes the relaxed amplitudes (1 read + 1
    write); the backward pass reads the output gradient, the drive and the amplitudes (3 reads)
    and, when the drive requires a gradient, writes it (1 write)."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, channels, frames, height, width)
    x = torch.rand(shape, generator=generator)
    gate = (torch.rand(batch, frames, generator=generator) < 0.1).float()
    grad = torch.rand(shape, generator=generator)
    dynamics = PolarDynamics()
    x_grad = x.clone().requires_grad_()
    forms = {"loop": lambda a: relaxation_loop(dynamics, a, gate),
             "hdlib": lambda a: dynamics(a, gate)}

    def trained(form):
        form(x_grad).backward(grad)
        x_grad.grad = None
        dynamics.zero_grad()

    def rates_only(form):
        form(x).backward(grad)
        dynamics.zero_grad()

    settings = [("x requires grad: fwd+bwd", trained, 4, 2),
                ("x fixed: fwd", lambda form: form(x), 1, 1),
                ("x fixed: fwd+bwd", rates_only, 4, 1)]
    rows = []
    for setting, work, reads, writes in settings:
        for name, form in forms.items():
            rows.append(timed_row("004 relaxation", x, setting, name,
                                  lambda work=work, form=form: work(form), reads, writes,
                                  repeats))
    return rows


def model_step_costs(repeats: int, trials: int = 32, frames: int = 240,
                     features: int = 48) -> list[dict]:
    """The Polar V1 model's relaxation against the document's frame loop
    (``A = a_bar + (A - a_bar) exp(-lambda dt)``), and one training step (forward, Poisson loss,
    backward) with the four temporal constants frozen and learnable; CPU seconds."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(trials, frames, features, generator=generator)
    gate = (torch.rand(trials, frames, generator=generator) < 0.1).float()
    counts = torch.poisson(torch.rand(trials, frames, 32, generator=generator),
                           generator=generator)
    dynamics = PolarDynamics()

    def relax_hdlib():
        dynamics(x, gate).sum().backward()

    def relax_loop():
        lam = (1 - gate) * dynamics.lambda_fix + gate * dynamics.lambda_sac
        decay = torch.exp(-lam * dynamics.dt)[..., None]
        state, out = x[:, 0], []
        for t in range(frames):
            state = x[:, t] + (state - x[:, t]) * decay[:, t]
            out.append(state)
        torch.stack(out, 1).sum().backward()

    def step(model):
        def run():
            losses.poisson_nll(model(x, gate) * model.dt, counts).backward()
        return run

    measured = {
        "relaxation fwd+bwd, hdlib": relax_hdlib,
        "relaxation fwd+bwd, frame loop": relax_loop,
        "model step, constants frozen": step(PolarV1(features, 32, learnable_alphas=False,
                                                     learnable_lambdas=False)),
        "model step, constants learnable": step(PolarV1(features, 32)),
    }
    size = f"{trials} trials x {frames} frames x {features} features"
    return [{"benchmark": "004 Polar V1", "size": size, "form": name,
             "seconds": common.cpu_seconds(run, repeats)[0]} for name, run in measured.items()]


def best_of(passes: list[list[dict]]) -> list[dict]:
    """Each row at its best over the ``passes`` (lists of the same rows, measured minutes
    apart): the least time of the form and, separately, the least time of its floor. On a
    shared virtual machine a noisy stretch of a few seconds slows every repeat of one setting
    in one pass, rarely in all of them."""
    merged = {}
    for rows in passes:
        for row in rows:
            best = merged.setdefault((row["size"], row["setting"], row["form"]), dict(row))
            best["seconds"] = min(best["seconds"], row["seconds"])
            best["floor_seconds"] = min(best["floor_seconds"], row["floor_seconds"])
    for row in merged.values():
        row["floor_fraction"] = row["floor_seconds"] / row["seconds"]
    return list(merged.values())


def summarise(rows: list[dict]) -> list[dict]:
    """One line per size and setting: both times, the ratio, memory and hdlib's floor fraction."""
    table = []
    for row in rows:
        if row["form"] != "hdlib":
            continue
        loop = next(r for r in rows if r["form"] == "loop" and r["size"] == row["size"]
                    and r["setting"] == row["setting"])
        table.append({"size": row["size"], "elements": row["elements"],
                      "setting": row["setting"],
                      "loop_ms": 1e3 * loop["seconds"], "hdlib_ms": 1e3 * row["seconds"],
                      "speedup": loop["seconds"] / row["seconds"],
                      "loop_mb": loop["peak_mb"], "hdlib_mb": row["peak_mb"],
                      "floor_ms": 1e3 * row["floor_seconds"],
                      "floor_fraction": row["floor_fraction"]})
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--passes", type=int, default=2,
                        help="sweeps over every size and setting, minutes apart (best of them)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    common.single_thread()
    compile_kernels()
    passes, relaxation_passes = [], []
    for _ in range(args.passes):
        passes.append([row for size in SIZES
                       for row in measure(*size, args.batch, args.frames, args.repeats)])
        relaxation_passes.append([row for size in SIZES for row in measure_relaxation(
            *size, args.batch, args.frames, args.repeats)])
    rows, relaxation_rows = best_of(passes), best_of(relaxation_passes)
    best = f"CPU ms (best of {args.repeats} calls in each of {args.passes} passes)"
    print(f"004 temporal summariser, B = {args.batch}, T = {args.frames}, "
          f"{torch.get_num_threads()} thread, {best}")
    common.print_table(summarise(rows), COLUMNS)
    print(f"\n004 amplitude relaxation on feature maps, B = {args.batch}, T = {args.frames}, "
          f"{best}")
    common.print_table(summarise(relaxation_rows), COLUMNS)
    model_rows = model_step_costs(args.repeats)
    seconds = {row["form"]: row["seconds"] for row in model_rows}
    print(f"\nPolar V1 model, {model_rows[0]['size']}, CPU seconds")
    common.print_table(model_rows, [("form", "form", ""), ("seconds", "seconds", ".4f")])
    relaxation = (seconds["relaxation fwd+bwd, frame loop"]
                  / seconds["relaxation fwd+bwd, hdlib"])
    learning = (seconds["model step, constants learnable"]
                / seconds["model step, constants frozen"] - 1)
    print(f"relaxation: {relaxation:.1f}x the frame loop; learning the four constants costs "
          f"{100 * learning:+.0f}% per step")
    if not args.no_save:
        costs = call_costs(SIZES[0][0], args.batch, args.frames, 50)
        print(f"at {'x'.join(map(str, SIZES[0]))}, microseconds:",
              {k: round(1e6 * v, 1) for k, v in costs.items()})
        print("saved", common.save("polar_summarizer", rows,
                                   {"call_seconds": costs}))
        print("saved", common.save("polar_model", model_rows, {}))
        print("saved", common.save("polar_relaxation", relaxation_rows, {}))


if __name__ == "__main__":
    main()
