"""Speed of the E/I ring (document 000) against the document's per-sample loop.

The document lists "vectorise batch processing" as future work: its forward pass loops over the
samples of a batch, and for each over time steps, multiplying by the dense ``N_E x N_E`` matrix
``W_EE``. Written from that description, the reference runs each sample on its own with dense
matrix-vector products; a second loop calls hdlib's own forward pass per sample (same Fourier-
mode E->E product and fused E<->I products), isolating what batching alone buys.

Prints, forward only and forward + backward, the CPU time of each form, the ratio to hdlib's
batched form, the peak memory each adds, and the floor: hdlib's matrix-product FLOPs (two
products per step, ``4 B N_E (M + N_I) T`` forward with ``M`` Fourier modes, three times that
forward + backward) at this machine's measured dense-product rate, with the fraction reached.
Sizes: 800 E / 200 I, B = 32, T = 100 (the document's) and two others. Results go to
``benchmarks/results/ei_ring.{csv,json}``. Run: ``python -m benchmarks.ei_ring_speed``.
"""
from __future__ import annotations

import math

import torch

from benchmarks import common
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


SIZES = [(400, 100, 32, 100), (800, 200, 8, 100), (800, 200, 32, 100)]  # (N_E, N_I, B, T)


def measure(n_exc: int, n_inh: int, batch: int, steps: int, repeats: int,
            flops_per_second: float) -> list[dict]:
    model = RingAttractorNetwork(n_exc, n_inh)
    heading = torch.rand(batch, steps, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    inputs = model.cue(heading)
    h0 = model.initial_state(heading[:, 0])
    forms = {
        "hdlib (batched)": lambda: model(inputs, h0, noise=False)[0],
        "per-sample loop, hdlib step": lambda: per_sample_forward(model, inputs, h0),
        "document (per-sample loop, dense W_EE)": lambda: per_sample_dense_forward(model, inputs,
                                                                                   h0),
    }

    def training_step(form):
        model.zero_grad()
        (form() ** 2).mean().backward()

    n_modes = model.excitation_modes()[1].numel()
    forward_flops = 4 * batch * n_exc * (n_modes + n_inh) * steps
    rows = []
    for name, form in forms.items():
        with torch.no_grad():
            forward, forward_mb = common.cpu_seconds(form, repeats)
        train, train_mb = common.cpu_seconds(lambda f=form: training_step(f), repeats)
        rows.append({"benchmark": "000 E/I ring", "size": f"{n_exc}/{n_inh} B={batch} T={steps}",
                     "form": name, "forward_ms": 1e3 * forward, "forward_mb": forward_mb,
                     "train_ms": 1e3 * train, "train_mb": train_mb,
                     "forward_floor_ms": 1e3 * forward_flops / flops_per_second,
                     "train_floor_ms": 3e3 * forward_flops / flops_per_second})
    batched = rows[0]
    for row in rows:
        row["forward_ratio"] = row["forward_ms"] / batched["forward_ms"]
        row["train_ratio"] = row["train_ms"] / batched["train_ms"]
        row["forward_floor_fraction"] = row["forward_floor_ms"] / row["forward_ms"]
        row["train_floor_fraction"] = row["train_floor_ms"] / row["train_ms"]
    return rows


def main(argv=None) -> None:
    args = common.arguments(__doc__.splitlines()[0], argv)
    flops_per_second = common.matmul_flops_per_second()
    rows = []
    for size in SIZES:
        rows += measure(*size, args.repeats, flops_per_second)
    print(f"000 E/I ring, {torch.get_num_threads()} thread, CPU ms (best of {args.repeats}); "
          f"dense product {flops_per_second / 1e9:.0f} GFLOP/s; ratio = form / hdlib")
    common.print_table(rows, [
        ("size", "size", ""), ("form", "form", ""), ("forward_ms", "fwd ms", ".1f"),
        ("forward_ratio", "ratio", ".1f"), ("forward_floor_fraction", "of floor", ".2f"),
        ("train_ms", "fwd+bwd ms", ".1f"), ("train_ratio", "ratio", ".1f"),
        ("train_floor_fraction", "of floor", ".2f"), ("train_mb", "fwd+bwd MB", ".0f")])
    if not args.no_save:
        print("saved", common.save("ei_ring", rows, {"matmul_flops_per_second":
                                                      flops_per_second}))


if __name__ == "__main__":
    main()
