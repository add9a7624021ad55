"""Shared pieces of the benchmarks: side-by-side timing at 1 and 2 threads, peak memory, this
machine's floors, saved tables.

:func:`side_by_side` is how every benchmark compares forms: wall-clock seconds at a given
thread count, the forms taking turns in one process (so that a noisy stretch of the machine
slows all of them alike), median of 9 rounds. The older helpers time CPU seconds of the
process (``time.process_time``) with one thread.

Peak memory is the growth of the process's resident set during a form's first call (Linux: the
high-water mark ``VmHWM`` is reset through ``/proc/self/clear_refs`` before it, after glibc's
``malloc_trim`` has handed freed pages back, so that memory kept from earlier calls does not hide
the growth). Elsewhere it is NaN.

Floors, measured on this machine: ``read_seconds`` (one read of a tensor: its sum),
``write_seconds`` (writes of new tensors) and ``matmul_flops_per_second`` (a dense float32
matrix product).
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import datetime
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from hdlib.models.numba_kernels import new_like

RESULTS = Path(__file__).parent / "results"
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None


def arguments(description: str, argv=None) -> argparse.Namespace:
    """The options every size sweep takes (``--repeats``, ``--no-save``); the benchmark then
    runs on one thread."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    single_thread()
    return args


#: glibc's ``mallopt`` parameters (``malloc.h``) and the largest mmap threshold it accepts.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX = -1, -3, 32 * 2 ** 20


def single_thread() -> None:
    """Measure with one thread, and with memory reused from one call to the next as in a
    training loop (:func:`steady_allocator`)."""
    torch.set_num_threads(1)
    steady_allocator()


def steady_allocator() -> None:
    """Fix glibc's allocator thresholds (Linux): blocks up to 32 MB come from the heap, and
    freed heap memory is kept instead of being handed back to the system.

    By default both thresholds move with the program's history, so whether a freed 31 MB
    output is kept or handed back (and its pages supplied anew, slowly on a virtual machine)
    changed from one call to the next: the same form measured 5 ms or 30 ms. Fixed, every
    form and every floor sees the same rule; blocks above 32 MB are always new pages."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return
    _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)


def cpu_seconds(fn, repeats: int = 3, slow: float = 0.5) -> tuple[float, float]:
    """``(seconds, peak MB)`` of ``fn``: its best CPU time over a first call that measures its
    peak memory (:func:`peak_megabytes`) and ``repeats`` more; when the first call takes more
    than ``slow`` seconds, over it and one more (never a single sample: on a shared virtual
    machine one call can be several times slower than the next)."""
    start = time.process_time()
    peak = peak_megabytes(fn)
    best = time.process_time() - start
    for _ in range(1 if best > slow else repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best, peak


#: The thread counts every figure is measured at.
THREADS = (1, 2)


def side_by_side(forms: dict, threads: int, rounds: int = 9, slow: float = 2.0) -> dict:
    """``{name: median wall-clock seconds}`` of each ``forms[name]()`` at ``threads`` threads.

    Every form is called once to warm up; then the forms take turns, ``rounds`` rounds, each
    call timed with ``time.perf_counter``. A form whose warm-up call took more than ``slow``
    seconds takes part in the first 3 rounds only (its median is then of 3)."""
    torch.set_num_threads(threads)
    warm = {}
    for name, form in forms.items():
        start = time.perf_counter()
        form()
        warm[name] = time.perf_counter() - start
    samples = {name: [] for name in forms}
    for round_ in range(rounds):
        for name, form in forms.items():
            if round_ >= 3 and warm[name] > slow:
                continue
            start = time.perf_counter()
            form()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def thread_arguments(description: str, argv=None) -> argparse.Namespace:
    """Options of the side-by-side benchmarks (``--rounds``, ``--no-save``); memory reused from
    call to call as in training (:func:`steady_allocator`). Needs a process allowed at least
    ``max(THREADS)`` threads (``OMP_NUM_THREADS``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    steady_allocator()
    if torch.get_num_threads() < max(THREADS):
        raise SystemExit(f"the benchmarks measure at {THREADS} threads: run with "
                         f"OMP_NUM_THREADS={max(THREADS)} on a machine with as many cores")
    return args


def _resident_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(field)


def peak_megabytes(fn) -> float:
    """Growth of the resident set (MB) while ``fn()`` runs; NaN where Linux's counters are
    missing."""
    try:
        if _LIBC is not None:  # hand freed heap pages back, so that reusing them counts
            _LIBC.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before = _resident_kib("VmRSS:")
        fn()
        return (_resident_kib("VmHWM:") - before) / 1024
    except OSError:
        fn()
        return math.nan


def write_seconds(like: torch.Tensor, count: int = 1, repeats: int = 5) -> float:
    """``count`` writes of new tensors of ``like``'s size and dtype, all alive at once
    (allocated, then filled): what any form pays for the outputs it returns, the operating
    system's first touch of the new pages included. Timed together, because the allocator
    recycles one freed block cheaply but hands larger totals back to the system. The tensors
    come from :func:`hdlib.models.numba_kernels.new_like`, huge pages for large ones, as hdlib's
    outputs do: the cheapest new memory this machine supplies."""
    if count == 0:
        return 0.0
    return cpu_seconds(lambda: [new_like(like).fill_(1) for _ in range(count)], repeats)[0]


def read_seconds(like: torch.Tensor, repeats: int = 5) -> float:
    """One read of a tensor of ``like``'s size (its sum)."""
    source = torch.rand_like(like)
    return cpu_seconds(lambda: source.sum(), repeats)[0]


def matmul_flops_per_second(size: int = 1024, repeats: int = 5) -> float:
    """Float32 FLOP/s of a ``size x size`` by ``size x size`` product (``2 size^3`` FLOPs)."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    out = torch.empty(size, size)
    return 2 * size ** 3 / cpu_seconds(lambda: torch.mm(a, b, out=out), repeats)[0]


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info
                     if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError):
        memory_gb = math.nan
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "memory_gb": round(memory_gb, 1), "torch": torch.__version__,
            "python": platform.python_version(), "system": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "timing": "wall-clock seconds, forms taking turns in one process, median of the "
                      "rounds, at 1 and 2 threads"}


def save(name: str, rows: list[dict], floors: dict) -> Path:
    """Write ``results/<name>.csv`` (one row per measurement) and ``results/<name>.json`` (the
    rows, this machine and its floors)."""
    RESULTS.mkdir(exist_ok=True)
    csv_path = RESULTS / f"{name}.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    payload = {"machine": machine(), "floors": floors, "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    return csv_path


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print ``rows`` with ``columns`` given as (key, header, format)."""
    cells = [[format(row[key], fmt) for key, _, fmt in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells])
              for i, (_, header, _) in enumerate(columns)]
    print("  ".join(f"{header:>{w}}" for (_, header, _), w in zip(columns, widths)))
    for line in cells:
        print("  ".join(f"{cell:>{w}}" for cell, w in zip(line, widths)))
