# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training with Adam and cosine annealing
#
# The enhanced-training document (`001`) proposes one recipe for the E/I ring: Adam, a learning
# rate that decays along a half cosine from `learning_rate` to `min_lr`, parameter groups with
# their own rates, biological constraints after every step, early stopping and checkpoints. It
# claims "better optimisation" and offers a *conservative* (stable, slower) and an *aggressive*
# (faster, potentially less stable) configuration. This chapter implements the recipe as the
# book's trainer, `hdlib.fitters.training`, and measures those claims on the cue-tracking task of the
# previous chapter, over several seeds.
#
# The schedule for epoch $e$ of $E$:
#
# $$
# \eta_e = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\bigl(1 + \cos(\pi e / E)\bigr).
# $$
#
# Each parameter group multiplies it: noise rates by 5, connectivity (weights, widths and gains)
# by 2, the rest by 1. After every step the gains are clamped to [0.1, 10], noise rates to
# [0.1, 20], $W_{IE}$ to at most 0.5 and $W_{EI}$ to [-0.5, 2].

# %% tags=["parameters"]
n_exc = 200  # excitatory neurons (the document's network has 800)
n_inh = 50  # inhibitory neurons (the document's has 200)
seq_len = 60  # steps (ms) per sequence
speed_deg_s = 180.0  # spread of the heading's angular velocity
cue_strength = 0.5
seeds = [0, 1, 2]  # every configuration is trained once per seed
epoch_scale = 0.2  # fraction of each configuration's max_epochs run at book scale
batches_per_epoch = 6
resume_epochs = 6  # length of the checkpoint/resume demonstration
checkpoint_dir = "_artifacts/checkpoints"

# %%
import time
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue

from hdlib import validate
from hdlib.book import plots
from hdlib.book.claims import claims_table
from hdlib.datasets.tasks import HeadDirectionTrackingTask
from hdlib.fitters import training
from hdlib.models import ei_ring

params = validate.parameters(globals(), training.TRAINING_CHAPTER_PARAMETERS)
plots.set_style()
plt = plots.plt
checkpoints = Path(checkpoint_dir)
checkpoints.mkdir(parents=True, exist_ok=True)


def make_network(seed):
    return ei_ring.RingAttractorNetwork(n_exc, n_inh, seed=seed)


def make_task(network):
    return HeadDirectionTrackingTask.for_model(network, seq_len=seq_len, speed_deg_s=speed_deg_s,
                                               cue_strength=cue_strength)


# %% [markdown]
# ## The configurations
#
# Four recipes: the document's defaults with cosine annealing, the same with a constant
# learning rate (the control the document's claim needs), and its two presets. Each keeps its
# own learning rate, weight decay, patience and batch size; every `max_epochs` is multiplied by
# `epoch_scale` so that the whole comparison fits in the book's time budget (a parameter file in
# `notebooks/params/` runs them in full).

# %%
recipes = {
    "cosine (default)": {},
    "constant rate": {"schedule": "constant"},
    "conservative": dict(training.PRESETS["conservative"]),
    "aggressive": dict(training.PRESETS["aggressive"]),
}
defaults = training.TrainingConfig()
rows = {}
for name, overrides in recipes.items():
    merged = {"learning_rate": defaults.learning_rate, "max_epochs": defaults.max_epochs,
              "weight_decay": defaults.weight_decay, "patience": defaults.patience,
              "batch_size": defaults.batch_size, "schedule": defaults.schedule, **overrides}
    merged["max_epochs"] = max(1, round(merged["max_epochs"] * epoch_scale))
    merged["patience"] = max(1, round(merged["patience"] * epoch_scale))
    recipes[name] = merged
    rows[name] = merged
display(pd.DataFrame(rows).T)

# %%
runs = {}
for name, recipe in recipes.items():
    for seed in seeds:
        network = make_network(seed)
        config = training.create_training_config(
            **recipe, batches_per_epoch=batches_per_epoch, seed=seed, progress=False,
            plot_progress=False)
        trainer = training.AdamCosineTrainer(network, config, make_task(network))
        start = time.perf_counter()
        trainer.train()
        runs[(name, seed)] = {"trainer": trainer, "seconds": time.perf_counter() - start,
                              "error": ei_ring.tracking_error_deg(network, make_task(network))}
print(f"trained {len(runs)} networks")

# %% [markdown]
# ## Loss, learning rate, gradients and parameters
#
# Thin lines are single seeds; thick lines their mean.

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
for colour, name in zip(plots.sns.color_palette(n_colors=len(recipes)), recipes):
    curves = [runs[(name, s)]["trainer"].history for s in seeds]
    for key, ax in (("val_loss", axes[0, 0]), ("learning_rate", axes[0, 1]),
                    ("grad_norm", axes[1, 0])):
        for h in curves:
            ax.plot(np.arange(1, len(h[key]) + 1), h[key], color=colour, lw=0.6, alpha=0.5)
        length = min(len(h[key]) for h in curves)
        mean = np.mean([h[key][:length] for h in curves], axis=0)
        ax.plot(np.arange(1, length + 1), mean, color=colour, lw=2, label=name)
    g_ee = [runs[(name, s)]["trainer"].param_history["g_ee"] for s in seeds]
    for values in g_ee:
        axes[1, 1].plot(values, color=colour, lw=1)
for ax, title in zip(axes.flat, ("validation loss", "learning rate", "gradient norm",
                                 "g_EE (recurrent excitation gain)")):
    ax.set_title(title)
    ax.set_xlabel("epoch")
axes[0, 0].set_yscale("log")
axes[1, 0].set_yscale("log")
axes[0, 1].legend(frameon=False, fontsize="small")
plt.show()

# %% [markdown]
# The full monitoring of one run (default recipe, first seed): train and validation loss,
# learning rate, gradient norm and every scalar parameter relative to its start.

# %%
fig = plots.plot_trainer_history(runs[("cosine (default)", seeds[0])]["trainer"])

# %% [markdown]
# ## The comparison

# %%
def summary(name):
    rs = [runs[(name, s)] for s in seeds]
    val = [r["trainer"].history["val_loss"] for r in rs]
    return {
        "final val loss (mean)": np.mean([v[-1] for v in val]),
        "final val loss (sd)": np.std([v[-1] for v in val]),
        "tracking error (deg)": np.mean([r["error"] for r in rs]),
        "epochs run": np.mean([len(v) for v in val]),
        "val-loss rises per run": np.mean([sum(b > a for a, b in zip(v, v[1:])) for v in val]),
        "seconds per run": np.mean([r["seconds"] for r in rs]),
        "val / train (final)": np.mean([r["trainer"].history["val_loss"][-1]
                                        / r["trainer"].history["train_loss"][-1] for r in rs]),
    }


table = pd.DataFrame({name: summary(name) for name in recipes}).T
display(table.style.format("{:.3g}"))
cosine, constant = table.loc["cosine (default)"], table.loc["constant rate"]
wins = sum(runs[("cosine (default)", s)]["trainer"].history["val_loss"][-1]
           < runs[("constant rate", s)]["trainer"].history["val_loss"][-1] for s in seeds)
glue("cosine_wins", wins, display=False)
glue("n_seeds", len(seeds), display=False)
glue("cons_epochs", float(table.loc["conservative", "epochs run"]), display=False)
glue("cons_max", recipes["conservative"]["max_epochs"], display=False)
glue("cons_rises", float(table.loc["conservative", "val-loss rises per run"]), display=False)

# %% [markdown]
# Cosine annealing ended with a lower validation loss than the constant rate in
# {glue:text}`cosine_wins` of {glue:text}`n_seeds` seeds. With the same number of epochs, the
# two schedules differ only in how large the late steps are, so the question is whether the
# difference exceeds the spread across seeds; the table gives both. Note what a short budget
# does to the comparison: cosine annealing spends its last epochs at a tiny rate, which pays off
# only if the loss has converged by then (the curves above show whether it had).
#
# Early stopping ends a run whose validation loss has not improved for `patience` epochs. The
# conservative recipe ran {glue:text}`cons_epochs:.1f` of its {glue:text}`cons_max` epochs on
# average, with {glue:text}`cons_rises:.1f` validation-loss rises per run; its wall time in the
# table is therefore not the time of a full run.
#
# Were the constraints respected in every run?

# %%
violations = []
for (name, seed), run in runs.items():
    params_now = dict(run["trainer"].model.named_parameters())
    for pname, (low, high) in run["trainer"].config.constraints.items():
        value = params_now[pname].detach()
        if (low is not None and value.min() < low - 1e-6) or (high is not None
                                                              and value.max() > high + 1e-6):
            violations.append((name, seed, pname))
print(f"constraint violations after training: {len(violations)}")

# %% [markdown]
# ## Checkpoint and resume
#
# A run of `resume_epochs` epochs is interrupted halfway: the trainer saves a checkpoint, a new
# network and trainer are built from scratch, the checkpoint is loaded, and training continues.
# Checkpoints are written to a temporary file and renamed, so a crash mid-write leaves the
# previous one intact, and they are read with `weights_only=True`. Data and noise of each epoch
# come from generators seeded by (seed, epoch), so the resumed run repeats the uninterrupted one.

# %%
def demo_trainer(network_seed):
    network = make_network(network_seed)
    config = training.create_training_config(
        max_epochs=resume_epochs, batches_per_epoch=batches_per_epoch, batch_size=16,
        seed=seeds[0], progress=False, plot_progress=False, early_stopping=False)
    return training.AdamCosineTrainer(network, config, make_task(network))


uninterrupted = demo_trainer(seeds[0])
uninterrupted.train()
interrupted = demo_trainer(seeds[0])
interrupted.train(epochs=resume_epochs // 2)
path = interrupted.save_checkpoint(resume_epochs // 2 - 1, checkpoints / "halfway.pt")
resumed = demo_trainer(network_seed=seeds[0] + 100)  # other weights: the checkpoint replaces them
resume_from = resumed.load_checkpoint(path)
resumed.train()
resume_gap = max(abs(a - b) / b for a, b in zip(resumed.history["val_loss"],
                                                uninterrupted.history["val_loss"]))
resume_ok = resume_gap < 1e-4  # float reordering only (BLAS threads may vary with load)
print(f"resumed at epoch {resume_from}; largest relative difference from the uninterrupted "
      f"run's validation losses: {resume_gap:.1e}")
broken = checkpoints / "broken.pt"
broken.write_bytes(path.read_bytes()[:1000])
try:
    resumed.load_checkpoint(broken)
    refused = False
except ValueError as error:
    refused = True
    print("a truncated checkpoint is refused:", str(error).split(":")[0])

# %% [markdown]
# ## What the document claims, and what we measured

# %%
conservative, aggressive = table.loc["conservative"], table.loc["aggressive"]
claims = claims_table([
    ("Adam + cosine annealing converges better than a constant rate",
     f"final val loss {cosine['final val loss (mean)']:.2e} vs "
     f"{constant['final val loss (mean)']:.2e}; lower in {wins}/{len(seeds)} seeds",
     wins > len(seeds) / 2),
    ("Conservative preset: stable",
     f"{conservative['val-loss rises per run']:.1f} val-loss rises per run "
     f"(default {cosine['val-loss rises per run']:.1f})",
     conservative["val-loss rises per run"] <= cosine["val-loss rises per run"]),
    ("Conservative preset: slower",
     f"{conservative['seconds per run']:.1f} s per run vs {cosine['seconds per run']:.1f} s",
     conservative["seconds per run"] > cosine["seconds per run"]),
    ("Aggressive preset: faster",
     f"{aggressive['seconds per run']:.1f} s per run, final val loss "
     f"{aggressive['final val loss (mean)']:.2e}",
     aggressive["seconds per run"] < cosine["seconds per run"]),
    ("Aggressive preset: potentially less stable",
     f"{aggressive['val-loss rises per run']:.1f} val-loss rises per run",
     aggressive["val-loss rises per run"] > cosine["val-loss rises per run"]),
    ("Constraints keep parameters in their ranges",
     f"{len(violations)} violations in {len(runs)} runs", not violations),
    ("Validation loss tracks training loss",
     f"val/train at the end: {table['val / train (final)'].min():.2f} to "
     f"{table['val / train (final)'].max():.2f}", table["val / train (final)"].max() < 2.0),
    ("Training resumes from a checkpoint",
     f"resumed run differs by {resume_gap:.1e} (relative)", resume_ok),
])
display(claims.style.hide(axis="index"))

# %% [markdown]
# The comparisons between recipes depend on the seeds and on the thread count of the machine
# that ran them; the regression test checks only the verdicts that do not.

# %%
# NBVAL_CHECK_OUTPUT
print(f"constraints respected in every run: {not violations}")
print(f"resumed run repeats the uninterrupted one: {resume_ok}")
print(f"truncated checkpoint refused: {refused}")
