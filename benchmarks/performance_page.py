"""Write the book's performance page and its figures from the benchmarks' saved results.

Reads ``benchmarks/results/{polar_summarizer,polar_relaxation,polar_model,leaky_ring,ei_ring}.json``
(written by the three benchmarks) and writes ``book/performance.md`` with its tables, and the
figures ``book/images/performance_*.png``. It runs nothing but the plots, so the page builds in
seconds and shows the numbers of the last ``make benchmark``.
Run: ``python -m benchmarks.performance_page``.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common import RESULTS  # noqa: E402
from benchmarks.polar_speed import COLUMNS, summarise  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "performance.md"
IMAGES = ROOT / "book" / "images"
SUMMARIZER_ALT = (
    "Two log-log panels against input size in million elements. Left, the speed-up of hdlib's "
    "temporal summariser over the document's frame loop for the four settings, with dashed "
    "lines at 20x and 1x. Right, the fraction of this machine's memory floor each setting "
    "reaches, with a dashed line at one half.")
RINGS_ALT = (
    "Two bar charts. Left, the speed-up of hdlib's leaky ring training iteration over the "
    "document's per-sample effective-matrix form at three sizes, with a dashed line at 20x. "
    "Right, the speed-up of hdlib's batched E/I ring over the document's per-sample loop at "
    "three sizes, forward and forward plus backward.")
#: Columns of the loop-against-hdlib tables (summariser and relaxation), with the goal.
PAIR_COLUMNS = COLUMNS + [("goal", "goal", ""), ("met", "met", "")]
SETTINGS = ["all frames, x requires grad: fwd+bwd", "all frames, x fixed: fwd",
            "all frames, x fixed: fwd+bwd", "last frame, x fixed: fwd"]


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def goal(pair: dict, floor: bool = True) -> tuple[str, bool]:
    """The issue's goal for a setting and whether this measurement meets it. ``floor=False``:
    the relaxation, whose goals are the summariser's speed-ups without the memory floor."""
    setting = pair["setting"]
    if setting.endswith("requires grad: fwd+bwd"):
        return "at least 20x the loop", pair["speedup"] >= 20
    if not floor:
        return "never slower than the loop", pair["speedup"] >= 1
    if setting.startswith("all frames"):
        return ("never slower than the loop, within 2x of the floor",
                pair["speedup"] >= 1 and pair["floor_fraction"] >= 0.5)
    return "within 2x of one read of x", pair["floor_fraction"] >= 0.5


def plot_summarizer(pairs: list[dict], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for setting, marker in zip(SETTINGS, "osD^"):
        chosen = sorted((p for p in pairs if p["setting"] == setting), key=lambda p: p["elements"])
        sizes = [p["elements"] / 1e6 for p in chosen]
        left.plot(sizes, [p["speedup"] for p in chosen], marker=marker, label=setting)
        right.plot(sizes, [p["floor_fraction"] for p in chosen], marker=marker, label=setting)
    left.axhline(20, color="grey", ls="--", lw=1)
    left.axhline(1, color="grey", ls=":", lw=1)
    right.axhline(0.5, color="grey", ls="--", lw=1)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input size (million elements, B x C x T x H x W)")
    left.set_ylabel("speed-up over the document's loop")
    right.set_ylabel("fraction of the memory floor")
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rings(leaky: list[dict], ei: list[dict], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = [r["size"] for r in leaky]
    left.bar(range(len(leaky)), [r["speedup"] for r in leaky], color="C0")
    left.axhline(20, color="grey", ls="--", lw=1)
    left.set_xticks(range(len(leaky)), labels, fontsize=8)
    left.set_ylabel("speed-up over the document's form")
    left.set_title("002 leaky ring, one training iteration", fontsize=10)
    document = [r for r in ei if r["form"].startswith("document")]
    x = range(len(document))
    right.bar([i - 0.2 for i in x], [r["forward_ratio"] for r in document], width=0.4,
              label="forward", color="C1")
    right.bar([i + 0.2 for i in x], [r["train_ratio"] for r in document], width=0.4,
              label="forward + backward", color="C2")
    right.set_xticks(list(x), [r["size"] for r in document], fontsize=8)
    right.set_ylabel("speed-up over the document's loop")
    right.set_title("000 E/I ring", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "|".join("---" if fmt == "" else "--:" for _, _, fmt in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format(row[key], fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def with_goals(pairs: list[dict], floor: bool = True) -> list[dict]:
    """``pairs`` (:func:`benchmarks.polar_speed.summarise`) with each one's goal and "met"."""
    for pair in pairs:
        pair["goal"], met = goal(pair, floor)
        pair["met"] = "yes" if met else "**no**"
    return pairs


def page(machine: dict, summary_rows: list[dict], relaxation_rows: list[dict], leaky: dict,
         ei: dict, calls: dict, model: list[dict]) -> str:
    """The page's Markdown; the two row lists come from :func:`with_goals`, ``calls`` holds
    what bounds the summariser at the smallest size (seconds,
    :func:`benchmarks.polar_speed.call_costs`) and ``model`` the Polar V1 model's rows."""
    unmet = [r for r in summary_rows if r["met"] != "yes"]
    missed = ", ".join(f"{r['size']} {r['setting']} ({r['floor_fraction']:.2f})" for r in unmet)
    smallest = [r for r in summary_rows if r["size"] == summary_rows[0]["size"]]
    floor_small = {r["setting"]: r["floor_ms"] * 1e3 for r in smallest}
    hdlib_small = {r["setting"]: r["hdlib_ms"] * 1e3 for r in smallest}
    size_small = " x ".join(smallest[0]["size"].split("x"))
    model_s = {r["form"]: r["seconds"] for r in model}
    larger_unmet = [r for r in unmet if r["size"] != summary_rows[0]["size"]]
    larger = ("At the two sizes of feature maps every goal is met." if not larger_unmet else
              "At the feature-map sizes, too, some goals are missed (listed above).")
    costs = {name: 1e6 * seconds for name, seconds in calls.items()}
    bound_rows = [{"what": name, "us": value} for name, value in costs.items()]
    call_all = costs["hdlib all frames, on a single frame"]
    last_bound = floor_small[SETTINGS[3]] / costs["autograd function reading x once"]
    updates = 2 * smallest[0]["elements"]  # both averages, every element
    nanoseconds_per_update = 1e3 * costs["all-frames kernel alone"] / updates
    forward_bound = floor_small[SETTINGS[1]] / costs["all-frames kernel alone"]
    backward_bound = floor_small[SETTINGS[2]] / (costs["all-frames kernel alone"]
                                                 + costs["alphas' backward kernel alone"])
    relax_ratio = (model_s["relaxation fwd+bwd, frame loop"]
                   / model_s["relaxation fwd+bwd, hdlib"])
    doc_leaky = next(r for r in leaky["rows"] if r["size"] == "N=120 B=128 T=120")
    doc_ei = [r for r in ei["rows"] if r["size"] == "800/200 B=32 T=100"]
    ei_doc = next(r for r in doc_ei if r["form"].startswith("document"))
    ei_hdlib = next(r for r in doc_ei if r["form"].startswith("hdlib"))
    return f"""# Performance

How fast hdlib runs the three models at the sizes their documents use, against each document's
own form written from the equations and loop structure the document describes, and how close it
comes to what this machine can do at all. Every number on this page is read from the files the
benchmarks saved in `benchmarks/results/`; nothing is measured while the book builds.

## The machine

The numbers were measured on a **shared** machine with {machine['logical_cores']} cores (other
jobs ran at the same time), with **{machine['threads']} thread** per benchmark:
{machine['cpu']}, {machine['memory_gb']} GB of memory, PyTorch {machine['torch']}, Python
{machine['python']}, on {machine['date'][:10]}. Times are CPU seconds of the benchmark process
(best of a few repeats, or of two calls when one call takes more than half a second; the
summariser and the relaxation are swept twice over all sizes, minutes apart, and each form and
each floor kept at its best, because a noisy stretch of a few seconds slowed every repeat of a
setting within one sweep): on a shared machine the wall-clock time mostly measures how long a
process waited for a core. Peak
memory is the growth of the process's resident memory during a form's first call.

## Reproducing

```bash
make benchmark      # runs the three benchmarks, saves benchmarks/results/, rewrites this page
.venv/bin/python -m benchmarks.polar_speed --no-save     # one benchmark, printed only
```

Each benchmark takes one to five minutes on this shared machine, almost all of it in the
documents' forms (the summariser's loop with an input gradient at the largest size takes over
half a minute per call); forms that take more than half a second per call are timed twice.

## Temporal summariser (document 004)

The document's model holds features as `(B, C, T, H, W)` and keeps a fast and a slow
exponential average, `acc = alpha * acc + (1 - alpha) * x[:, :, t]`, frame by frame. The
reference is that loop, once per average, keeping every frame (*all frames*) or only the final
one (*last frame*). On the CPU, {{py:class}}`~hdlib.models.polar.TemporalSummarizer` runs
both averages through compiled kernels ({{py:mod}}`hdlib.models.scans`, numba): the input is
viewed where it lies as rows x frames x features (no transposes, no copies), one pass forward
reads each frame once and writes both averages. When the input requires a gradient, the backward
pass is the adjoint recurrence, an exponential average run backwards in time, which in one pass
gives the gradients of the input and of both alphas; it walks memory in one descending stream
(rows, frames and features all in reverse order), 3-4x faster here than ascending features
within descending frames. When only the alphas need a gradient (the input fixed), the backward
pass instead carries each average's derivative with respect to its alpha forward in time
alongside the average itself, `s[t] = a[t] s[t-1] + a'[t] (y[t-1] - x[t])`, and sums `g[t]
s[t]`: it reads x and the two output gradients once, in time order, and neither the stored
averages nor anything backwards. The rows (trials and channels) are shared between threads.
{{py:meth}}`~hdlib.models.polar.TemporalSummarizer.last_frame` is one weighted sum over time
in the same layout, one read of the input. On other devices the same recurrences run frame by
frame through PyTorch operations.
hdlib also applies the start-up correction `1 / (1 - alpha^(t+1))` the loop does not, so it
does slightly more work. Sizes: B = 8, T = 240 (2 s at 120 Hz), C x H x W in 48 x 1 x 1,
64 x 8 x 8 and 64 x 16 x 16. The floor is the memory traffic a setting cannot avoid, timed on
this machine: reads of x (a sum) and writes of new tensors of x's size (allocation and first
touch included, since every form returns new outputs, and huge pages for large ones, as hdlib's
outputs), timed right after each form. The forward pass reads x and writes two averages; a
backward pass to the alphas alone must read x and both output gradients again (4 reads and 2
writes in all); with the input's gradient, the backward pass counted reads the output gradients,
x and both averages and writes the input's gradient (6 reads and 3 writes in all). On this
virtual machine the first touch of new memory is slow and its cost drifts during a run, so at
the largest size a fraction near or even above 1 means "at the floor", and the two forms' order
can change from one run to the next where both are dominated by it.

```{{figure}} images/performance_summarizer.png
:alt: {SUMMARIZER_ALT}

Left: speed-up over the document's loop (dashed: the 20x goal; dotted: equal speed). Right:
fraction of the memory floor reached (dashed: within 2x of the floor).
```

{table(summary_rows, PAIR_COLUMNS)}

What made the difference. With the input requiring a gradient, the loop's backward pass writes a
gradient the size of the whole input for every frame it sliced (`x[:, :, t]`), then adds them
up: its cost grows with the square of the sequence length. hdlib's backward pass writes the
input's gradient once, frame by frame. Without an input gradient the loop is cheap, and what
separates the forms is memory traffic and the cost per call. Each PyTorch operation of the loop
reads and writes a whole frame, and a frame of 48 features makes that a few microseconds of call
overhead for almost no arithmetic. The compiled pass reads each frame from memory once for both
averages and keeps the running state in registers or cache: on feature maps, each running
average lives in a small array of its own, one frame's features, so that every loop over
features writes one array and the compiler turns it into vector instructions (read back from the
previous frame of the output, the state shares the output's memory at a distance the compiler
cannot bound, and the loops stayed scalar). At the largest size, much of every form's time goes
to having the operating system supply the pages of its two new 126 MB outputs (first touch of
new memory is slow on this virtual machine, and its cost drifts). hdlib asks for those outputs
to be backed by 2 MB huge pages ({{py:func}}`~hdlib.models.scans.new_like`,
`madvise(MADV_HUGEPAGE)`, a hint that changes no value), which made writing two new 126 MB
tensors about 4x cheaper in a scratch measurement (27 ms instead of 111 ms); the floor's writes
use the same allocation, so the fraction of the floor does not count that gain. The document's
loop gets plain pages. The decays of both averages and their derivatives with respect to the
alphas are computed once per value of the alphas and reused until an optimiser step changes
them; the logits' gradients come from closed-form derivatives (tested against autograd), not
from autograd through the decays on every call.

Goals met: {len(summary_rows) - len(unmet)} of {len(summary_rows)}.
{"Not met (fraction of the floor): " + missed + "." if unmet else ""}
At the smallest size ({size_small}, {4 * smallest[0]["elements"] / 1e3:.0f} kB) the floor is a
read and two writes that fit in cache: {floor_small[SETTINGS[1]]:.0f} µs for the forward pass,
{floor_small[SETTINGS[2]]:.0f} µs with the alphas' backward pass and
{floor_small[SETTINGS[3]]:.0f} µs for the last frame. What
bounds hdlib there was measured piece by piece in the same run:

{table(bound_rows, [("what", f"measured at {size_small}", ""), ("us", "µs", ".1f")])}

- *Last frame*: a call that returns gradients to the alphas goes through PyTorch's autograd.
  A custom autograd function that computes nothing costs
  {costs["empty autograd function"]:.0f} µs; one that only reads the input once (a sum, the
  floor's own work) costs {costs["autograd function reading x once"]:.0f} µs, a fraction of
  {last_bound:.2f} of the floor. PyTorch's native path is no cheaper: one matrix product of the
  rows with the two weight columns takes {costs["one matrix product"]:.0f} µs. So no
  implementation called from Python through PyTorch's autograd can reach half the floor at
  this size. hdlib's own call ({hdlib_small[SETTINGS[3]]:.0f} µs) is a further
  {hdlib_small[SETTINGS[3]] / costs["autograd function reading x once"]:.1f}x above that bound:
  its module, the weights' lookup, numba's dispatch and the kernel.
- *All frames*: the compiled kernels alone, with no call around them, take
  {costs["all-frames kernel alone"]:.0f} µs forward and
  {costs["all-frames kernel alone"] + costs["alphas' backward kernel alone"]:.0f} µs forward and
  backward, fractions of {forward_bound:.2f} and {backward_bound:.2f} of the floors at best.
  With one feature per frame, time is contiguous in memory and every row is a chain of
  dependent updates, one per frame; the kernels advance several rows at once (eight
  recurrences in flight) and the forward kernel takes {nanoseconds_per_update:.2f} ns per
  update of one average. Updates of different rows could share vector instructions if tiles of
  rows and frames were first transposed; that was not tried. It would not be enough on its own:
  with a call costing {call_all:.0f} µs before any arithmetic, the forward kernel would
  have to take under {2 * floor_small[SETTINGS[1]] - call_all:.0f} µs.

hdlib's calls on a *single* frame of the same rows (the table's first two lines) show what a
call costs before any arithmetic: the module, autograd's custom function, the compiled kernel's
dispatch and the new outputs. {larger}

## Amplitude relaxation on feature maps (document 004)

The Polar V1 model's amplitude relaxes toward each frame's drive at a rate set by the saccade
gate of its trial, `A = a[:, :, t] + (A - a[:, :, t]) * exp(-lambda[:, t] dt)` with
`lambda = (1 - q) lambda_fix + q lambda_sac`. The reference is that loop on the document's
`(B, C, T, H, W)` layout, every frame kept. On the CPU,
{{py:class}}`~hdlib.models.polar.PolarDynamics` runs it through compiled kernels
({{py:func}}`hdlib.models.scans.relax`), in the drive's own layout, the decay of each trial shared
by its channels and positions; its backward pass is the adjoint recurrence run backwards in time,
which gives the gradients of the drive, of the initial state and of both rates in one pass (each
trial's rate gradient summed by one thread, so the result does not depend on the thread count).
The same kernels serve the model's `(trials, T, features)` layout. On other devices the
relaxation runs frame by frame through PyTorch operations. Sizes and floors as above: the
forward pass reads the drive and writes the amplitudes, the backward pass reads three tensors
and, when the drive requires a gradient, writes it.

{table(relaxation_rows, PAIR_COLUMNS)}

In the Polar V1 model ({model[0]['size']}), the relaxation's forward and backward pass is
**{relax_ratio:.1f}x** faster than the document's frame loop, and a training step (forward,
Poisson loss, backward) costs {1e3 * model_s["model step, constants frozen"]:.1f} ms with the
four temporal constants frozen and {1e3 * model_s["model step, constants learnable"]:.1f} ms
with them learnable.

## Leaky ring (document 002)

One training iteration (a fresh batch of the task, forward, heading loss, backward, Adam step).
The document's step applies, per sample, the effective matrix
`W_eff = J0 + J1 W0 + L_t WL + R_t WR` with a batched matrix-vector product; autograd keeps all
`T` of the `B x N x N` matrices for the backward pass. hdlib multiplies the batch once per step
by the stacked weights `[J0/N + J1 W0; WL; WR]` and mixes the three results per sample; the
sequence is one autograd node whose backward pass is written out, two matrix products per step
(the state's gradient, and the step's share of the weights' gradient, added into one
accumulator while the step's terms are still in cache; a single product over all steps, made
at the end, cost more, because every step's terms had first to be written to memory and read
back). The heading loss projects the states on both basis vectors of the ring in one product,
so that its backward pass writes the states' gradient once. The floor is the recurrence's
matrix-product FLOPs at this machine's dense float32 rate
({leaky['floors']['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s).

{table(leaky["rows"], [("size", "size", ""), ("document_ms", "document ms", ".1f"),
                       ("hdlib_ms", "hdlib ms", ".1f"), ("speedup", "speed-up", ".1f"),
                       ("document_mb", "document MB", ".0f"), ("hdlib_mb", "hdlib MB", ".0f"),
                       ("floor_ms", "floor ms", ".1f"),
                       ("floor_fraction", "of floor", ".2f")])}

At the document's size (N = 120, B = 128, T = 120) hdlib is
**{doc_leaky['speedup']:.1f}x** faster than the document's form (goal: 20x) and reaches
{doc_leaky['floor_fraction']:.2f} of the matrix-product floor.

## E/I ring (document 000)

The document lists vectorising its per-sample loop as future work. The reference runs each
sample on its own with dense `N_E x N_E` matrix-vector products; a second loop calls hdlib's own
step per sample, so that it isolates what batching alone buys. hdlib's batched step is two matrix
products (the E->E product through the Fourier modes of `W_EE`, fused with the E<->I products).
The ratio is each form's time over hdlib's; the floor is hdlib's matrix-product FLOPs at the
dense rate ({ei['floors']['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s).

{table(ei["rows"], [("size", "size", ""), ("form", "form", ""),
                    ("forward_ms", "forward ms", ".1f"), ("forward_ratio", "ratio", ".1f"),
                    ("forward_floor_fraction", "of floor", ".2f"),
                    ("train_ms", "fwd+bwd ms", ".1f"), ("train_ratio", "ratio", ".1f"),
                    ("train_floor_fraction", "of floor", ".2f"),
                    ("train_mb", "fwd+bwd MB", ".0f")])}

At the document's size (800 E / 200 I, B = 32, T = 100) hdlib is
**{ei_doc['forward_ratio']:.1f}x** faster forward and **{ei_doc['train_ratio']:.1f}x** forward
and backward than the document's loop, at {ei_hdlib['forward_floor_fraction']:.2f} and
{ei_hdlib['train_floor_fraction']:.2f} of the matrix-product floor.

```{{figure}} images/performance_rings.png
:alt: {RINGS_ALT}

Speed-up over each document's own form: the leaky ring's training iteration (left, dashed: the
20x goal) and the E/I ring's forward and forward + backward passes (right).
```
"""


def main() -> None:
    polar, leaky, ei = load("polar_summarizer"), load("leaky_ring"), load("ei_ring")
    relaxation, model = load("polar_relaxation"), load("polar_model")
    IMAGES.mkdir(exist_ok=True)
    pairs = with_goals(summarise(polar["rows"]))
    plot_summarizer(pairs, IMAGES / "performance_summarizer.png")
    plot_rings(leaky["rows"], ei["rows"], IMAGES / "performance_rings.png")
    relaxation_pairs = with_goals(summarise(relaxation["rows"]), floor=False)
    calls = polar["floors"].get("call_seconds")
    if calls is None:
        raise SystemExit("benchmarks/results/polar_summarizer.json has no call_seconds (saved "
                         "before they were measured): run python -m benchmarks.polar_speed")
    PAGE.write_text(page(polar["machine"], pairs, relaxation_pairs, leaky, ei, calls,
                         model["rows"]))
    print("wrote", PAGE.relative_to(ROOT), "and its figures")


if __name__ == "__main__":
    main()
