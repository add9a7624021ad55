"""The predictors every fit of a recorded session is shown beside.

Each baseline is fitted on training trials, makes its choices on validation trials, and
predicts rates ``(K, T, N)`` (spikes/s) for any trials from their conditions and task inputs:

* **mean rate**: each neuron's mean training rate, constant;
* **pooled PSTH**: the training PSTH with conditions pooled (mean over the training trials
  recorded at each bin; the mean rate where none is);
* **shrunk PSTH**: ``w * PSTH_c + (1 - w) * PSTH_pooled``, both smoothed with a Gaussian of sd
  ``s``; ``w`` and ``s`` chosen on the validation trials by their Poisson likelihood;
* **Poisson GLM**: ``rate_n(t) = exp(b_n + sum_ij W_nij f_ij(t)) / dt`` on the features
  ``f_ij`` of :class:`hdlib.models.encoders.RaisedCosineEncoder` (each task input ``u_i``
  convolved causally with log-spaced raised-cosine bases ``B_j``, z-scored on the training
  rows), an L2 penalty
  ``alpha/2 ||W_n||^2`` per neuron chosen on the validation trials. It minimises
  scikit-learn's ``PoissonRegressor`` objective, ``mean(mu - y log mu) + alpha/2 ||w||^2``, for
  all neurons and penalties at once with torch's L-BFGS (one batched solve, where scikit-learn
  fits one neuron at a time); a test checks it against ``PoissonRegressor``.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from . import losses as fl
from . import metrics
from .models.encoders import RaisedCosineEncoder

#: The GLM's penalties (on z-scored features), and the shrunk PSTH's weights and smoothings.
GLM_ALPHAS = (1e-1, 1e-2, 1e-3, 1e-4)  # fitted in this order, each from the previous fit
SHRINK_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
SHRINK_SMOOTH_MS = (0.0, 25.0, 50.0, 100.0)
NAMES = ("mean rate", "pooled PSTH", "shrunk PSTH", "Poisson GLM")


def fit_poisson_glm(X: torch.Tensor, y: torch.Tensor, alpha: float, max_iter: int = 100,
                    start=None):
    """L2-penalised Poisson regression of every column of ``y (rows, N)`` (counts) on
    ``X (rows, F)``: minimises ``mean_rows(exp(eta) - y eta) + alpha/2 ||W_n||^2`` per neuron,
    ``eta = X W_n + b_n`` (the intercept is not penalised), from ``start = (W, b)`` (default
    zero weights and the log mean count), in ``X``'s precision. Returns ``(W (F, N), b (N,))``."""
    y = y.to(X.dtype)
    if start is None:
        start = (torch.zeros(X.shape[1], y.shape[1], dtype=X.dtype),
                 torch.log(y.mean(0).clamp(min=1e-6)))
    W = start[0].clone().requires_grad_(True)
    b = start[1].clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=1e-5,
                                  tolerance_change=1e-9, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        eta = X @ W + b
        loss = (eta.exp() - y * eta).mean(0).sum() + alpha / 2 * W.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return W.detach(), b.detach()


# ---------------------------------------------------------------------------- fitted baselines
@dataclasses.dataclass
class Baselines:
    """The fitted baselines of one session (see the module docstring); :meth:`predict` gives
    every baseline's rates for some trials."""

    mean_rate: torch.Tensor  # (N,)
    pooled_psth: torch.Tensor  # (T, N)
    condition_psth: dict  # condition label -> (T, N), the shrunk PSTH's final prediction
    shrink_weight: float
    shrink_smooth_ms: float
    glm_weights: torch.Tensor  # (F, N) on the encoder's features
    glm_bias: torch.Tensor  # (N,)
    glm_alpha: torch.Tensor  # (N,) the penalty chosen for each neuron
    encoder: RaisedCosineEncoder
    bin_size_ms: float

    def predict(self, inputs, condition) -> dict:
        """Rates ``(K, T, N)`` of every baseline for trials with these inputs and conditions."""
        K, T = inputs.shape[:2]
        shrunk = torch.stack([self.condition_psth.get(int(c), self.pooled_psth)
                              for c in condition.tolist()]) if K else self.pooled_psth[None, :0]
        with torch.no_grad():
            features = self.encoder(inputs.float()).double()
        glm = torch.exp(features @ self.glm_weights + self.glm_bias) / (self.bin_size_ms / 1000)
        return {"mean rate": self.mean_rate.expand(K, T, -1),
                "pooled PSTH": self.pooled_psth.expand(K, T, -1),
                "shrunk PSTH": shrunk, "Poisson GLM": glm}


def _psth_or(fallback, rates, mask) -> torch.Tensor:
    """Mean over trials recorded at each bin, ``fallback (N,)`` where none is, ``(T, N)``."""
    w = mask.double()[..., None]
    n = w.sum(0)
    return torch.where(n > 0, (rates.double() * w).sum(0) / n.clamp(min=1), fallback)


def fit_baselines(session, train_idx=None, val_idx=None, progress: bool = False) -> Baselines:
    """Fit every baseline on ``train_idx`` (default ``session.train_idx``), choosing the shrunk
    PSTH's weight and smoothing and the GLM's penalties on ``val_idx`` (default
    ``session.val_idx``) by Poisson likelihood."""
    train_idx = session.train_idx if train_idx is None else train_idx
    val_idx = session.val_idx if val_idx is None else val_idx
    train, val = session.trials(train_idx), session.trials(val_idx)
    dt = session.bin_size_ms / 1000
    mean_rate = metrics.mean_rates(train["rates"], train["mask"])
    pooled = _psth_or(mean_rate, train["rates"], train["mask"])

    # shrunk PSTH: condition PSTHs and the pooled one, smoothed, mixed
    labels = torch.unique(session.condition)
    all_valid = torch.ones(1, pooled.shape[0], dtype=torch.bool)
    raw, counts, _ = fl.psth(train["rates"].double(), train["mask"], train["condition"], labels)
    best = (-math.inf, 0.0, 0.0, None)
    for smooth_ms in SHRINK_SMOOTH_MS:
        smooth_pooled = metrics.gaussian_smooth(pooled[None], all_valid, smooth_ms,
                                                session.bin_size_ms)[0]
        smooth_cond = metrics.gaussian_smooth(raw, counts > 0, smooth_ms, session.bin_size_ms)
        smooth_cond = torch.where((counts > 0)[..., None], smooth_cond, smooth_pooled)
        for weight in SHRINK_WEIGHTS:
            table = {int(c): weight * smooth_cond[i] + (1 - weight) * smooth_pooled
                     for i, c in enumerate(labels.tolist())}
            predicted = torch.stack([table[int(c)] for c in val["condition"].tolist()])
            ll = float(metrics.poisson_log_likelihood(predicted, val["rates"], val["mask"],
                                                      dt).sum())
            if ll > best[0]:
                best = (ll, weight, smooth_ms, table)
    _, weight, smooth_ms, table = best

    # Poisson GLM on the task inputs through raised-cosine bases
    encoder = RaisedCosineEncoder(session.inputs.shape[-1], session.bin_size_ms)
    encoder.fit_statistics(train["inputs"], train["mask"])
    with torch.no_grad():
        X = encoder(train["inputs"])[train["mask"]]
        X_val = encoder(val["inputs"])[val["mask"]].double()
    y = train["rates"][train["mask"]] * dt
    y_val = val["rates"].double()[val["mask"]] * dt
    scores, fits = [], []
    for alpha in GLM_ALPHAS:  # single precision: 4x faster, likelihoods equal to 1e-4
        W, b = fit_poisson_glm(X, y, alpha, start=tuple(p.float() for p in fits[-1])
                               if fits else None)
        W, b = W.double(), b.double()
        eta = X_val @ W + b
        scores.append((y_val * eta - eta.exp()).sum(0))  # (N,) validation log-likelihood
        fits.append((W, b))
    choice = torch.stack(scores).argmax(0)  # (N,)
    W = torch.stack([fits[a][0][:, n] for n, a in enumerate(choice.tolist())], dim=1)
    b = torch.stack([fits[a][1][n] for n, a in enumerate(choice.tolist())])
    return Baselines(mean_rate=mean_rate, pooled_psth=pooled, condition_psth=table,
                     shrink_weight=weight, shrink_smooth_ms=smooth_ms, glm_weights=W,
                     glm_bias=b, glm_alpha=torch.tensor(GLM_ALPHAS, dtype=torch.float64)[choice],
                     encoder=encoder, bin_size_ms=session.bin_size_ms)
