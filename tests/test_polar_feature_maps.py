"""hdlib.models.polar on feature maps: the summariser's frame-by-frame form and its adjoint.

Every check compares against the document's frame loop written out here,
``acc = alpha acc + (1 - alpha) x[:, :, t]``, divided by the start-up weight
``1 - alpha^(t+1)`` as :class:`~hdlib.models.polar.TemporalSummarizer` documents.
"""

import functools
import pathlib
import subprocess
import sys

import pytest
import torch

from hdlib.models import polar, scans

F64 = torch.float64


def frame_loop(x, alpha):
    """Corrected averages of every frame of ``x (B, C, T, H, W)``, one frame at a time."""
    acc, out = torch.zeros_like(x[:, :, 0]), []
    for t in range(x.shape[2]):
        acc = alpha * acc + (1 - alpha) * x[:, :, t]
        out.append(acc / (1 - alpha ** (t + 1)))
    return torch.stack(out, dim=2)


def summarizer64(alpha_fast, alpha_slow):
    return polar.TemporalSummarizer(alpha_fast, alpha_slow).to(F64)


def relative_gap(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.fixture(params=["compiled", "torch frame loop"], autouse=True)
def form(request, monkeypatch):
    """Every test runs through both forms: the compiled kernels (the CPU's) and the torch
    frame-by-frame pass (every other device's)."""
    monkeypatch.setattr(polar, "COMPILED", request.param == "compiled")
    return request.param


# (B, C, T, H, W): several features per frame; one frame; two features; one feature per frame
# with a number of rows (B C = 9) that the four-row kernel does not divide
CASES = [((2, 3, 40, 4, 5), 0.74, 0.95, 0), ((1, 2, 1, 3, 3), 0.5, 0.9, 1),
         ((3, 1, 97, 2, 1), 0.1, 0.99, 2), ((3, 3, 50, 1, 1), 0.8, 0.97, 3)]


@pytest.mark.parametrize("shape, fast, slow, seed", CASES)
def test_all_frames_match_the_document_loop_on_feature_maps(shape, fast, slow, seed):
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    summarizer = summarizer64(fast, slow)
    got_fast, got_slow = summarizer(x)
    assert got_fast.shape == shape and got_slow.shape == shape
    assert relative_gap(got_fast, frame_loop(x, summarizer.alpha_fast)) < 1e-10
    assert relative_gap(got_slow, frame_loop(x, summarizer.alpha_slow)) < 1e-10


@pytest.mark.parametrize("shape, fast, slow, seed", CASES)
def test_gradients_match_the_document_loop(shape, fast, slow, seed):
    g = torch.Generator().manual_seed(10 + seed)
    x = torch.randn(shape, dtype=F64, generator=g, requires_grad=True)
    weights = torch.randn(shape, dtype=F64, generator=g), torch.randn(shape, dtype=F64,
                                                                      generator=g)
    summarizer = summarizer64(fast, slow)
    leaves = [x, summarizer.alpha_fast_logit, summarizer.alpha_slow_logit]

    def loss(pair):
        return sum((out * w).sum() for out, w in zip(pair, weights))

    got = torch.autograd.grad(loss(summarizer(x)), leaves)
    expected = torch.autograd.grad(loss((frame_loop(x, summarizer.alpha_fast),
                                         frame_loop(x, summarizer.alpha_slow))), leaves)
    for a, b in zip(got, expected):
        # relative 1e-10; with one frame the alphas' gradients are exactly 0 (y[0] = x[0])
        assert (a - b).abs().max() <= 1e-10 * b.abs().max() + 1e-14



@pytest.mark.parametrize("shape, fast, slow, seed", CASES)
def test_alpha_gradients_on_a_fixed_input_match_the_document_loop(shape, fast, slow, seed):
    # x fixed (chapter 05 fits the alphas on fixed features): the compiled backward pass then
    # runs forward sensitivities instead of the adjoint; both averages, and one alone (ema)
    g = torch.Generator().manual_seed(20 + seed)
    x = torch.randn(shape, dtype=F64, generator=g)
    weights = torch.randn(shape, dtype=F64, generator=g), torch.randn(shape, dtype=F64,
                                                                      generator=g)
    summarizer = summarizer64(fast, slow)
    logits = [summarizer.alpha_fast_logit, summarizer.alpha_slow_logit]
    loops = [frame_loop(x, alpha) for alpha in (summarizer.alpha_fast, summarizer.alpha_slow)]
    got = torch.autograd.grad(sum((y * w).sum() for y, w in zip(summarizer(x), weights)),
                              logits)
    expected = torch.autograd.grad(sum((y * w).sum() for y, w in zip(loops, weights)), logits,
                                   retain_graph=True)
    alone = torch.autograd.grad((summarizer.ema(x, logits[1]) * weights[0]).sum(), logits[1])
    expected_alone = torch.autograd.grad((loops[1] * weights[0]).sum(), logits[1])
    for a, b in zip([*got, *alone], [*expected, *expected_alone]):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max() + 1e-14

def test_an_unused_average_contributes_no_gradient():
    x = torch.randn(2, 3, 30, 2, 2, dtype=F64, generator=torch.Generator().manual_seed(4),
                    requires_grad=True)
    summarizer = summarizer64(0.74, 0.95)
    fast, _ = summarizer(x)
    fast.sum().backward()
    expected = torch.autograd.grad(frame_loop(x, summarizer.alpha_fast).sum(), x)[0]
    assert relative_gap(x.grad, expected) < 1e-10
    assert summarizer.alpha_slow_logit.grad is None or summarizer.alpha_slow_logit.grad == 0


def test_two_frames_by_hand():
    # y[0] = x[0]; y[1] = (a (1 - a) x[0] + (1 - a) x[1]) / (1 - a^2) = (a x[0] + x[1]) / (1 + a)
    x = torch.tensor([[[[[2.0]], [[5.0]]]]], dtype=F64)  # (1, 1, 2, 1, 1)
    summarizer = summarizer64(0.5, 0.75)
    for got, alpha in zip(summarizer(x), (summarizer.alpha_fast, summarizer.alpha_slow)):
        a = alpha.item()  # the float32 logit's alpha, close to but not exactly 0.5 and 0.75
        assert got.flatten().tolist() == pytest.approx([2.0, (a * 2 + 5) / (1 + a)], rel=1e-12)


def test_the_adjoint_passes_gradcheck():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 2, 2, dtype=F64, generator=g, requires_grad=True)
    decays = torch.rand(2, 6, dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, a: polar._ExponentialAverages.apply(x, a, 2), (x, decays))
    features = torch.randn(3, 7, 4, dtype=F64, generator=g, requires_grad=True)
    summarizer = summarizer64(0.6, 0.9)
    assert torch.autograd.gradcheck(
        lambda x, lf, ls: summarizer(x), (features, summarizer.alpha_fast_logit,
                                          summarizer.alpha_slow_logit))


@pytest.mark.parametrize("shape", [(2, 3, 50, 4, 5), (4, 60, 6), (60, 3), (5, 60, 1)])
def test_last_frame_is_the_last_of_all_frames(shape):
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(6))
    summarizer = summarizer64(0.74, 0.95)
    time_axis = 2 if x.dim() == 5 else x.dim() - 2
    for last, every in zip(summarizer.last_frame(x), summarizer(x)):
        assert relative_gap(last, every.select(time_axis, -1)) < 1e-10


def test_last_frame_is_the_document_summary_rescaled():
    # The document keeps the final acc of its loop; hdlib divides it by 1 - alpha^T.
    x = torch.randn(2, 4, 120, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(7))
    summarizer = summarizer64(0.74, 0.95)
    for last, alpha in zip(summarizer.last_frame(x), (summarizer.alpha_fast,
                                                      summarizer.alpha_slow)):
        acc = torch.zeros_like(x[:, :, 0])
        for t in range(120):
            acc = alpha * acc + (1 - alpha) * x[:, :, t]
        assert relative_gap(last, acc / (1 - alpha ** 120)) < 1e-10


def test_last_frame_gradients_reach_the_alphas():
    x = torch.randn(3, 5, 4, dtype=F64, generator=torch.Generator().manual_seed(8),
                    requires_grad=True)
    summarizer = summarizer64(0.6, 0.9)
    assert torch.autograd.gradcheck(
        lambda x, lf, ls: summarizer.last_frame(x), (x, summarizer.alpha_fast_logit,
                                                     summarizer.alpha_slow_logit))


def test_the_compiled_adjoint_passes_gradcheck():
    g = torch.Generator().manual_seed(9)
    fast, slow = torch.randn(2, dtype=F64, generator=g, requires_grad=True).unbind()
    for shape in [(2, 3, 6, 2, 2), (5, 1, 6, 1, 1)]:
        x = torch.randn(shape, dtype=F64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda x, f, s: polar._CompiledAverages.apply(x, 2, f, s), (x, fast, slow))
        assert torch.autograd.gradcheck(  # one average
            lambda x, f: polar._CompiledAverages.apply(x, 2, f), (x, fast))
        assert torch.autograd.gradcheck(  # a fixed input: the alphas' sensitivities
            functools.partial(polar._CompiledAverages.apply, x.detach(), 2), (fast, slow))
        assert torch.autograd.gradcheck(
            lambda x, f, s: polar._CompiledWeightedSums.apply(x, 2, f, s), (x, fast, slow))


def test_vmap_and_vectorised_jacobians_see_the_same_averages(form):
    # torch.func cannot look into compiled kernels: batched calls take plain torch operations
    if form != "compiled":
        pytest.skip("the torch frame loop (other devices) writes in place: no vmap")
    g = torch.Generator().manual_seed(12)
    x = torch.randn(3, 2, 2, 7, 2, 1, dtype=F64, generator=g)  # a batch of feature maps
    summarizer = summarizer64(0.7, 0.9)
    batched = torch.func.vmap(summarizer)(x)
    for got, alpha in zip(batched, (summarizer.alpha_fast, summarizer.alpha_slow)):
        assert relative_gap(got, torch.stack([frame_loop(xi, alpha) for xi in x])) < 1e-10
    jacobian = torch.autograd.functional.jacobian(lambda v: summarizer(v)[1], x[0],
                                                  vectorize=True)
    expected = torch.autograd.functional.jacobian(
        lambda v: frame_loop(v, summarizer.alpha_slow), x[0])
    assert relative_gap(jacobian, expected) < 1e-10


@pytest.mark.parametrize("shape", [(4, 40, 60, 3, 3), (4, 40, 60, 1, 1)])
def test_compiled_results_do_not_depend_on_the_number_of_threads(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(11), requires_grad=True)
    summarizer = polar.TemporalSummarizer()
    logits = [summarizer.alpha_fast_logit, summarizer.alpha_slow_logit]
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fast, slow = summarizer(x)
            grads = torch.autograd.grad((fast * slow).sum(), [x, *logits])
            fixed = torch.autograd.grad(sum(y.sum() for y in summarizer(x.detach())), logits)
            results.append([fast, slow, *grads, *fixed])
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_the_kernels_leave_torch_thread_count_alone():
    # numba's OpenMP pool, started by the first kernel, shares torch's OpenMP runtime; in a
    # fresh process (where the pool has not started yet) torch must keep its one thread
    script = ("import torch; torch.set_num_threads(1); from hdlib.models import polar; "
              "polar.TemporalSummarizer()(torch.rand(2, 3, 10, 4, 4)); "
              "print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["1"]


def test_a_four_dimensional_input_is_refused():
    with pytest.raises(ValueError, match="x"):
        polar.TemporalSummarizer()(torch.rand(2, 3, 4, 5))


@pytest.mark.parametrize("logit", [-3.0, 0.3, 2.94, 5.0])
def test_closed_form_slopes_match_autograd(logit):
    # the compiled path's logit gradients use closed-form slopes of the decays and weights
    leaf = torch.tensor([logit], dtype=F64, requires_grad=True)
    T = 60
    for values, slopes in [
            (polar._bias_corrected_decays(leaf, T)[0],
             polar._bias_corrected_decay_slopes(leaf.detach(), T)[0]),
            (polar._last_frame_weights(leaf, T)[0],
             torch.from_numpy(polar._last_frame_table((logit, 0.0), T, F64)[1][0]))]:
        expected = torch.stack([torch.autograd.grad(v, leaf, retain_graph=True)[0][0]
                                for v in values])
        assert relative_gap(slopes, expected) < 1e-12


def test_the_alphas_train_under_torch_func():
    # torch.func over the alphas: the logits are wrapped, so the compiled kernels step aside
    summarizer = summarizer64(0.7, 0.9)
    x = torch.randn(2, 2, 9, 2, 1, dtype=F64, generator=torch.Generator().manual_seed(13))
    params = dict(summarizer.named_parameters())

    def loss(values):
        fast, slow = torch.func.functional_call(summarizer, values, (x,))
        return fast.square().sum() + slow.sum()

    got = torch.func.grad(loss)(params)
    expected = torch.autograd.grad(loss(params), list(params.values()))
    for a, b in zip(got.values(), expected):
        assert relative_gap(a, b) < 1e-10


def test_slopes_stay_finite_when_alpha_rounds_to_one():
    values = torch.tensor([40.0], dtype=F64)
    assert torch.isfinite(polar._bias_corrected_decay_slopes(values, 30)).all()
    _, slopes = polar._last_frame_table((40.0, 0.0), 30, F64)
    assert torch.isfinite(torch.from_numpy(slopes)).all()


@pytest.mark.parametrize("shape", [(2, 3, 20, 2, 2), (3, 3, 20, 1, 1)])
def test_frozen_alphas_pass_only_the_input_gradient(shape):
    # alphas as buffers: the adjoint skips their gradient; the input's must still match the loop
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(14),
                    requires_grad=True)
    summarizer = polar.TemporalSummarizer(0.6, 0.93, learnable_alphas=False).to(F64)
    weights = torch.rand(shape, dtype=F64, generator=torch.Generator().manual_seed(15))
    fast, slow = summarizer(x)
    got, = torch.autograd.grad((fast * weights + slow).sum(), x)
    expected, = torch.autograd.grad(
        (frame_loop(x, summarizer.alpha_fast) * weights
         + frame_loop(x, summarizer.alpha_slow)).sum(), x)
    assert relative_gap(got, expected) < 1e-10


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
    if scans._MADVISE is None or not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("transparent huge pages: Linux with THP enabled only")
    big = scans.new_like(torch.empty(scans.HUGE_PAGE_BYTES // 2, dtype=torch.float64))
    middle = big.data_ptr() + big.numel() * big.element_size() // 2
    assert "hg" in _vm_flags(middle)
    assert big.shape == (scans.HUGE_PAGE_BYTES // 2,) and big.dtype == torch.float64
    small = scans.new_like(torch.empty(3, 4))
    assert small.shape == (3, 4) and small.is_contiguous()
