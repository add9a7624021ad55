"""Seconds per training step of the E-I RNN fit on the recorded SC session, against a per-trial
Python loop reference.

One step is what :func:`hdlib.fitters.sc_fit.fit` does each step: the forward pass with noise,
``L_neuron`` (+ the pooled-PSTH term), ``L_trial`` (Sinkhorn) and the backward pass. The batched
form runs all the step's trials through :class:`~hdlib.models.eirnn.EIRNN` at once; the reference
runs the same model on one trial at a time in a Python loop and stacks the rates (same losses,
same backward). Both are timed on the whole training split and on a minibatch of the default size,
in CPU seconds of this process with one thread (best of ``--repeats``), so that other jobs on the
machine do not count. Prints seconds per step and the ratio. Run:
``python benchmarks/sc_fit_speed.py [--repeats 3] [--session data/sc/...mat]``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from hdlib import losses as fl
from hdlib.datasets import sessions
from hdlib.fitters import sc_fit

SESSION = Path(__file__).resolve().parents[1] / "data/sc/rnn_export_Newton_08_14_2025_SC.mat"


def training_step(model, batch, cfg, bin_size_ms, per_trial: bool) -> None:
    """Forward, the fit's losses and backward on ``batch``; ``per_trial`` loops over trials."""
    generator = torch.Generator().manual_seed(0)
    n = batch["rates"].shape[-1]
    if per_trial:
        rates = torch.cat([model(batch["inputs"][k:k + 1], noise=True, generator=generator)
                           for k in range(batch["inputs"].shape[0])])[..., :n]
    else:
        rates = model(batch["inputs"], noise=True, generator=generator)[..., :n]
    loss = sc_fit.neuron_loss(cfg, rates, batch, bin_size_ms)
    loss = loss + cfg.pooled_weight * fl.compute_L_pooled(rates, batch["rates"])
    loss = loss + 0.5 * fl.compute_L_trial(rates, batch["rates"], batch["mask"],
                                           bin_size_ms=bin_size_ms)
    model.zero_grad()
    loss.backward()


def cpu_seconds(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--session", default=str(SESSION))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    session = sessions.load_session(args.session)
    cfg = sc_fit.make_config()
    model = sc_fit.build_model(session, cfg)
    full = session.trials(session.train_idx)
    sizes = {"whole training split": full}
    if 0 < cfg.batch_size < len(session.train_idx):
        sizes[f"minibatch (default, {cfg.batch_size} trials)"] = session.trials(
            session.train_idx[:cfg.batch_size])
    print(f"{session.info['session_name']}: {session.rates.shape[1]} bins, "
          f"{session.n_neurons} units; CPU seconds per training step, one thread, best of "
          f"{args.repeats}")
    for label, batch in sizes.items():
        batched, looped = (cpu_seconds(lambda b=batch, loop=loop: training_step(
            model, b, cfg, session.bin_size_ms, loop), args.repeats) for loop in (False, True))
        print(f"{label} ({batch['inputs'].shape[0]} trials): batched {batched:.3f} s/step, "
              f"per-trial loop {looped:.3f} s/step, ratio {looped / batched:.1f}x")
    steps = cfg.steps
    print(f"default fit: {steps} steps of {cfg.batch_size or len(session.train_idx)} trials")


if __name__ == "__main__":
    main()
