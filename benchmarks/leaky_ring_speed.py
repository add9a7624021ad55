"""Training speed of the leaky ring (document 002) against the document's per-step form.

The document's step is ``r += (-r + F(J0 r + J1 W0 r + L W_L r + R W_R r)) dt / tau`` with the
turn signals ``L``, ``R`` from gain networks. Written from that description, the reference
builds each sample's effective matrix ``W_eff = J0 + J1 W0 + L_t WL + R_t WR`` (``J0`` the
all-to-all matrix ``J0/N``; shape ``B x N x N``) at every step and applies it with a batched
matrix-vector product; autograd keeps every one of them for the backward pass. hdlib multiplies
the batch once per step by the stacked ``3N x N`` weights, mixes the three results per sample,
and runs the whole sequence as one autograd node with a written-out backward pass.

One training iteration = a fresh batch of the task, forward, heading loss, backward, Adam step.
Prints the CPU time of an iteration for both forms, their ratio, the peak memory each adds, and
the floor: the float32 matrix-product FLOPs of the recurrence (forward ``2 B 3N N T``, twice that
backward) at this machine's measured dense-product rate, with the fraction hdlib reaches.
Sizes: N = 120, B = 128, T = 120 (the document's) and two smaller ones. Results go to
``benchmarks/results/leaky_ring.{csv,json}``. Run: ``python -m benchmarks.leaky_ring_speed``.
"""
from __future__ import annotations

import torch

from benchmarks import common
from hdlib.datasets.tasks import AVIntegrationDataset
from hdlib.losses import heading_loss
from hdlib.models.leaky_ring import ACTIVATIONS, LeakyRingAttractor

SIZES = [(60, 128, 120), (120, 32, 120), (120, 128, 120)]  # (N, B, T)


def document_forward(model: LeakyRingAttractor, av: torch.Tensor,
                     initial_heading: torch.Tensor) -> torch.Tensor:
    """The document's step with a per-sample effective matrix and a batched mat-vec."""
    r = model.initial_state(initial_heading)
    left, right = model.gain_left(av), model.gain_right(av)
    n = model.num_neurons
    global_inhibition = model.J0 / n * torch.ones_like(model.W0)
    act = ACTIVATIONS[model.activation]
    states = []
    for t in range(av.shape[1]):
        w_eff = (global_inhibition + model.J1 * model.W0 + left[:, t, None, None] * model.WL
                 + right[:, t, None, None] * model.WR)
        drive = torch.bmm(w_eff, r.unsqueeze(-1)).squeeze(-1)
        r = r + model.alpha * (act(drive) - r)
        states.append(r)
    return torch.stack(states, dim=1)


def measure(form: str, neurons: int, batch: int, steps: int, repeats: int):
    """``(CPU seconds, peak MB)`` of one training iteration."""
    forward = {"hdlib": LeakyRingAttractor.forward, "document": document_forward}[form]
    model = LeakyRingAttractor(neurons, init="perfect")
    data = AVIntegrationDataset(batch, seq_len=steps, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def one_iteration():
        av, angles = data.generate_batch(batch)
        loss = heading_loss(forward(model, av, data.initial_heading(av, angles)), angles)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return common.cpu_seconds(one_iteration, repeats)


def main(argv=None) -> None:
    args = common.arguments(__doc__.splitlines()[0], argv)
    flops_per_second = common.matmul_flops_per_second()
    rows = []
    for neurons, batch, steps in SIZES:
        hdlib, hdlib_mb = measure("hdlib", neurons, batch, steps, args.repeats)
        document, document_mb = measure("document", neurons, batch, steps, args.repeats)
        floor = 3 * 2 * batch * 3 * neurons * neurons * steps / flops_per_second
        rows.append({"benchmark": "002 leaky ring", "size": f"N={neurons} B={batch} T={steps}",
                     "document_ms": 1e3 * document, "hdlib_ms": 1e3 * hdlib,
                     "speedup": document / hdlib, "document_mb": document_mb,
                     "hdlib_mb": hdlib_mb, "floor_ms": 1e3 * floor,
                     "floor_fraction": floor / hdlib})
    print(f"002 leaky ring, one training iteration, {torch.get_num_threads()} thread, CPU ms "
          f"(best of {args.repeats}); dense product {flops_per_second / 1e9:.0f} GFLOP/s")
    common.print_table(rows, [
        ("size", "size", ""), ("document_ms", "document ms", ".1f"),
        ("hdlib_ms", "hdlib ms", ".1f"), ("speedup", "speed-up", ".1f"),
        ("document_mb", "document MB", ".0f"), ("hdlib_mb", "hdlib MB", ".0f"),
        ("floor_ms", "floor ms", ".1f"), ("floor_fraction", "of floor", ".2f")])
    if not args.no_save:
        print("saved", common.save("leaky_ring", rows, {"matmul_flops_per_second":
                                                         flops_per_second}))


if __name__ == "__main__":
    main()
