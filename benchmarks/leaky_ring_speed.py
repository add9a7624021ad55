"""Training speed of the leaky ring: hdlib's stacked-weight step against a per-sample form.

The reference builds, at every step, each sample's effective matrix
``W_eff[b] = J0/N + J1 W0 + L[b,t] WL + R[b,t] WR`` (shape ``B x N x N``) and applies it with a
batched matrix-vector product; autograd keeps every one of them for the backward pass. hdlib
multiplies the batch once by the stacked ``3N x N`` weights and mixes the three results.

Prints training iterations per second (forward, backward and an Adam step) for both forms, their
ratio, and the peak resident memory each form adds to a fresh process (``ru_maxrss``). Run:
``python benchmarks/leaky_ring_speed.py [--batch 128] [--neurons 120] [--steps 120]``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from hdlib.datasets.tasks import AVIntegrationDataset
from hdlib.losses import heading_loss
from hdlib.models.leaky_ring import ACTIVATIONS, LeakyRingAttractor


def reference_forward(model: LeakyRingAttractor, av: torch.Tensor,
                      initial_heading: torch.Tensor) -> torch.Tensor:
    """The per-sample effective-matrix form of :meth:`LeakyRingAttractor.forward`."""
    r = model.initial_state(initial_heading)
    left, right = model.gain_left(av), model.gain_right(av)
    n = model.num_neurons
    maintain = model.J0 / n + model.J1 * model.W0
    act = ACTIVATIONS[model.activation]
    states = []
    for t in range(av.shape[1]):
        w_eff = (maintain + left[:, t, None, None] * model.WL
                 + right[:, t, None, None] * model.WR)
        drive = torch.bmm(w_eff, r.unsqueeze(-1)).squeeze(-1)
        r = r + model.alpha * (act(drive) - r)
        states.append(r)
    return torch.stack(states, dim=1)


def measure(form: str, neurons: int, batch: int, steps: int, iterations: int):
    """Iterations per second and the process's peak resident memory growth (MB)."""
    forward = {"hdlib": LeakyRingAttractor.forward, "reference": reference_forward}[form]
    model = LeakyRingAttractor(neurons, init="perfect")
    data = AVIntegrationDataset(batch, seq_len=steps, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def one_iteration():
        av, angles = data.generate_batch(batch)
        loss = heading_loss(forward(model, av, data.initial_heading(av, angles)), angles)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    one_iteration()  # warm-up
    start = time.perf_counter()
    for _ in range(iterations):
        one_iteration()
    rate = iterations / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    return rate, peak / 1024


def measure_in_child(*args):
    """Run :func:`measure` in a fresh process so that each form's peak memory is its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, *args).result()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--neurons", type=int, default=120)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"batch {args.batch}, N = {args.neurons}, T = {args.steps}, "
          f"{torch.get_num_threads()} threads")
    fast = measure_in_child("hdlib", args.neurons, args.batch, args.steps, args.iterations)
    slow = measure_in_child("reference", args.neurons, args.batch, args.steps,
                            max(1, args.iterations // 2))
    print(f"{'form':<28}{'iterations/s':>14}{'peak memory (MB)':>20}")
    print(f"{'hdlib stacked weights':<28}{fast[0]:>14.2f}{fast[1]:>20.1f}")
    print(f"{'per-sample effective matrix':<28}{slow[0]:>14.2f}{slow[1]:>20.1f}")
    print(f"speed-up: {fast[0] / slow[0]:.1f}x, memory ratio: {slow[1] / fast[1]:.1f}x")


if __name__ == "__main__":
    main()
