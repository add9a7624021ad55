# ---
# jupyter:
#   jupytext:
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
# # One E-I RNN fit (a sweep run)
#
# Fits `hdlib.models.eirnn.EIRNN` to one session with the options in `fit_options` (the fields of
# `hdlib.fitters.sc_fit.FitConfig`) and the training seed `seed`, scores it on the validation
# split (fixed by `split_seed`, whatever the training seed) and writes the scores, the learned
# time constants and the loss curves to `result_path` with their provenance
# (`hdlib.book.results.write_result`). `python -m hdlib sweep` runs this notebook once per
# configuration and seed.

# %% tags=["parameters"]
data_path = "../../data/sc/rnn_export_Newton_08_14_2025_SC.mat"  # session file (v7.3 or older)
val_fraction = 0.2
split_seed = 0  # the validation split; the same for every training seed
seed = 0  # the training seed (initial weights, minibatches, noise)
fit_options = {}  # FitConfig fields, e.g. {"learnable_alpha": "population"}
threads = 1  # torch threads per run (a sweep may run several at once)
result_path = ""

# %%
import time

import torch

from hdlib import validate
from hdlib.book import results
from hdlib.datasets import sessions
from hdlib.fitters import sc_fit

validate.path_string("data_path", data_path)
torch.set_num_threads(validate.positive_int("threads", threads))
config = sc_fit.make_config(**{**fit_options, "seed": validate.non_negative_int("seed", seed)})
session = sessions.load_session(data_path, val_fraction=val_fraction, seed=split_seed)
print(f"{session.info['session_name']}: {len(session.train_idx)} training and "
      f"{len(session.val_idx)} validation trials, {session.n_neurons} neurons")

# %%
start = time.process_time()
model, history = sc_fit.fit(session, config, progress=False)
cpu_seconds = time.process_time() - start
model.eval()
scores = sc_fit.evaluate(model, session, seed=seed)
taus = model.time_constants()
metrics = {**scores, "tau_e_ms": taus["tau_e_ms"], "tau_i_ms": taus["tau_i_ms"],
           "seconds": history["seconds"][-1], "cpu_seconds": cpu_seconds,
           "steps": len(history["loss"]), "final_loss": history["loss"][-1],
           "train_loss_end": sum(history["loss"][-10:]) / len(history["loss"][-10:]),
           "loss_curve": history["loss"], "L_neuron_curve": history["L_neuron"],
           "tau_e_curve": history["tau_e_ms"], "tau_i_curve": history["tau_i_ms"]}
results.write_result(result_path, metrics,
                     {"data_path": data_path, "val_fraction": val_fraction,
                      "split_seed": split_seed, "seed": seed, "fit_options": fit_options,
                      "threads": threads})
print({k: round(v, 3) for k, v in scores.items()})
