"""Training speed of the leaky ring (document 002): each backend against the document's form.

The document's step is ``r += (-r + F(J0 r + J1 W0 r + L W_L r + R W_R r)) dt / tau``, with each
sample's effective matrix ``W_eff = J0/N + J1 W0 + L_t WL + R_t WR`` (``B x N x N``) built at
every step and applied by a batched matrix-vector product:
:func:`hdlib.models.leaky_ring.leaky_ring_step`, the model's ``"reference"`` backend, which
autograd differentiates. The ``"torch"`` backend multiplies the batch once per step by the
stacked ``3N x N`` weights and runs the sequence as one autograd node with a written-out
backward pass.

One training iteration = a fresh batch of the task, forward, heading loss, backward, Adam step.
Each form's median wall-clock time over 9 rounds, forms taking turns
(:func:`benchmarks.common.side_by_side`), at 1 and 2 threads. Sizes: N = 120, B = 128, T = 120
(the document's) and two smaller ones. Results: ``benchmarks/results/leaky_ring.{csv,json}``.
Run: ``OMP_NUM_THREADS=2 python -m benchmarks.leaky_ring_speed``.
"""
from __future__ import annotations

import torch

from benchmarks import common
from hdlib.datasets.tasks import AVIntegrationDataset
from hdlib.losses import heading_loss
from hdlib.models.leaky_ring import BACKENDS, LeakyRingAttractor

SIZES = [(60, 128, 120), (120, 32, 120), (120, 128, 120)]  # (N, B, T)


def training_iteration(backend: str, neurons: int, batch: int, steps: int):
    model = LeakyRingAttractor(neurons, init="perfect", backend=backend)
    data = AVIntegrationDataset(batch, seq_len=steps, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def one_iteration():
        av, angles = data.generate_batch(batch)
        loss = heading_loss(model(av, data.initial_heading(av, angles)), angles)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return one_iteration


def main(argv=None) -> None:
    args = common.thread_arguments(__doc__.splitlines()[0], argv)
    rows = []
    for neurons, batch, steps in SIZES:
        forms = {backend: training_iteration(backend, neurons, batch, steps)
                 for backend in BACKENDS}
        for threads in common.THREADS:
            seconds = common.side_by_side(forms, threads, args.rounds)
            rows.append({"benchmark": "002 leaky ring", "size": f"N={neurons} B={batch} T={steps}",
                         "threads": threads, "reference_ms": 1e3 * seconds["reference"],
                         "torch_ms": 1e3 * seconds["torch"],
                         "speedup": seconds["reference"] / seconds["torch"]})
    print(f"002 leaky ring, one training iteration, wall-clock ms (median of {args.rounds})")
    common.print_table(rows, [
        ("size", "size", ""), ("threads", "threads", "d"),
        ("reference_ms", "reference ms", ".1f"), ("torch_ms", "torch ms", ".1f"),
        ("speedup", "speed-up", ".1f")])
    if not args.no_save:
        print("saved", common.save("leaky_ring", rows, {}))


if __name__ == "__main__":
    main()
