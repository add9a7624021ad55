"""Speed of the Polar V1 temporal stages: the all-frames-at-once (chunked matrix) form of the
exponential moving average and of the amplitude relaxation against a Python loop over frames,
and the cost of making the four temporal constants learnable.

Forward + backward at T=240 frames (2 s at 120 Hz), 32 trials, 48 features. Prints ratios.
"""
import time

import torch

from hdlib import losses
from hdlib.models import polar, polar_v1

TRIALS, T, F = 32, 240, 48
GENERATOR = torch.Generator().manual_seed(0)


def seconds(fn, repeats=20):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


x = torch.rand(TRIALS, T, F, generator=GENERATOR)
gate = (torch.rand(TRIALS, T, generator=GENERATOR) < 0.1).float()
summarizer = polar.TemporalSummarizer()
dynamics = polar.PolarDynamics()


def ema_scan():
    fast, slow = summarizer(x)
    (fast.sum() + slow.sum()).backward()


def ema_reference():
    fast = polar.ema_loop(x, summarizer.alpha_fast)
    slow = polar.ema_loop(x, summarizer.alpha_slow)
    (fast.sum() + slow.sum()).backward()


def relax_scan():
    dynamics(x, gate).sum().backward()


def relax_reference():
    lam = (1 - gate) * dynamics.lambda_fix + gate * dynamics.lambda_sac
    decay = torch.exp(-lam * dynamics.dt)[..., None]
    state, out = x[:, 0], []
    for t in range(T):
        state = x[:, t] + (state - x[:, t]) * decay[:, t]
        out.append(state)
    torch.stack(out, 1).sum().backward()


counts = torch.poisson(torch.rand(TRIALS, T, 32, generator=GENERATOR), generator=GENERATOR)


def step(model):
    def run():
        losses.poisson_nll(model(x, gate) * model.dt, counts).backward()
    return run


learnable = polar_v1.PolarV1(F, 32)
frozen = polar_v1.PolarV1(F, 32, learnable_alphas=False, learnable_lambdas=False)

print(f"threads: {torch.get_num_threads()}, trials {TRIALS}, T {T}, features {F}")
for name, fast, slow in [("EMA (fast + slow)", ema_scan, ema_reference),
                         ("amplitude relaxation", relax_scan, relax_reference)]:
    a, b = seconds(fast), seconds(slow)
    print(f"{name:22s} matrix form {a * 1e3:7.2f} ms, frame loop {b * 1e3:7.2f} ms, "
          f"speed-up {b / a:5.1f}x")
a, b = seconds(step(frozen)), seconds(step(learnable))
print(f"model step, constants frozen {a * 1e3:.2f} ms, learnable {b * 1e3:.2f} ms: "
      f"learning them costs {100 * (b / a - 1):+.1f}%")
