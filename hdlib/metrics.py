"""Held-out scores of a model of a recorded population, each beside what it must beat.

Shapes: predicted ``rates`` and recorded ``target`` are ``(K, T, N)`` spikes/s on ``K``
held-out trials, ``mask (K, T)`` is true on recorded bins, ``condition (K,)`` labels the
trials. Only recorded bins enter any score. Bins are ``dt`` seconds wide, so the recorded spike
count of a bin is ``y = target * dt`` and the predicted mean count ``mu = rates * dt``.

**Bits per spike** (:func:`bits_per_spike`). The Poisson log-likelihood of the counts under the
prediction, minus that under each neuron's mean training rate ``rbar_n``, per spike, in bits:

    BPS_n = [sum_kt (y log mu - mu) - sum_kt (y log(rbar_n dt) - rbar_n dt)] / (ln 2 sum_kt y)

(``log y!`` cancels). Positive means the prediction beats a constant rate. Predicted rates are
floored at :data:`RATE_FLOOR` so that a zero prediction costs a finite amount.

**PSTH shape** (:func:`psth_scores`). For every condition ``c`` and neuron ``n`` the held-out
PSTH ``d_cn(t)`` (mean over the trials recorded at ``t``) and the predicted one ``m_cn(t)``,
both smoothed with a Gaussian of ``smooth_ms`` (sd; 0 = raw) over recorded bins, are compared
over the bins with at least ``min_trials`` recorded trials: Pearson ``r``, averaged over
``(c, n)`` pairs, and ``R^2 = 1 - sum_cn sum_t (d - m)^2 / sum_cn sum_t (d - dbar_cn)^2``, the
sums of squares pooled over pairs (a mean of per-pair ``R^2`` would be ruled by nearly flat
PSTHs, whose small variance turns any offset into a large negative value).

**Noise ceiling** (:func:`noise_ceiling`). A noise-free perfect predictor ``S`` still misses
the held-out PSTH ``D = S + e``. Split each condition's trials in two random halves of equal
size ``h``, correlate the halves' PSTHs (``r_h``, per pair, averaged over splits), correct to
the condition's ``n`` trials (Spearman-Brown with ``k = n / h``,
``rel = k r_h / (1 + (k - 1) r_h)``, clipped to [0, 1]): the expected ``R^2`` of ``S`` is
``rel`` (pooled over pairs with the weights ``sum_t (d - dbar)^2`` of the ``R^2`` above) and
its expected ``r`` is ``sqrt(rel)``, averaged over pairs as the scores are.

**Single trials** (:func:`single_trial_scores`): the held-out trial-matching cost of the
document's ``L_trial`` (optimal transport between model and recorded trials,
:func:`hdlib.losses.compute_L_trial`) and the correlation of one-to-one matched trials
(:func:`hdlib.losses.single_trial_correlation`), each beside the value reached when the model is
replaced by recorded *training* trials of the same conditions (:func:`resampled_trials`; scored
on the bins recorded in both trials). That reference is weak: a smooth prediction correlates
better with a noisy trial than another noisy trial does.

**Selectivity** (:func:`selectivity`). For a factor with levels ``l``, a neuron's selectivity
for level ``l`` is the normalised difference ``(a - b) / (a + b)`` of its mean rate in an
epoch of each trial (for the SC task, a fixed window after target onset) on trials of level
``l`` (``a``) and of the other levels (``b``); a two-level factor uses its higher level only.
:func:`selectivity_match` correlates recorded and predicted selectivity across neurons
(averaged over levels); :func:`selectivity_reliability` is the split-half reliability of the
recorded one (Spearman-Brown corrected, clipped to [0, 1]).

**The published metric** (:func:`hdlib.losses.psth_corr_pooled`) is reported as a column,
beside the score of :func:`trial_end_predictor` that games it; no verdict rests on it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import losses as fl
from . import validate

#: Predicted rates below this (spikes/s) are raised to it before a log-likelihood.
RATE_FLOOR = 0.01
#: Gaussian smoothing (sd, ms) of the "smoothed" PSTH scores.
SMOOTH_MS = 50.0
#: Factors of the task whose selectivity is compared (trial label -> short name).
FACTORS = {"trial_reward": "reward", "trial_probability": "probability",
           "trial_identity": "identity", "trial_salience": "salience",
           "trial_location": "location"}


# ---------------------------------------------------------------------------- likelihood
def poisson_log_likelihood(rates, target, mask, dt: float) -> torch.Tensor:
    """Per neuron ``sum_kt y log mu - mu`` over recorded bins (``log y!`` left out), ``(N,)``."""
    mu = rates.double().clamp(min=RATE_FLOOR) * dt
    y = target.double() * dt
    w = mask.double()[..., None]
    return ((y * mu.log() - mu) * w).sum((0, 1))


def bits_per_spike(rates, target, mask, mean_rate, dt: float) -> dict:
    """Held-out bits per spike over each neuron's mean training rate ``mean_rate (N,)``: per
    neuron (``per_neuron``, NaN for a silent neuron) and pooled over neurons (``pooled``: the
    summed gain over the summed spike count)."""
    constant = torch.as_tensor(mean_rate, dtype=torch.float64).expand(target.shape)
    gain = (poisson_log_likelihood(rates, target, mask, dt)
            - poisson_log_likelihood(constant, target, mask, dt))
    spikes = (target.double() * dt * mask.double()[..., None]).sum((0, 1))
    per_neuron = torch.where(spikes > 0, gain / (math.log(2) * spikes.clamp(min=1e-12)),
                             torch.nan)
    return {"per_neuron": per_neuron,
            "pooled": float(gain.sum() / (math.log(2) * spikes.sum().clamp(min=1e-12)))}


def mean_rates(target, mask) -> torch.Tensor:
    """Each neuron's mean rate over recorded bins, ``(N,)``."""
    w = mask.double()[..., None]
    return (target.double() * w).sum((0, 1)) / w.sum((0, 1)).clamp(min=1)


# ---------------------------------------------------------------------------- PSTH shape
def gaussian_smooth(x: torch.Tensor, valid: torch.Tensor, smooth_ms: float,
                    bin_size_ms: float) -> torch.Tensor:
    """Gaussian smoothing (sd ``smooth_ms``) along dim 1 of ``x (C, T, N)`` using only the bins
    where ``valid (C, T)`` is true (normalised convolution); ``smooth_ms = 0`` returns ``x``."""
    if smooth_ms <= 0:
        return x
    sd = smooth_ms / bin_size_ms
    half = int(math.ceil(3 * sd))
    offsets = torch.arange(-half, half + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sd) ** 2)[None, None]
    C, T, N = x.shape
    w = valid.to(x.dtype)
    flat = (x * w[..., None]).permute(0, 2, 1).reshape(C * N, 1, T)
    num = torch.nn.functional.conv1d(flat, kernel, padding=half).reshape(C, N, T).permute(0, 2, 1)
    den = torch.nn.functional.conv1d(w[:, None], kernel, padding=half)[:, 0]
    return num / den.clamp(min=1e-12)[..., None]


def _pair_scores(model_psth, data_psth, valid):
    """Pearson ``r``, residual and total sums of squares of every (condition, neuron) pair over
    ``valid`` bins; pairs with fewer than three valid bins (or a flat PSTH) are NaN."""
    w = valid.to(data_psth.dtype)[..., None].expand_as(data_psth)
    n = w.sum(1)
    d_mean = (data_psth * w).sum(1) / n.clamp(min=1)
    ss_tot = ((data_psth - d_mean[:, None]) ** 2 * w).sum(1)
    ss_res = ((data_psth - model_psth) ** 2 * w).sum(1)
    r = fl.masked_correlation(model_psth, data_psth, w.bool())
    ok = (n >= 3) & (ss_tot > 0)
    nan = torch.tensor(torch.nan, dtype=ss_tot.dtype)
    return (torch.where(ok, r, nan), torch.where(ok, ss_res, nan), torch.where(ok, ss_tot, nan))


def condition_psths(rates, mask, condition, labels, smooth_ms: float, bin_size_ms: float,
                    min_trials: int = 2):
    """PSTHs ``(C, T, N)`` of ``labels``' conditions, smoothed, and the bins ``(C, T)`` where at
    least ``min_trials`` trials are recorded."""
    psth, counts, _ = fl.psth(rates.double(), mask, condition, labels)
    valid = counts >= min_trials
    return gaussian_smooth(psth, valid, smooth_ms, bin_size_ms), valid


def _weighted_r2(ss_res, ss_tot) -> float:
    ok = ~(ss_res.isnan() | ss_tot.isnan())
    return float(1 - ss_res[ok].sum() / ss_tot[ok].sum().clamp(min=1e-12))


def psth_scores(rates, target, mask, condition, bin_size_ms: float, smooth_ms: float = 0.0,
                min_trials: int = 2) -> dict:
    """Per-condition PSTH ``r`` (mean over pairs) and ``R^2`` (over all pairs' sums of squares,
    module docstring), and the per-neuron mean ``r`` (``r_per_neuron``)."""
    labels = torch.unique(condition)
    data, valid = condition_psths(target, mask, condition, labels, smooth_ms, bin_size_ms,
                                  min_trials)
    model, _ = condition_psths(rates, mask, condition, labels, smooth_ms, bin_size_ms, min_trials)
    r, ss_res, ss_tot = _pair_scores(model, data, valid)
    return {"r": float(r.nanmean()), "r2": _weighted_r2(ss_res, ss_tot),
            "r_per_neuron": r.nanmean(0)}


def _equal_halves(condition, rng):
    """Two disjoint halves of ``h_c = floor(n_c / 2)`` trials of every condition (one trial of an
    odd-sized condition left out), and ``k_c = n_c / h_c`` per trial-condition label order."""
    cond = condition.numpy()
    first, second = np.zeros(len(cond), bool), np.zeros(len(cond), bool)
    ratio = []
    for c in np.unique(cond):
        trials = rng.permutation(np.flatnonzero(cond == c))
        h = len(trials) // 2
        first[trials[:h]], second[trials[h:2 * h]] = True, True
        ratio.append(len(trials) / h if h else np.nan)
    return torch.as_tensor(first), torch.as_tensor(second), torch.as_tensor(ratio)


def noise_ceiling(target, mask, condition, bin_size_ms: float, smooth_ms: float = 0.0,
                  n_splits: int = 20, seed: int = 0) -> dict:
    """The ``r`` and ``R^2`` a noise-free perfect predictor is expected to reach against these
    trials' PSTHs (module docstring), and the raw split-half ``r``. Each condition's trials are
    halved into two equal halves of ``h = floor(n/2)`` (only bins recorded in both count), and
    the split-half ``r`` is corrected to the ``n`` trials of the full PSTH by Spearman-Brown
    with ``k = n / h``: ``rel = k r / (1 + (k - 1) r)``."""
    rng = np.random.default_rng(validate.non_negative_int("seed", seed))
    labels = torch.unique(condition)
    r_half = []
    for _ in range(validate.positive_int("n_splits", n_splits)):
        one, two, ratio = _equal_halves(condition, rng)
        a, valid_a = condition_psths(target[one], mask[one], condition[one], labels,
                                     smooth_ms, bin_size_ms, min_trials=1)
        b, valid_b = condition_psths(target[two], mask[two], condition[two], labels,
                                     smooth_ms, bin_size_ms, min_trials=1)
        r_half.append(_pair_scores(a, b, valid_a & valid_b)[0])
    r = torch.stack(r_half).nanmean(0)  # (C, N)
    k = ratio.to(r.dtype)[:, None]
    reliability = (k * r / (1 + (k - 1) * r)).clamp(0, 1)
    data, valid = condition_psths(target, mask, condition, labels, smooth_ms, bin_size_ms)
    _, _, ss_tot = _pair_scores(data, data, valid)
    ok = ~(reliability.isnan() | ss_tot.isnan())
    r2 = float((reliability[ok] * ss_tot[ok]).sum() / ss_tot[ok].sum().clamp(min=1e-12))
    return {"r": float(reliability.sqrt().nanmean()), "r2": r2,
            "split_half_r": float(r.nanmean())}


# ---------------------------------------------------------------------------- single trials
def resampled_trials(condition, reference_condition, seed: int = 0) -> torch.Tensor:
    """For every trial, the index of a random trial of the same condition in the reference set
    (e.g. the training trials); a condition absent there draws from all of them."""
    rng = np.random.default_rng(seed)
    cond, ref = condition.numpy(), reference_condition.numpy()
    picks = np.empty(len(cond), dtype=int)
    for c in np.unique(cond):
        pool = np.flatnonzero(ref == c)
        pool = pool if len(pool) else np.arange(len(ref))
        where = np.flatnonzero(cond == c)
        picks[where] = rng.choice(pool, size=len(where))
    return torch.as_tensor(picks)


def single_trial_scores(rates, target, mask, condition, bin_size_ms: float) -> dict:
    """Held-out ``L_trial`` (lower is better) and matched single-trial correlation."""
    return {"L_trial": float(fl.compute_L_trial(rates.float(), target.float(), mask,
                                                bin_size_ms=bin_size_ms)),
            "single_trial_r": fl.single_trial_correlation(rates, target, mask, condition,
                                                          bin_size_ms=bin_size_ms)}


# ---------------------------------------------------------------------------- selectivity
def epoch_rates(rates, epoch) -> torch.Tensor:
    """Each trial's mean rate over its ``epoch (K, T)`` bins, ``(K, N)`` (0 for an empty
    epoch)."""
    w = epoch.double()[..., None]
    return (rates.double() * w).sum(1) / w.sum(1).clamp(min=1)


def selectivity(trial_rates, levels, values=None) -> torch.Tensor:
    """Normalised differences ``(L', N)`` for the levels ``values`` (default: those of
    ``levels (K,)``; module docstring): one row for a two-level factor, one per level otherwise;
    NaN where a level has no trial or every trial."""
    levels = np.asarray(levels)
    values = np.unique(levels) if values is None else np.asarray(values)
    rows = values[1:] if len(values) == 2 else values
    out = []
    for level in rows:
        inside = torch.as_tensor(levels == level)
        if not inside.any() or inside.all():
            out.append(torch.full((trial_rates.shape[1],), torch.nan, dtype=torch.float64))
            continue
        a, b = trial_rates[inside].mean(0), trial_rates[~inside].mean(0)
        out.append((a - b) / (a + b).clamp(min=1e-9))
    return torch.stack(out)


def _across_neurons(x, y) -> float:
    """Mean over rows of the Pearson correlation across neurons (NaN-safe; a row that does not
    vary across neurons, such as a constant predictor's, has no correlation)."""
    values = []
    for a, b in zip(x, y):
        ok = ~(a.isnan() | b.isnan())
        if ok.sum() >= 3 and a[ok].std() > 1e-9 and b[ok].std() > 1e-9:
            values.append(float(np.corrcoef(a[ok].numpy(), b[ok].numpy())[0, 1]))
    return float(np.mean(values)) if values else math.nan


def _factors(labels: dict):
    """``(short name, levels)`` of every factor of ``labels`` with at least two levels."""
    for name, levels in labels.items():
        levels = np.asarray(levels)
        if len(np.unique(levels)) >= 2:
            yield FACTORS.get(name, name), levels


def selectivity_match(rates, target, epoch, labels: dict) -> dict:
    """Per factor of ``labels`` (name -> ``(K,)`` levels) with at least two levels: the
    correlation across neurons of predicted and recorded selectivity."""
    recorded, predicted = epoch_rates(target, epoch), epoch_rates(rates, epoch)
    return {name: _across_neurons(selectivity(predicted, levels), selectivity(recorded, levels))
            for name, levels in _factors(labels)}


def selectivity_reliability(target, epoch, labels: dict, n_splits: int = 20,
                            seed: int = 0) -> dict:
    """Per factor: the split-half correlation across neurons of the recorded selectivity
    (halves stratified by level, averaged over ``n_splits``), Spearman-Brown corrected to the
    full trial count, ``2 r / (1 + r)``. A match near it is as good as these trials allow."""
    rng = np.random.default_rng(seed)
    recorded = epoch_rates(target, epoch)
    out = {}
    for name, levels in _factors(labels):
        halves = []
        for _ in range(validate.positive_int("n_splits", n_splits)):
            half = fl.stratified_half(torch.as_tensor(levels), rng).numpy()
            values = np.unique(levels)
            halves.append(_across_neurons(selectivity(recorded[half], levels[half], values),
                                          selectivity(recorded[~half], levels[~half], values)))
        r = float(np.nanmean(halves)) if not np.all(np.isnan(halves)) else math.nan
        out[name] = min(max(2 * r / (1 + r), 0.0), 1.0) if r > -1 else math.nan
    return out


# ---------------------------------------------------------------------------- gaming
def trial_end_predictor(mean_rate, mask) -> torch.Tensor:
    """Each neuron's mean training rate while the trial is recorded and 0 after its end: a
    predictor that knows nothing but when trials end, ``(K, T, N)``."""
    return mask.double()[..., None] * torch.as_tensor(mean_rate, dtype=torch.float64)


# ---------------------------------------------------------------------------- one predictor
def score(rates, target, mask, condition, *, mean_rate, bin_size_ms: float,
          labels: dict | None = None, epoch=None, smooth_ms: float = SMOOTH_MS) -> dict:
    """Every held-out score of one prediction (module docstring), flat: ``bits_per_spike``,
    ``psth_r``, ``psth_r2`` (raw), ``psth_r_smooth``, ``psth_r2_smooth``, ``pooled_metric``
    (the published one) and, with ``labels`` and ``epoch``, ``selectivity_<factor>``."""
    dt = bin_size_ms / 1000
    raw = psth_scores(rates, target, mask, condition, bin_size_ms)
    smooth = psth_scores(rates, target, mask, condition, bin_size_ms, smooth_ms)
    out = {"bits_per_spike": bits_per_spike(rates, target, mask, mean_rate, dt)["pooled"],
           "psth_r": raw["r"], "psth_r2": raw["r2"], "psth_r_smooth": smooth["r"],
           "psth_r2_smooth": smooth["r2"],
           "pooled_metric": fl.psth_corr_pooled(rates.float(), target.float())}
    if labels is not None and epoch is not None:
        for name, value in selectivity_match(rates, target, epoch, labels).items():
            out[f"selectivity_{name}"] = value
    return out
