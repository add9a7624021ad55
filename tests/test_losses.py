"""The losses of the superior-colliculus fit and the metrics that judge it (hdlib.losses)."""
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
            sd = (((d - mu) ** 2 * w).sum(0) / n).sqrt() + 1e-3
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
