"""Speed of the E/I ring's batched forward pass against a loop over samples.

The reference runs the same equations one sample at a time, as the original implementation did
(the document lists vectorising this loop as future work). Prints the time of each, their ratio
(target: at least 10x) at batch 32, T = 100, 800 excitatory and 200 inhibitory neurons. Run:
``python benchmarks/ei_ring_speed.py [--batch 32] [--steps 100] [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from hdlib.ei_ring import RingAttractorNetwork


def per_sample_forward(model: RingAttractorNetwork, inputs: torch.Tensor, h0) -> torch.Tensor:
    """Noise-free forward pass of each sample on its own (the reference form)."""
    rates = []
    for b in range(inputs.shape[0]):
        out, _ = model(inputs[b], (h0[0][b], h0[1][b]), noise=False)
        rates.append(out)
    return torch.stack(rates)


def _best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model = RingAttractorNetwork()
    heading = torch.rand(args.batch, args.steps) * 2 * math.pi
    inputs = model.cue(heading)
    h0 = model.initial_state(heading[:, 0])
    with torch.no_grad():
        fast = _best_time(lambda: model(inputs, h0, noise=False), args.repeats)
        slow = _best_time(lambda: per_sample_forward(model, inputs, h0), args.repeats)
    print(f"batch {args.batch}, T = {args.steps}, 800 E / 200 I, {torch.get_num_threads()} threads")
    print(f"batched forward:     {1000 * fast:8.1f} ms")
    print(f"per-sample loop:     {1000 * slow:8.1f} ms")
    print(f"speed-up: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
