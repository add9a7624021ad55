"""hdlib.models.backends: every backend of the Polar recurrences against the model's definition
(:func:`hdlib.models.polar.exponential_average`, :func:`hdlib.models.polar.amplitude_relaxation`),
values and gradients in float64, and the edge cases of the numba kernels."""

import functools
import pathlib
import subprocess
import sys

import pytest
import torch

from hdlib.models import backends, numba_kernels, polar

F64 = torch.float64
FAST = ["torch", "numba"]


def relative_gap(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item() if b.numel() else 0.0


def random_case(shape, seed, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=dtype, generator=g)
    gate = torch.rand(shape[:-1], dtype=dtype, generator=g)
    initial = torch.randn(shape[:-2] + shape[-1:], dtype=dtype, generator=g)
    return x, gate, initial


def both_stages(backend, x, gate, initial, alphas=(0.74, 0.95), lambdas=(10.0, 40.0)):
    dynamics = polar.PolarDynamics(*lambdas, backend=backend).to(x.dtype)
    summarizer = polar.TemporalSummarizer(*alphas, backend=backend).to(x.dtype)
    relaxed = dynamics(x, gate, initial)
    fast, slow = summarizer(relaxed)
    parameters = [*dynamics.parameters(), *summarizer.parameters()]
    return (relaxed, fast, slow), parameters


def random_shapes(count=12, seed=0):
    """(..., T, F) shapes with 1-3 leading axes, T from 1 to 150 (past several chunks), F from
    1 to 6; and an empty batch."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(0, 7, 3), (3, 1, 2), (2, 1, 1)]
    while len(shapes) < count:
        lead = torch.randint(1, 4, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g)
        T, F = int(torch.randint(1, 151, (1,), generator=g)), int(torch.randint(1, 7, (1,),
                                                                                 generator=g))
        shapes.append((*lead.tolist(), T, F))
    return shapes


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("shape", random_shapes())
def test_every_backend_matches_the_reference(backend, shape):
    x, gate, initial = random_case(shape, seed=sum(shape))
    weights = [torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(k))
               for k in range(3)]
    results = {}
    for name in ("reference", backend):
        leaves = [x.clone().requires_grad_(), initial.clone().requires_grad_()]
        outputs, parameters = both_stages(name, leaves[0], gate, leaves[1])
        loss = sum((y * w).sum() + (y ** 2).sum() for y, w in zip(outputs, weights))
        grads = torch.autograd.grad(loss, leaves + parameters, allow_unused=True)
        results[name] = [*outputs, *grads]
    for got, expected in zip(results[backend], results["reference"]):
        assert got.shape == expected.shape
        if expected.numel():
            assert (got - expected).abs().max() <= 1e-10 * expected.abs().max() + 1e-13


@pytest.mark.parametrize("backend", FAST)
def test_a_gate_shared_by_the_channels_gives_the_reference_values_and_gradients(backend):
    # one gate per trial, expanded over the channels (the kernels then get one decay per trial)
    x, gate, initial = random_case((3, 4, 30, 5), seed=5)
    shared = gate[:, :1].expand(3, 4, 30)
    results = {}
    for name, g in (("reference", shared.contiguous()), (backend, shared)):
        leaf = x.clone().requires_grad_()
        dynamics = polar.PolarDynamics(backend=name).to(F64)
        out = dynamics(leaf, g, initial)
        grads = torch.autograd.grad((out * x).sum(), [leaf, *dynamics.parameters()])
        results[name] = [out, *grads]
    for got, expected in zip(results[backend], results["reference"]):
        assert relative_gap(got, expected) < 1e-12


@pytest.mark.parametrize("backend", FAST)
def test_the_constants_alone_and_the_input_alone_get_the_reference_gradients(backend):
    # a fixed input (chapter 05 fits the constants on fixed features), and frozen constants
    x, gate, initial = random_case((3, 5, 40, 2), seed=3)
    for learnable in (True, False):
        grads = {}
        for name in ("reference", backend):
            leaf = x.clone().requires_grad_(not learnable)
            dynamics = polar.PolarDynamics(learnable=learnable, backend=name).to(F64)
            summarizer = polar.TemporalSummarizer(learnable_alphas=learnable,
                                                  backend=name).to(F64)
            fast, slow = summarizer(dynamics(leaf, gate, initial))
            wanted = [*dynamics.parameters(), *summarizer.parameters()] if learnable else [leaf]
            grads[name] = torch.autograd.grad((fast * slow).sum(), wanted)
        for got, expected in zip(grads[backend], grads["reference"]):
            assert relative_gap(got, expected) < 1e-10


@pytest.mark.parametrize("backend", FAST)
def test_one_unused_average_contributes_nothing(backend):
    x = torch.randn(2, 30, 4, dtype=F64, generator=torch.Generator().manual_seed(4),
                    requires_grad=True)
    grads = {}
    for name in ("reference", backend):
        summarizer = polar.TemporalSummarizer(backend=name).to(F64)
        grads[name] = torch.autograd.grad(summarizer(x)[0].sum(),
                                          [x, summarizer.alpha_fast_logit,
                                           summarizer.alpha_slow_logit], allow_unused=True)
    assert grads[backend][2] is None or grads[backend][2] == 0
    for got, expected in zip(grads[backend][:2], grads["reference"][:2]):
        assert relative_gap(got, expected) < 1e-10


def test_two_frames_by_hand():
    # y[0] = x[0]; y[1] = (a (1 - a) x[0] + (1 - a) x[1]) / (1 - a^2) = (a x[0] + x[1]) / (1 + a)
    x = torch.tensor([[[2.0], [5.0]]], dtype=F64)
    for backend in backends.BACKENDS:
        summarizer = polar.TemporalSummarizer(0.5, 0.75, backend=backend).to(F64)
        for got, alpha in zip(summarizer(x), (summarizer.alpha_fast, summarizer.alpha_slow)):
            a = alpha.item()  # the float32 logit's alpha, close to 0.5 and 0.75
            assert got.flatten().tolist() == pytest.approx([2.0, (a * 2 + 5) / (1 + a)],
                                                           rel=1e-12)
    # A[t] = a[t] + (A[t-1] - a[t]) d: from 1 toward 3 at d = exp(-lambda dt)
    for backend in backends.BACKENDS:
        dynamics = polar.PolarDynamics(10.0, 10.0, backend=backend).to(F64)
        d = torch.exp(-dynamics.lambda_fix / 120).item()  # the float32 log-rate's lambda
        got = dynamics(torch.full((1, 2, 1), 3.0, dtype=F64), torch.zeros(1, 2, dtype=F64),
                       torch.ones(1, 1, dtype=F64))
        assert got.flatten().tolist() == pytest.approx([3 - 2 * d, 3 - 2 * d * d], rel=1e-12)


def test_the_numba_functions_pass_gradcheck():
    g = torch.Generator().manual_seed(9)
    fast, slow = torch.randn(2, dtype=F64, generator=g, requires_grad=True).unbind()
    for shape in [(2, 3, 6, 4), (5, 6, 1)]:
        x = torch.randn(shape, dtype=F64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(backends._NumbaAverages.apply, (x, fast, slow))
        assert torch.autograd.gradcheck(backends._NumbaAverages.apply, (x, fast))
        assert torch.autograd.gradcheck(  # a fixed input: the alphas' sensitivities
            functools.partial(backends._NumbaAverages.apply, x.detach()), (fast, slow))
        rows = x[..., 0, 0].numel()
        decay = torch.rand(rows, shape[-2], dtype=F64, generator=g, requires_grad=True)
        initial = torch.randn(*shape[:-2], shape[-1], dtype=F64, generator=g,
                              requires_grad=True)
        assert torch.autograd.gradcheck(backends._NumbaRelaxation.apply, (x, decay, initial))


@pytest.mark.parametrize("logit", [-3.0, 0.3, 2.94, 5.0])
def test_closed_form_slopes_match_autograd(logit):
    # the numba backend's logit gradients use closed-form slopes of the decays
    leaf = torch.tensor([logit], dtype=F64, requires_grad=True)
    values = backends._bias_corrected_decays(leaf, 60)[0]
    slopes = backends._bias_corrected_decay_slopes(leaf.detach(), 60)[0]
    expected = torch.stack([torch.autograd.grad(v, leaf, retain_graph=True)[0][0]
                            for v in values])
    assert relative_gap(slopes, expected) < 1e-12


def test_slopes_stay_finite_when_alpha_rounds_to_one():
    assert torch.isfinite(backends._bias_corrected_decay_slopes(torch.tensor([40.0]), 30)).all()


@pytest.mark.parametrize("shape", [(4, 40, 60, 9), (4, 40, 60, 1), (9, 33, 1)])
def test_numba_results_do_not_depend_on_the_number_of_threads(shape):
    x, gate, initial = random_case(shape, seed=11, dtype=torch.float32)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            leaf = x.clone().requires_grad_()
            outputs, parameters = both_stages("numba", leaf, gate, initial)
            grads = torch.autograd.grad(sum((y * y).sum() for y in outputs), [leaf, *parameters])
            results.append([*outputs, *grads])
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_the_kernels_leave_torch_thread_count_alone():
    # numba's OpenMP pool, started by the first kernel, shares torch's OpenMP runtime; in a
    # fresh process (where the pool has not started yet) torch must keep its one thread
    script = ("import torch; torch.set_num_threads(1); from hdlib.models import polar; "
              "polar.TemporalSummarizer(backend='numba')(torch.rand(2, 3, 10, 16)); "
              "print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["1"]


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap of addcmul_
@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_torch_func_transforms_see_the_reference(backend):
    # vmap and functional gradients over the constants: backends made of torch operations
    g = torch.Generator().manual_seed(12)
    x = torch.randn(3, 2, 7, 2, dtype=F64, generator=g)
    gate = torch.rand(3, 2, 7, dtype=F64, generator=g)
    summarizer = polar.TemporalSummarizer(0.7, 0.9, backend=backend).to(F64)
    dynamics = polar.PolarDynamics(backend=backend).to(F64)
    batched = torch.func.vmap(summarizer)(x)
    for got, alpha in zip(batched, (summarizer.alpha_fast, summarizer.alpha_slow)):
        expected = polar.exponential_average(x, alpha)
        assert relative_gap(got, expected) < 1e-10
    params = {**{f"d.{k}": v for k, v in dynamics.named_parameters()},
              **{f"s.{k}": v for k, v in summarizer.named_parameters()}}
    model = torch.nn.ModuleDict({"d": dynamics, "s": summarizer})

    def loss(values):
        relaxed = torch.func.functional_call(model["d"], {k[2:]: v for k, v in values.items()
                                                          if k[0] == "d"}, (x, gate))
        fast, slow = torch.func.functional_call(model["s"], {k[2:]: v for k, v in
                                                             values.items() if k[0] == "s"},
                                                (relaxed,))
        return fast.square().sum() + slow.sum()

    got = torch.func.grad(loss)(params)
    expected = torch.autograd.grad(loss(params), list(params.values()))
    for a, b in zip(got.values(), expected):
        assert relative_gap(a, b) < 1e-10


def test_the_default_backend_follows_the_device():
    assert backends.resolve(None, torch.zeros(2)) == "numba"
    assert backends.resolve(None, torch.zeros(2, dtype=torch.complex64)) == "torch"
    assert backends.resolve(None, torch.zeros(2, device="meta")) == "torch"
    assert backends.resolve("reference", torch.zeros(2)) == "reference"


@pytest.mark.parametrize("backend, tensor, match", [
    ("cuda", torch.zeros(2), "backend must be one of"),
    ("numba", torch.zeros(2, device="meta"), "backend 'numba' runs"),
    ("numba", torch.zeros(2, dtype=torch.float16), "backend 'numba' runs")])
def test_a_backend_that_cannot_run_is_named(backend, tensor, match):
    with pytest.raises(ValueError, match=match):
        backends.resolve(backend, tensor)


def test_a_bad_backend_name_is_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match="backend"):
        polar.PolarDynamics(backend="cuda")


def test_the_torch_backend_runs_on_tensors_without_values():
    # the meta device has shapes but no values: any host read (.item(), .tolist()) would fail
    x = torch.empty(2, 70, 4, device="meta")
    log_decay = torch.empty(2, 70, device="meta")
    logits = [torch.empty((), device="meta") for _ in range(2)]
    relaxed = backends.RELAXATION["torch"](x, log_decay, x[:, 0])
    fast, slow = backends.AVERAGES["torch"](relaxed, logits)
    assert relaxed.shape == fast.shape == slow.shape == (2, 70, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_torch_backend_on_the_gpu_matches_the_reference():
    x, gate, initial = random_case((4, 3, 100, 5), seed=21)
    leaves = [x.cuda().requires_grad_(), initial.cuda().requires_grad_()]
    outputs, parameters = both_stages(None, leaves[0], gate.cuda(), leaves[1])  # default: torch
    grads = torch.autograd.grad(sum((y ** 2).sum() for y in outputs), leaves + parameters)
    ref_leaves = [x.requires_grad_(), initial.requires_grad_()]
    expected_outputs, ref_parameters = both_stages("reference", *ref_leaves[:1], gate,
                                                   ref_leaves[1])
    expected = torch.autograd.grad(sum((y ** 2).sum() for y in expected_outputs),
                                   ref_leaves + ref_parameters)
    for got, want in zip([*outputs, *grads], [*expected_outputs, *expected]):
        assert relative_gap(got.cpu(), want) < 1e-10


def _vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds ``address`` (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                low, high = (int(part, 16) for part in head.split("-"))
                inside = low <= address < high
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def test_large_outputs_are_advised_as_huge_pages():
    thp = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if numba_kernels._MADVISE is None or not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("transparent huge pages: Linux with THP enabled only")
    big = numba_kernels.new_like(torch.empty(numba_kernels.HUGE_PAGE_BYTES // 2, dtype=F64))
    middle = big.data_ptr() + big.numel() * big.element_size() // 2
    assert "hg" in _vm_flags(middle)
    small = numba_kernels.new_like(torch.empty(3, 4))
    assert small.shape == (3, 4) and small.is_contiguous()
