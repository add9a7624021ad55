"""Speed of the E/I ring's batched forward pass against loops over samples.

The reference is the original implementation's form (the document lists vectorising it as future
work): one sample at a time, multiplying by the dense ``N_E x N_E`` matrix ``W_EE`` every step.
A second loop calls hdlib's own forward pass per sample (same Fourier-mode E->E product and
fused E<->I products), so it isolates what batching alone buys. Prints the time of each, forward
only and forward plus backward, and the ratios to the batched form (target: at least 10x against
the original form) at batch 32, T = 100, 800 E and 200 I neurons. Run:
``python benchmarks/ei_ring_speed.py [--batch 32] [--steps 100] [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from hdlib.models.ei_ring import RingAttractorNetwork


def per_sample_forward(model: RingAttractorNetwork, inputs: torch.Tensor, h0) -> torch.Tensor:
    """Noise-free forward pass of each sample on its own (the reference form)."""
    rates = []
    for b in range(inputs.shape[0]):
        out, _ = model(inputs[b], (h0[0][b], h0[1][b]), noise=False)
        rates.append(out)
    return torch.stack(rates)


def per_sample_dense_forward(model: RingAttractorNetwork, inputs: torch.Tensor,
                             h0) -> torch.Tensor:
    """Noise-free per-sample loop with a dense ``W_EE`` matrix-vector product at every step."""
    w_ee = model.g_ee * model.w_ee()
    w_ie = model.g_ie * model.W_IE / model.n_inh
    w_ei = model.g_ei * model.W_EI / model.n_exc
    a_e, a_i = model.dt / model.tau_e, model.dt / model.tau_i
    rates = []
    for b in range(inputs.shape[0]):
        r_e, r_i = h0[0][b], h0[1][b]
        trace = []
        for t in range(inputs.shape[1]):
            drive_e = w_ee @ r_e - w_ie @ r_i + model.input_gain * inputs[b, t]
            drive_i = w_ei @ r_e
            r_e = r_e + a_e * (model.activation(drive_e) - r_e)
            r_i = r_i + a_i * (model.activation(drive_i) - r_i)
            trace.append(r_e)
        rates.append(torch.stack(trace))
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
    forms = {
        "batched (hdlib forward)": lambda: model(inputs, h0, noise=False)[0],
        "per-sample loop, hdlib forward": lambda: per_sample_forward(model, inputs, h0),
        "per-sample loop, dense (original)": lambda: per_sample_dense_forward(model, inputs, h0),
    }

    def training_step(form):
        model.zero_grad()
        (form() ** 2).mean().backward()

    with torch.no_grad():
        forward = {name: _best_time(form, args.repeats) for name, form in forms.items()}
    train = {name: _best_time(lambda f=form: training_step(f), args.repeats)
             for name, form in forms.items()}
    print(f"batch {args.batch}, T = {args.steps}, 800 E / 200 I, {torch.get_num_threads()} threads")
    print(f"{'form':<34}{'forward (ms)':>14}{'ratio':>8}{'fwd+bwd (ms)':>15}{'ratio':>8}")
    batched = next(iter(forms))
    for name in forms:
        print(f"{name:<34}{1000 * forward[name]:>14.1f}{forward[name] / forward[batched]:>7.1f}x"
              f"{1000 * train[name]:>15.1f}{train[name] / train[batched]:>7.1f}x")


if __name__ == "__main__":
    main()
