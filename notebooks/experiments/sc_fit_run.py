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
# `hdlib.fitters.sc_fit.FitConfig`), scores it on the validation split and writes the scores, the
# learned time constants and the loss curve to `result_path` (JSON), and the weights beside it
# (`.pt`). `python -m hdlib sweep` runs this notebook once per configuration.

# %% tags=["parameters"]
data_path = "../_artifacts/sc_session.mat"  # session file (MATLAB v7.3 or older)
val_fraction = 0.2
split_seed = 0
fit_options = {}  # FitConfig fields, e.g. {"learnable_alpha": "population"}
threads = 1  # torch threads per run (a sweep runs several at once)
result_path = "_runs/sc_fit_result.json"

# %%
import json
from pathlib import Path

import torch

from hdlib import validate
from hdlib.datasets import sessions as neural_data
from hdlib.fitters import sc_fit

validate.path_string("data_path", data_path)
validate.path_string("result_path", result_path)
torch.set_num_threads(validate.positive_int("threads", threads))
config = sc_fit.make_config(**fit_options)
session = neural_data.load_session(data_path, val_fraction=val_fraction, seed=split_seed)
print(f"{session.info['session_name']}: {len(session.train_idx)} training and "
      f"{len(session.val_idx)} validation trials, {session.n_neurons} neurons")

# %%
model, history = sc_fit.fit(session, config, progress=False)
scores = sc_fit.evaluate(model, session)
taus = model.time_constants()
result = {**scores, "tau_e_ms": taus["tau_e_ms"], "tau_i_ms": taus["tau_i_ms"],
          "seconds": history["seconds"][-1], "final_loss": history["loss"][-1],
          "train_loss_end": sum(history["loss"][-10:]) / len(history["loss"][-10:]),
          "L_neuron_curve": history["L_neuron"], "tau_e_curve": history["tau_e_ms"],
          "tau_i_curve": history["tau_i_ms"], "fit_options": fit_options}
out = Path(result_path)
out.parent.mkdir(parents=True, exist_ok=True)
torch.save(model.state_dict(), out.with_suffix(".pt"))
out.write_text(json.dumps(result))
print({k: round(v, 3) for k, v in scores.items()})
