"""Every loss of the book, and the metrics that judge a fit.

**Heading** (``activity (B, T, N)`` on the ring grid, true headings ``(B, T)``):
:func:`heading_loss` ``1 - cos(theta_hat - theta)``, one minus the cosine similarity between the
population vector ``sum_i r_i (cos theta_i, sin theta_i)`` and the true heading's unit vector;
:func:`bump_amplitude_loss` ``mean (A_t - A*)^2`` with ``A_t`` the population-vector length.

**Spike counts**: :func:`poisson_nll`, ``mu - k log mu`` per bin (``log k!`` dropped).

**Recorded populations** (the superior-colliculus fit):

Shapes: ``rates``/``target`` ``(K, T, N)`` spikes/s for ``K`` trials driven by the same inputs,
``mask (K, T)`` true on recorded bins, ``condition (K,)`` integer condition labels. Masked bins
never enter a loss (they are excluded, not zero-filled).

* ``L_neuron`` (PSTH): per condition and neuron, ``1 - corr(model PSTH, data PSTH)`` over time,
  plus ``0.1 * scale`` (squared log ratio of mean rates) and ``0.05 * variance`` (squared log
  ratio of the PSTHs' standard deviations over time).
* ``L_trial`` (single trials): each trial's population-average trajectory is smoothed over
  ``smooth_ms``; model and data trials are matched by entropic optimal transport (POT's
  log-domain Sinkhorn with uniform weights, regularisation ``epsilon`` relative to the mean cost)
  and the loss is the transport cost ``sum_ij P_ij D_ij`` with the plan held fixed (its
  gradient by the envelope theorem). ``D`` is the squared Euclidean distance between
  trajectories z-scored across trials, or the Poisson deviance
  ``sum_t model - target + target * log(target / model)`` (the document's
  ``model - target * log(model)`` plus terms that do not depend on the model).
"""
from __future__ import annotations

import math

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

from . import validate
from .circular import angle_grid, population_vector_length


# ---------------------------------------------------------------------------- heading
def heading_loss(activity: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos_sim(population vector, (cos theta, sin theta)))``: the vector's component
    along the true heading over its length (at least ``1e-8``, as in
    :func:`torch.nn.functional.cosine_similarity`)."""
    grid = angle_grid(activity.shape[-1], device=activity.device, dtype=activity.dtype)
    # one product with both basis vectors: its backward pass is one product too, where two
    # separate ones would write two gradients of the activity's size and add them
    vector = activity @ torch.stack([torch.cos(grid), torch.sin(grid)], dim=-1)
    along = vector[..., 0] * torch.cos(angles) + vector[..., 1] * torch.sin(angles)
    length = torch.linalg.vector_norm(vector, dim=-1).clamp_min(1e-8)
    return 1.0 - (along / length).mean()


def bump_amplitude_loss(activity: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """``mean((A_t - target)^2)`` with ``A_t`` the population-vector length of each state
    (:func:`hdlib.circular.population_vector_length`, whose gradient stays finite on a silent
    ring)."""
    return ((population_vector_length(activity) - target) ** 2).mean()


def poisson_nll(mean_counts: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
    """``mu - k log(mu + 1e-8)`` per bin for expected counts ``mu`` and observed counts ``k``
    (``log k!`` dropped), averaged (``'mean'``) or summed (``'sum'``) over the bins where
    ``mask`` (broadcast against the counts) is true."""
    reduction = validate.choice("reduction", reduction, ("mean", "sum"))
    nll = mean_counts - counts * torch.log(mean_counts + 1e-8)
    if mask is None:
        return nll.mean() if reduction == "mean" else nll.sum()
    w = mask.to(nll.dtype).expand_as(nll)
    total = (nll * w).sum()
    return total / w.sum().clamp(min=1) if reduction == "mean" else total


# ---------------------------------------------------------------------------- helpers
def psth(rates: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor, labels=None):
    """Per-condition PSTHs ``(C, T, N)`` averaged over recorded trials, their bin counts
    ``(C, T)``, and the condition labels (``labels``, or those present)."""
    labels = torch.unique(condition) if labels is None else labels
    onehot = (condition[None, :] == labels[:, None]).to(rates.dtype)  # (C, K)
    w = mask.to(rates.dtype)
    counts = onehot @ w  # (C, T)
    # sum_k onehot[c, k] mask[k, t] rates[k, t, n]: one matrix product over trials
    sums = onehot @ (rates * w[..., None]).reshape(rates.shape[0], -1)
    sums = sums.reshape(len(labels), *rates.shape[1:])
    return sums / counts.clamp(min=1)[..., None], counts, labels


def masked_correlation(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, dim: int = 1):
    """Pearson correlation along ``dim`` using only ``valid`` positions (broadcast)."""
    w = valid.float()
    n = w.sum(dim, keepdim=True).clamp(min=1)
    am = a - (a * w).sum(dim, keepdim=True) / n
    bm = b - (b * w).sum(dim, keepdim=True) / n
    cov = (am * bm * w).sum(dim)
    # The small offsets keep sqrt differentiable where a row has no variance (or no bins).
    norm_a = ((am.square() * w).sum(dim) + 1e-12).sqrt()
    norm_b = ((bm.square() * w).sum(dim) + 1e-12).sqrt()
    return cov / (norm_a * norm_b + 1e-8)


def smooth_temporal(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Box-car average over the last dimension, same length (edges use what is there)."""
    if kernel <= 1:
        return x
    flat = x.reshape(-1, 1, x.shape[-1])
    ones = torch.ones(1, 1, kernel, dtype=x.dtype) / kernel
    pad = kernel // 2
    num = torch.nn.functional.conv1d(flat, ones, padding=pad)[..., :x.shape[-1]]
    den = torch.nn.functional.conv1d(torch.ones_like(flat), ones, padding=pad)[..., :x.shape[-1]]
    return (num / den).reshape(x.shape)


# ---------------------------------------------------------------------------- losses
def compute_L_neuron(rates, target, mask, condition, min_trials: int = 2) -> torch.Tensor:
    """``1 - mean PSTH correlation + 0.1 * scale + 0.05 * variance`` (module docstring)."""
    model_psth, counts, _ = psth(rates, mask, condition)
    data_psth, _, _ = psth(target, mask, condition)
    valid = (counts >= min_trials)[..., None].expand_as(model_psth)
    used = valid.any(1)  # (C, N): conditions with enough trials somewhere
    corr = masked_correlation(model_psth, data_psth, valid)[used]
    w = valid.float()
    n = w.sum(1).clamp(min=1)
    mean_m, mean_d = (model_psth * w).sum(1) / n, (data_psth * w).sum(1) / n
    std_m = (((model_psth - mean_m[:, None]) ** 2 * w).sum(1) / n + 1e-12).sqrt()
    std_d = (((data_psth - mean_d[:, None]) ** 2 * w).sum(1) / n + 1e-12).sqrt()
    scale = torch.log((mean_m + 1e-3) / (mean_d + 1e-3))[used].square().mean()
    variance = torch.log((std_m + 1e-3) / (std_d + 1e-3))[used].square().mean()
    return 1 - corr.mean() + 0.1 * scale + 0.05 * variance


def compute_L_pooled(rates, target) -> torch.Tensor:
    """``1 - mean_n corr_t(m_n, d_n)``: one minus the published metric
    (:func:`pooled_psth_correlations`) as a differentiable loss. ``m``/``d`` are the PSTHs over
    all trials, conditions pooled, every bin included (the data are 0 after a trial's end)."""
    model_psth, data_psth = rates.mean(0), target.mean(0)  # (T, N)
    valid = torch.ones_like(model_psth, dtype=torch.bool)
    return 1 - masked_correlation(model_psth, data_psth, valid, dim=0).mean()


def compute_L_poisson(rates, target, mask, bin_size_ms: float = 25.0) -> torch.Tensor:
    """Poisson negative log-likelihood per recorded bin and neuron of the data's spike counts
    (``target * bin``) given the model's rates (``log k!`` dropped)."""
    dt = bin_size_ms / 1000
    return poisson_nll(rates * dt, target * dt, mask[..., None])


def compute_L_neuron_hybrid(rates, target, mask, condition, poisson_weight: float = 0.3,
                            bin_size_ms: float = 25.0) -> torch.Tensor:
    """``(1 - w) * L_neuron + w * L_poisson``."""
    w = validate.float_in("poisson_weight", poisson_weight, 0.0, 1.0)
    return ((1 - w) * compute_L_neuron(rates, target, mask, condition)
            + w * compute_L_poisson(rates, target, mask, bin_size_ms))


def trial_cost_matrix(rates, target, mask, *, smooth_ms: float = 100.0,
                      bin_size_ms: float = 25.0, distance: str = "euclidean") -> torch.Tensor:
    """``D[i, j]``: distance between model trial ``i`` and data trial ``j`` (mean over the data
    trial's recorded bins). The Euclidean distance z-scores each bin across the data trials;
    a bin's spread is floored at the mean spread of the bins with at least 3 recorded trials,
    so that a bin recorded in one or two trials (spread ~0) cannot dominate the cost."""
    distance = validate.choice("distance", distance, ("euclidean", "poisson"))
    kernel = max(1, int(round(smooth_ms / bin_size_ms)))
    w = mask.float()
    model_pop = smooth_temporal(rates.mean(-1) * w, kernel)  # (K, T)
    data_pop = smooth_temporal(target.mean(-1) * w, kernel)
    # Both distances are sums over the data trial's recorded bins of terms that separate into
    # model-only and data-only factors, so each is a few (K, T) x (T, K) matrix products.
    if distance == "euclidean":
        n = w.sum(0).clamp(min=1)
        mu = (data_pop * w).sum(0) / n
        sd = (((data_pop - mu) ** 2 * w).sum(0) / n).sqrt()
        well = (w.sum(0) >= 3).to(sd.dtype)
        floor = (sd * well).sum() / well.sum().clamp(min=1)
        sd = torch.maximum(sd, floor) + 1e-3
        a, b = (model_pop - mu) / sd, (data_pop - mu) / sd  # z-scored across trials
        cost = a.square() @ w.T - 2 * a @ (w * b).T + (w * b.square()).sum(1)[None]
    else:
        m = model_pop.clamp(min=1e-3)
        d = data_pop.clamp(min=0)
        cost = m @ w.T - torch.log(m) @ (w * d).T + (w * (torch.xlogy(d, d) - d)).sum(1)[None]
    return cost / w.sum(-1).clamp(min=1)[None]


def compute_L_trial(rates, target, mask, *, smooth_ms: float = 100.0, bin_size_ms: float = 25.0,
                    distance: str = "euclidean", epsilon: float = 0.1,
                    return_plan: bool = False):
    """Optimal-transport trial matching (module docstring). POT's log-domain Sinkhorn runs on
    ``D' = (D - min D) / mean(D - min D)`` in the rates' precision, until the column marginals
    are within ``1e-6`` (at most 500 iterations). Returns the loss (and the plan)."""
    epsilon = validate.positive_float("epsilon", epsilon)
    cost = trial_cost_matrix(rates, target, mask, smooth_ms=smooth_ms, bin_size_ms=bin_size_ms,
                             distance=distance)
    K = cost.shape[0]
    scaled = cost.detach()
    scaled = scaled - scaled.min()
    scaled = scaled / scaled.mean().clamp(min=1e-12)
    uniform = torch.full((K,), 1.0 / K, dtype=scaled.dtype)
    plan = ot.sinkhorn(uniform, uniform, scaled, reg=epsilon, method="sinkhorn_log",
                       numItermax=500, stopThr=1e-6, warn=False)
    loss = (plan * cost).sum()
    return (loss, plan) if return_plan else loss


def balanced_weight(L_neuron, L_trial, parameters, ltrial_scale: float = 0.5) -> float:
    """Weight ``c`` for ``L_neuron + c * L_trial`` such that ``||grad(c L_trial)|| =
    ltrial_scale * ||grad L_neuron||`` over ``parameters`` (gradient balancing)."""
    params = [p for p in parameters if p.requires_grad]
    g_n = torch.autograd.grad(L_neuron, params, retain_graph=True, allow_unused=True)
    g_t = torch.autograd.grad(L_trial, params, retain_graph=True, allow_unused=True)
    norm = lambda gs: math.sqrt(sum(g.square().sum().item() for g in gs if g is not None))  # noqa
    n_n, n_t = norm(g_n), norm(g_t)
    return 0.0 if n_t == 0 else ltrial_scale * n_n / n_t


def compute_activity_regularization(rates, mask, target_mean: float = 10.0,
                                    target_max: float = 100.0, lambda_mean: float = 0.01,
                                    lambda_max: float = 0.001) -> torch.Tensor:
    """``lambda_mean ((mean rate - target_mean) / target_mean)^2 + lambda_max *
    mean(relu(rate - target_max)^2) / target_max^2`` over recorded bins."""
    w = mask[..., None].float().expand_as(rates)
    mean = (rates * w).sum() / w.sum()
    over = (torch.relu(rates - target_max).square() * w).sum() / w.sum()
    return (lambda_mean * ((mean - target_mean) / target_mean) ** 2
            + lambda_max * over / target_max ** 2)


def compute_L_reg(model, lambda_reg: float = 1e-4) -> torch.Tensor:
    """``lambda_reg * (||W_rec||^2 + ||W_in||^2)``."""
    return lambda_reg * (model.W_rec.square().sum() + model.W_in.square().sum())


# ---------------------------------------------------------------------------- metrics
@torch.no_grad()
def psth_correlation(rates, target, mask, condition, min_trials: int = 2) -> float:
    """Mean over conditions and neurons of the PSTH correlation (the validation metric)."""
    model_psth, counts, _ = psth(rates, mask, condition)
    data_psth, _, _ = psth(target, mask, condition)
    valid = (counts >= min_trials)[..., None].expand_as(model_psth)
    corr = masked_correlation(model_psth, data_psth, valid)
    return corr[valid.any(1)].mean().item()


@torch.no_grad()
def pooled_psth_correlations(rates, target) -> torch.Tensor:
    """Per-unit correlation of the published pipeline's metric, ``(N,)``.

    Conditions are pooled: the PSTH of unit ``n`` is its mean over *all* trials,
    ``m_n(t) = (1/K) sum_k rates[k, t, n]`` and ``d_n(t) = (1/K) sum_k target[k, t, n]``,
    with every bin included (the data are 0 after a trial's end, the model's rates are whatever
    it produces from the zero inputs there). The value for unit ``n`` is the Pearson correlation
    of ``m_n`` and ``d_n`` over all ``T`` bins; a unit whose PSTH is constant gives NaN.
    The rates must come from the model with its noise on (see :func:`hdlib.fitters.sc_fit
    .evaluate`), as the published figure was measured.
    """
    model_psth = rates.double().mean(0)  # (T, N)
    data_psth = target.double().mean(0)
    a = model_psth - model_psth.mean(0)
    b = data_psth - data_psth.mean(0)
    return ((a * b).sum(0) / (a.square().sum(0) * b.square().sum(0)).sqrt()).float()


@torch.no_grad()
def psth_corr_pooled(rates, target) -> float:
    """The published SC metric: the mean over units of :func:`pooled_psth_correlations`
    (conditions pooled, padded bins included, Pearson over bins per unit); units with a constant
    PSTH (NaN) are left out of the mean."""
    values = pooled_psth_correlations(rates, target)
    return values[~values.isnan()].mean().item()


@torch.no_grad()
def stratified_half(condition, rng: np.random.Generator) -> torch.Tensor:
    """A random half of the trials of every condition: a boolean mask over trials, ``True`` for
    ``floor(n_c / 2)`` of the ``n_c`` trials of each condition ``c``."""
    cond = condition.numpy()
    half = np.zeros(len(cond), dtype=bool)
    for c in np.unique(cond):
        trials = rng.permutation(np.flatnonzero(cond == c))
        half[trials[: len(trials) // 2]] = True
    return torch.as_tensor(half)


def split_half_ceiling(target, mask, condition, n_splits: int = 20, seed: int = 0) -> dict:
    """The best PSTH correlation a noise-free model can reach on these trials.

    ``raw``: PSTH correlation between random halves of each condition's trials, ``r``.
    ``reliability``: its Spearman-Brown correction to the full trial count, ``2r / (1 + r)``,
    the expected correlation between two full-size PSTHs. ``ceiling``: ``sqrt(reliability)``,
    the expected correlation of the noise-free PSTH with one full-size data PSTH (with
    ``D = S + e``, ``corr(S, D) = sqrt(var S / var D)``).
    """
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_splits):
        half = stratified_half(condition, rng)
        labels = torch.unique(condition)
        a, counts_a, _ = psth(target[half], mask[half], condition[half], labels)
        b, counts_b, _ = psth(target[~half], mask[~half], condition[~half], labels)
        valid = ((counts_a >= 1) & (counts_b >= 1))[..., None].expand_as(a)
        values.append(masked_correlation(a, b, valid)[valid.any(1)].mean().item())
    r = float(np.mean(values))
    reliability = 2 * r / (1 + r)
    return {"raw": r, "reliability": reliability, "ceiling": math.sqrt(max(reliability, 0.0))}


@torch.no_grad()
def single_trial_correlation(rates, target, mask, condition, smooth_ms: float = 100.0,
                             bin_size_ms: float = 25.0) -> float:
    """Within each condition, match model and data trials one-to-one (Hungarian assignment on
    the Euclidean trial cost) and average the correlation of matched smoothed population
    trajectories over recorded bins."""
    kernel = max(1, int(round(smooth_ms / bin_size_ms)))
    w = mask.float()
    model_pop = smooth_temporal(rates.mean(-1) * w, kernel)
    data_pop = smooth_temporal(target.mean(-1) * w, kernel)
    values = []
    for c in torch.unique(condition):
        idx = torch.nonzero(condition == c).flatten()
        if len(idx) < 2:
            continue
        cost = trial_cost_matrix(rates[idx], target[idx], mask[idx], smooth_ms=smooth_ms,
                                 bin_size_ms=bin_size_ms)
        rows, cols = linear_sum_assignment(cost.numpy())
        i, j = idx[rows], idx[cols]
        values.append(masked_correlation(model_pop[i], data_pop[j], mask[j], dim=1))
    return torch.cat(values).mean().item()


@torch.no_grad()
def rates_in_range(rates, mask, low: float = 1.0, high: float = 50.0) -> float:
    """Fraction of units whose mean rate over recorded bins lies in [low, high] spikes/s."""
    w = mask[..., None].float()
    mean = (rates * w).sum((0, 1)) / w.sum((0, 1))
    return ((mean >= low) & (mean <= high)).float().mean().item()
