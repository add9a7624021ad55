"""The losses of the superior-colliculus fit and the metrics that judge it (hdlib.losses)."""
import math

import ot
import pytest
import torch

from hdlib import losses as fl
from hdlib.models import eirnn


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_psth_is_the_mean_over_recorded_trials_of_each_condition():
    g = generator()
    rates = torch.rand(7, 5, 3, generator=g)
    mask = torch.rand(7, 5, generator=g) > 0.3
    condition = torch.tensor([2, 0, 2, 2, 0, 5, 0])
    psth, counts, labels = fl.psth(rates, mask, condition)
    assert labels.tolist() == [0, 2, 5]
    for c, label in enumerate(labels):
        for t in range(5):
            trials = [k for k in range(7) if condition[k] == label and mask[k, t]]
            assert counts[c, t] == len(trials)
            expected = rates[trials, t].mean(0) if trials else torch.zeros(3)
            torch.testing.assert_close(psth[c, t], expected)


def test_l_neuron_is_zero_minus_terms_for_a_perfect_psth(session):
    batch = session.trials(session.train_idx)
    loss = fl.compute_L_neuron(batch["rates"], batch["rates"], batch["mask"], batch["condition"])
    assert loss.item() == pytest.approx(0.0, abs=1e-4)
    shuffled = batch["rates"][torch.randperm(len(batch["rates"]), generator=generator())]
    worse = fl.compute_L_neuron(shuffled, batch["rates"], batch["mask"], batch["condition"])
    assert worse > loss + 0.1


def test_masked_bins_never_reach_the_losses(session):
    batch = session.trials(session.train_idx[:30])
    rates = torch.rand(batch["rates"].shape, generator=generator()) * 20 + 1
    poisoned = batch["rates"].clone()
    poisoned[~batch["mask"]] = float("nan")
    poisoned_rates = rates.clone().requires_grad_()
    for loss in [fl.compute_L_neuron(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"],
                                     batch["condition"]),
                 fl.compute_L_trial(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"]),
                 fl.compute_L_poisson(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"])]:
        assert torch.isfinite(loss)
    # A small batch leaves some conditions with too few trials: gradients stay finite.
    loss = fl.compute_L_neuron(poisoned_rates, torch.nan_to_num(poisoned), batch["mask"],
                               batch["condition"])
    (grad,) = torch.autograd.grad(loss, poisoned_rates)
    assert torch.isfinite(grad).all()
    # Values in masked bins do not change any loss.
    other = rates.clone()
    other[~batch["mask"]] = 1e4
    for fn in (fl.compute_L_trial, fl.compute_L_poisson):
        assert fn(rates, batch["rates"], batch["mask"]).item() == pytest.approx(
            fn(other, batch["rates"], batch["mask"]).item(), rel=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "poisson"])
def test_trial_matching_finds_the_permutation(session, distance):
    batch = session.trials(session.train_idx[:40])
    target = batch["rates"]
    perm = torch.randperm(40, generator=generator())
    loss, plan = fl.compute_L_trial(target[perm], target, batch["mask"][perm] | True,
                                    distance=distance, epsilon=0.01, return_plan=True)
    assert (plan.argmax(1) == perm).float().mean() > 0.9
    uniform = torch.full((40,), 1 / 40)
    torch.testing.assert_close(plan.sum(1), uniform, atol=1e-4, rtol=0)


@pytest.mark.parametrize("distance", ["euclidean", "poisson"])
def test_single_precision_plan_matches_a_double_precision_solve(session, distance):
    batch = session.trials(session.train_idx[:40])
    rates = torch.rand(batch["rates"].shape, generator=generator()) * 20 + 1
    loss, plan = fl.compute_L_trial(rates, batch["rates"], batch["mask"], distance=distance,
                                    return_plan=True)
    cost = fl.trial_cost_matrix(rates, batch["rates"], batch["mask"], distance=distance).double()
    cost = (cost - cost.min()) / (cost - cost.min()).mean()
    uniform = torch.full((40,), 1 / 40, dtype=torch.float64)
    reference = ot.sinkhorn(uniform, uniform, cost, reg=0.1, method="sinkhorn_log",
                            numItermax=500, stopThr=1e-6, warn=False)
    assert plan.dtype == torch.float32
    torch.testing.assert_close(plan.double(), reference, atol=1e-6, rtol=1e-4)


def test_cost_matrix_matches_the_direct_sum(session):
    batch = session.trials(session.train_idx[:12])
    rates = torch.rand(batch["rates"].shape, generator=generator()) * 10 + 1
    for distance in ("euclidean", "poisson"):
        fast = fl.trial_cost_matrix(rates, batch["rates"], batch["mask"], distance=distance)
        w = batch["mask"].float()
        m = fl.smooth_temporal(rates.mean(-1) * w, 4)
        d = fl.smooth_temporal(batch["rates"].mean(-1) * w, 4)
        if distance == "euclidean":
            n = w.sum(0).clamp(min=1)
            mu = (d * w).sum(0) / n
            sd = (((d - mu) ** 2 * w).sum(0) / n).sqrt()
            well = w.sum(0) >= 3  # bins of fewer trials take the mean spread of these
            sd = torch.clamp(sd, min=float(sd[well].mean())) + 1e-3
            term = ((m[:, None] - mu) / sd - ((d - mu) / sd)[None]) ** 2
        else:
            mm, dd = m.clamp(min=1e-3)[:, None], d.clamp(min=0)[None]
            term = mm - dd + torch.xlogy(dd, dd) - dd * torch.log(mm)
        slow = (term * w[None]).sum(-1) / w.sum(-1)[None]
        torch.testing.assert_close(fast, slow, atol=1e-3, rtol=1e-4)


def test_gradient_balancing_sets_the_ratio(session):
    model = eirnn.EIRNN(session.is_excitatory, 14)
    batch = session.trials(session.train_idx[:40])
    rates = model(batch["inputs"], generator=generator())
    L_n = fl.compute_L_neuron(rates, batch["rates"], batch["mask"], batch["condition"])
    L_t = fl.compute_L_trial(rates, batch["rates"], batch["mask"])
    c = fl.balanced_weight(L_n, L_t, model.parameters(), ltrial_scale=0.5)
    params = list(model.parameters())
    norm = lambda loss: torch.cat([g.flatten() for g in torch.autograd.grad(  # noqa: E731
        loss, params, retain_graph=True)]).norm()
    assert (norm(c * L_t) / norm(L_n)).item() == pytest.approx(0.5, rel=1e-3)


def test_split_half_ceiling_of_noise_free_data_is_one(session):
    batch = session.trials(session.train_idx)
    clean = batch["rates"].mean(0, keepdim=True).expand_as(batch["rates"])
    result = fl.split_half_ceiling(clean, batch["mask"], batch["condition"], n_splits=3)
    assert result["ceiling"] == pytest.approx(1.0, abs=1e-3)


def test_pooled_psth_correlation_on_a_hand_made_case():
    # 2 trials x 3 bins x 3 units. Trial 2 ended after bin 2: its data are 0 in bin 3 (as the
    # loader leaves padded bins), while the model keeps producing rates there.
    rates = torch.tensor([[[1.0, 3.0, 5.0], [2.0, 2.0, 5.0], [3.0, 1.0, 5.0]],
                          [[1.0, 5.0, 5.0], [2.0, 2.0, 5.0], [5.0, 1.0, 5.0]]])
    target = torch.tensor([[[2.0, 2.0, 1.0], [4.0, 4.0, 2.0], [6.0, 6.0, 3.0]],
                           [[2.0, 2.0, 1.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]]])
    # unit 0: model PSTH (1, 2, 4), data PSTH (2, 3, 3): centred (-4/3, -1/3, 5/3) and
    # (-2/3, 1/3, 1/3); covariance 4/3, squared norms 42/9 and 6/9 -> r = 12 / sqrt(252).
    # unit 1: model (4, 2, 1), centred (5/3, -1/3, -4/3): covariance -5/3 -> r = -15 / sqrt(252).
    # unit 2: constant model PSTH -> NaN, left out of the mean.
    per_unit = fl.pooled_psth_correlations(rates, target)
    r0, r1 = 12 / 252 ** 0.5, -15 / 252 ** 0.5
    assert per_unit[0].item() == pytest.approx(r0, rel=1e-6)
    assert per_unit[1].item() == pytest.approx(r1, rel=1e-6)
    assert per_unit[2].isnan()
    expected = (r0 + r1) / 2
    assert fl.psth_corr_pooled(rates, target) == pytest.approx(expected, rel=1e-6)
    # conditions play no part and padded bins count: masking bin 3 of trial 2 (the book's
    # per-condition metric) gives a different value for unit 0
    masked = fl.psth_correlation(rates[..., :1], target[..., :1],
                                 torch.tensor([[True] * 3, [True, True, False]]),
                                 torch.tensor([0, 0]))
    assert masked != pytest.approx(r0, abs=1e-3)


def test_bump_amplitude_loss_is_finite_and_exact_on_a_silent_ring():
    # A silent ring has length 0, so the loss is target^2 = 4 for target 2; the plain length
    # (torch.hypot) would give a NaN gradient there and poison every weight of the batch.
    activity = torch.zeros(3, 5, 12, requires_grad=True)
    loss = fl.bump_amplitude_loss(activity, target=2.0)
    loss.backward()
    assert loss.item() == pytest.approx(4.0)
    assert torch.isfinite(activity.grad).all()


def test_bump_amplitude_loss_matches_the_cosine_bump_by_hand():
    # r_i = 1 + cos(theta_i - 0.3) on N = 8: sum_i r_i e^{i theta_i} = (N / 2) e^{0.3 i}, so
    # the length is (2 / N) * (N / 2) = 1 and the loss against target 0.25 is 0.75^2.
    theta = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    activity = (1 + torch.cos(theta - 0.3)).expand(2, 4, 8)
    loss = fl.bump_amplitude_loss(activity, target=0.25)
    assert loss.item() == pytest.approx(0.75 ** 2, rel=1e-12)


def test_heading_loss_is_one_minus_the_cosine_of_the_decoding_error():
    # independent route: the population vector's angle by atan2, then 1 - cos(error)
    g = torch.Generator().manual_seed(0)
    activity = torch.rand(3, 5, 24, dtype=torch.float64, generator=g)
    angles = 6.0 * torch.rand(3, 5, dtype=torch.float64, generator=g)
    grid = 2 * math.pi * torch.arange(24, dtype=torch.float64) / 24
    decoded = torch.atan2(activity @ torch.sin(grid), activity @ torch.cos(grid))
    expected = (1 - torch.cos(decoded - angles)).mean()
    assert fl.heading_loss(activity, angles).item() == pytest.approx(expected.item(), rel=1e-12)


def test_heading_loss_of_a_silent_ring_is_one_with_a_finite_gradient():
    activity = torch.zeros(2, 3, 12, requires_grad=True)
    loss = fl.heading_loss(activity, torch.ones(2, 3))
    loss.backward()
    assert loss.item() == 1.0
    assert torch.isfinite(activity.grad).all()
