"""Speed of the Polar V1 model's temporal stages (document 004): every backend against the
reference, at the document's sizes.

The document holds features as ``(B, C, T, H, W)`` and updates them frame by frame: the
amplitude relaxation ``A = a[t] + (A - a[t]) exp(-lambda[t] dt)`` and the fast and slow
exponential averages ``acc = alpha acc + (1 - alpha) x[:, :, t]``. hdlib's definitions of the
two stages are those frame loops (:func:`hdlib.models.polar.amplitude_relaxation`,
:func:`hdlib.models.polar.exponential_average`, with the start-up correction the document's loop
lacks): the ``"reference"`` backend. The feature map is passed as ``(B, C, T, H*W)``, a view of
its own memory. The ``"torch"`` backend is the closed form over chunks of frames; ``"numba"``
the compiled kernels (:mod:`hdlib.models.backends`).

Settings, at B = 8, T = 240 (2 s at 120 Hz) and C x H x W in {48 x 1 x 1, 64 x 8 x 8,
64 x 16 x 16}, for each stage (the relaxation with a saccade gate on 10% of frames):

- ``x requires grad: fwd+bwd`` (the stage inside a trained model);
- ``x fixed: fwd``;
- ``x fixed: fwd+bwd`` (only the constants need a gradient: chapter 05's fits).

Each form's median wall-clock time over 9 rounds (3 for forms slower than 2 s per call), forms
taking turns (:func:`benchmarks.common.side_by_side`), at 1 and 2 threads. Also one training
step of the whole model (32 trials x 240 frames x 48 features, constants learnable and frozen)
per backend. Results: ``benchmarks/results/polar.{csv,json}``.
Run: ``OMP_NUM_THREADS=2 python -m benchmarks.polar_speed``.
"""
from __future__ import annotations

import torch

from benchmarks import common
from hdlib import losses
from hdlib.models.backends import BACKENDS
from hdlib.models.polar import PolarDynamics, TemporalSummarizer
from hdlib.models.polar_v1 import PolarV1

SIZES = [(48, 1, 1), (64, 8, 8), (64, 16, 16)]
SETTINGS = ["x requires grad: fwd+bwd", "x fixed: fwd", "x fixed: fwd+bwd"]


def stage_forms(stage: str, channels: int, height: int, width: int, batch: int, frames: int):
    """``{setting: {backend: callable}}`` for one stage on a feature map of this size."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, channels, frames, height * width, generator=generator)
    gate = (torch.rand(batch, 1, frames, generator=generator) < 0.1).float().expand(
        batch, channels, frames)
    x_grad = x.clone().requires_grad_()
    result = {setting: {} for setting in SETTINGS}
    for backend in BACKENDS:
        if stage == "summariser":
            module = TemporalSummarizer(backend=backend)
            run = module
        else:
            module = PolarDynamics(backend=backend)
            run = (lambda m: lambda v: (m(v, gate),))(module)

        def backward(v, run=run, module=module):
            outputs = run(v)
            sum((y * y).sum() for y in outputs).backward()
            module.zero_grad()
            x_grad.grad = None

        def forward(run=run):
            with torch.no_grad():
                run(x)

        result[SETTINGS[0]][backend] = lambda backward=backward: backward(x_grad)
        result[SETTINGS[1]][backend] = forward
        result[SETTINGS[2]][backend] = lambda backward=backward: backward(x)
    return result


def model_step_forms(trials: int = 32, frames: int = 240, features: int = 48) -> dict:
    """``{setting: {backend: callable}}``: one training step of :class:`PolarV1` (forward,
    Poisson loss, backward) with the four constants learnable and frozen."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(trials, frames, features, generator=generator)
    gate = (torch.rand(trials, frames, generator=generator) < 0.1).float()
    counts = torch.poisson(torch.rand(trials, frames, 32, generator=generator),
                           generator=generator)
    result = {}
    for setting, learnable in (("model step, constants learnable", True),
                               ("model step, constants frozen", False)):
        result[setting] = {}
        for backend in BACKENDS:
            model = PolarV1(features, 32, learnable_alphas=learnable,
                            learnable_lambdas=learnable, backend=backend)

            def step(model=model):
                losses.poisson_nll(model(x, gate) * model.dt, counts).backward()
                model.zero_grad()

            result[setting][backend] = step
    return result


def measure(benchmark: str, size: str, settings: dict, rounds: int) -> list[dict]:
    rows = []
    for setting, forms in settings.items():
        for threads in common.THREADS:
            seconds = common.side_by_side(forms, threads, rounds)
            rows.append({"benchmark": benchmark, "size": size, "setting": setting,
                         "threads": threads,
                         **{f"{name}_ms": 1e3 * value for name, value in seconds.items()},
                         **{f"{name}_speedup": seconds["reference"] / value
                            for name, value in seconds.items() if name != "reference"}})
    return rows


COLUMNS = [("benchmark", "stage", ""), ("size", "size", ""), ("setting", "setting", ""),
           ("threads", "threads", "d"), ("reference_ms", "reference ms", ".1f"),
           ("torch_ms", "torch ms", ".1f"), ("torch_speedup", "torch x", ".1f"),
           ("numba_ms", "numba ms", ".1f"), ("numba_speedup", "numba x", ".1f")]


def main(argv=None) -> None:
    args = common.thread_arguments(__doc__.splitlines()[0], argv)
    batch, frames = 8, 240
    rows = []
    for stage in ("summariser", "relaxation"):
        for channels, height, width in SIZES:
            size = f"{channels}x{height}x{width}"
            rows += measure(f"004 {stage}", size,
                            stage_forms(stage, channels, height, width, batch, frames),
                            args.rounds)
    rows += measure("004 Polar V1 model", "32 trials x 240 frames x 48 features",
                    model_step_forms(), args.rounds)
    print(f"004 Polar V1 stages, B = {batch}, T = {frames}, wall-clock ms (median of "
          f"{args.rounds}); x = speed-up over the reference")
    common.print_table(rows, COLUMNS)
    if not args.no_save:
        print("saved", common.save("polar", rows, {}))


if __name__ == "__main__":
    main()
