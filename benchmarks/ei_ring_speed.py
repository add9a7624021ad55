"""Speed of the E/I ring (document 000): each backend against the document's per-sample loop.

The document lists "vectorise batch processing" as future work: its forward pass loops over the
samples of a batch, and for each over time steps, multiplying by the dense ``N_E x N_E`` matrix
``W_EE``. The *document* form here is that loop, calling
:func:`hdlib.models.ei_ring.ei_ring_step` (the model's definition) on one sample at a time with
the noise of :meth:`~hdlib.models.ei_ring.RingAttractorNetwork._noise`. The model's
``"reference"`` backend runs the same step on the whole batch; the ``"torch"`` backend runs the
sequence as one autograd node, two matrix products per step through the Fourier modes of
``W_EE``, with a written-out backward pass.

Two settings, noise on (the model trains with noise): forward only, and a training step
(forward, loss, backward). Each form's median wall-clock time over 9 rounds, forms taking
turns (:func:`benchmarks.common.side_by_side`), at 1 and 2 threads. Sizes: 800 E / 200 I,
B = 32, T = 100 (the document's) and two others. Results:
``benchmarks/results/ei_ring.{csv,json}``.
Run: ``OMP_NUM_THREADS=2 python -m benchmarks.ei_ring_speed``.
"""
from __future__ import annotations

import math

import torch

from benchmarks import common
from hdlib.models.ei_ring import RingAttractorNetwork, ei_ring_step

SIZES = [(400, 100, 32, 100), (800, 200, 8, 100), (800, 200, 32, 100)]  # (N_E, N_I, B, T)


def document_forward(model: RingAttractorNetwork, inputs: torch.Tensor, h0,
                     generator: torch.Generator) -> torch.Tensor:
    """The document's loop: every sample on its own, dense ``W_EE``, noise on."""
    w_ee = model.g_ee * model.w_ee()
    w_ie = model.g_ie * model.W_IE / model.n_inh
    w_ei = model.g_ei * model.W_EI / model.n_exc
    a_e, a_i = model.dt / model.tau_e, model.dt / model.tau_i
    scale_e, scale_i = model.noise_scales()
    rates = []
    for b in range(inputs.shape[0]):
        r_e, r_i = h0[0][b:b + 1], h0[1][b:b + 1]
        trace = []
        for t in range(inputs.shape[1]):
            xi_e = model._noise(r_e, scale_e, generator)
            xi_i = model._noise(r_i, scale_i, generator)
            r_e, r_i = ei_ring_step(r_e, r_i, model.input_gain * inputs[b:b + 1, t], w_ee, w_ie,
                                    w_ei, a_e, a_i, model.activation, xi_e, xi_i)
            trace.append(r_e)
        rates.append(torch.cat(trace))
    return torch.stack(rates)


def forms(n_exc: int, n_inh: int, batch: int, steps: int) -> dict:
    """``(form, setting) -> callable`` for the document's loop and both backends."""
    heading = torch.rand(batch, steps, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    models = {backend: RingAttractorNetwork(n_exc, n_inh, backend=backend)
              for backend in ("reference", "torch")}
    inputs = models["torch"].cue(heading)
    h0 = models["torch"].initial_state(heading[:, 0])
    noise = torch.Generator().manual_seed(1)
    runs = {"document": lambda: document_forward(models["reference"], inputs, h0, noise)}
    for backend, model in models.items():
        runs[backend] = lambda model=model: model(inputs, h0, noise=True, generator=noise)[0]

    def forward(run):
        def go():
            with torch.no_grad():
                run()
        return go

    def train(run, model):
        def go():
            model.zero_grad()
            (run() ** 2).mean().backward()
        return go

    result = {}
    for name, run in runs.items():
        result[(name, "forward")] = forward(run)
        result[(name, "train")] = train(run, models["reference" if name == "document" else name])
    return result


def main(argv=None) -> None:
    args = common.thread_arguments(__doc__.splitlines()[0], argv)
    rows = []
    for n_exc, n_inh, batch, steps in SIZES:
        runs = forms(n_exc, n_inh, batch, steps)
        for setting in ("forward", "train"):
            chosen = {name: run for (name, kind), run in runs.items() if kind == setting}
            for threads in common.THREADS:
                seconds = common.side_by_side(chosen, threads, args.rounds)
                rows.append({"benchmark": "000 E/I ring",
                             "size": f"{n_exc}/{n_inh} B={batch} T={steps}",
                             "setting": "forward" if setting == "forward" else
                             "forward + backward", "threads": threads,
                             **{f"{name}_ms": 1e3 * value for name, value in seconds.items()},
                             "speedup": seconds["document"] / seconds["torch"],
                             "reference_speedup": seconds["reference"] / seconds["torch"]})
    print(f"000 E/I ring, noise on, wall-clock ms (median of {args.rounds}); speed-up = document "
          "/ torch")
    common.print_table(rows, [
        ("size", "size", ""), ("setting", "setting", ""), ("threads", "threads", "d"),
        ("document_ms", "document ms", ".1f"), ("reference_ms", "reference ms", ".1f"),
        ("torch_ms", "torch ms", ".1f"), ("speedup", "speed-up", ".1f"),
        ("reference_speedup", "over reference", ".1f")])
    if not args.no_save:
        print("saved", common.save("ei_ring", rows, {}))


if __name__ == "__main__":
    main()
