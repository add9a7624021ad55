"""The checks of every chapter's ``parameters`` cell: ``name -> check(name, value)``.

A chapter validates its parameters with ``validate.parameters(globals(), parameters.CHAPTER)``;
``python -m hdlib run`` applies the same checks before any kernel starts.
"""
from __future__ import annotations

import math

from .. import validate


def _optional_path(name, value):
    """``''`` (nothing written) or a path."""
    return value if value == "" else validate.path_string(name, value)


#: Where a run writes its metrics (``hdlib.book.results``); every chapter has it.
RESULT_PATH = {"result_path": _optional_path}


def _at_least_three(name, value):
    """An integer >= 3 (the random cases of a deterministic check)."""
    if validate.positive_int(name, value) < 3:
        raise ValueError(f"{name} must be an integer >= 3; got {value!r}")
    return value


#: Checks for the parameters of the E/I ring tracking chapter.
TRACKING = {
    "n_exc": validate.positive_int,
    "n_inh": validate.positive_int,
    "sigma_ee": validate.positive_float,
    "seq_len": validate.positive_int,
    "speed_deg_s": validate.positive_float,
    "tau_turn_ms": validate.positive_float,
    "cue_strength": validate.positive_float,
    "cue_noise": lambda n, v: validate.float_in(n, v, 0.0, math.inf),
    "mean_lit_ms": lambda n, v: validate.float_in(n, v, 1.0, math.inf),
    "mean_dark_ms": lambda n, v: validate.float_in(n, v, 1.0, math.inf),
    "segments": validate.positive_int,
    "max_epochs": validate.positive_int,
    "batches_per_epoch": validate.positive_int,
    "batch_size": validate.positive_int,
    "learning_rate": validate.positive_float,
    "regularisation": validate.positive_float,
    "n_cases": _at_least_three,
    "dark_steps": validate.positive_int,
    "grid_sigmas": validate.list_of(validate.positive_float, "positive numbers"),
    "grid_inhibitions": validate.list_of(validate.positive_float, "positive numbers"),
    "seed": validate.non_negative_int,
    "stored_results": _optional_path,
    **RESULT_PATH,
}

#: Checks for the parameters of the training chapter.
TRAINING = {
    "n_exc": validate.positive_int,
    "n_inh": validate.positive_int,
    "seq_len": validate.positive_int,
    "speed_deg_s": validate.positive_float,
    "cue_strength": validate.positive_float,
    "seed": validate.non_negative_int,
    "epoch_scale": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "batches_per_epoch": validate.positive_int,
    "resume_epochs": validate.positive_int,
    "checkpoint_dir": validate.path_string,
    "stored_results": validate.path_string,
    **RESULT_PATH,
}

#: Checks for the parameters of the angular-velocity chapter (see its ``parameters`` cell).
ANGULAR_VELOCITY = {
    "num_neurons": validate.positive_int,
    "alpha": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "activation": lambda n, v: validate.choice(n, v, ("tanh", "relu", "gelu")),
    "hidden_gain_neurons": validate.positive_int,
    "init": lambda n, v: validate.choice(n, v, ("random", "perfect")),
    "init_scale": lambda n, v: validate.float_in(n, v, 0.0, math.inf),
    "seq_len": validate.positive_int,
    "long_seq_len": validate.positive_int,
    "max_av": validate.positive_float,
    "zero_padding_start_ratio": lambda n, v: validate.float_in(n, v, 0.0, 1.0),
    "zero_ratios_in_rest": validate.ratios,
    "mean_bout_steps": lambda n, v: validate.float_in(n, v, 1.0, math.inf),
    "curriculum": validate.curriculum,
    "batch_size": validate.positive_int,
    "learning_rate": validate.positive_float,
    "min_lr_ratio": lambda n, v: validate.float_in(n, v, 0.0, 1.0),
    "stage_lr_factors": validate.list_of(validate.positive_float, "positive numbers"),
    "amplitude_weight": lambda n, v: validate.float_in(n, v, 0.0, math.inf),
    "grad_clip": validate.positive_float,
    "stop_after": validate.non_negative_int,
    "eval_batch_size": validate.positive_int,
    "snapshot_every": validate.positive_int,
    "seed": validate.non_negative_int,
    "artifacts_dir": validate.path_string,
    "stored_results": validate.path_string,
    **RESULT_PATH,
}

#: Checks for the parameters of the superior-colliculus chapter.
SUPERIOR_COLLICULUS = {
    "data_path": validate.path_string,
    "seed": validate.non_negative_int,
    "live_steps": validate.positive_int,
    "phases_dir": validate.path_string,
    "fit_runs_dir": validate.path_string,
    "fit_long_dir": validate.path_string,
    "recovery_dir": validate.path_string,
    "recovery_tolerance": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "family_alpha": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True, high_open=True),
    **RESULT_PATH,
}

#: Checks for the parameters of the Polar V1 chapter.
POLAR = {
    "n_train_trials": validate.positive_int,
    "n_val_trials": validate.positive_int,
    "n_frames": validate.positive_int,
    "n_neurons": validate.positive_int,
    "window": lambda n, v: validate.float_in(n, v, 21, 128),
    "teacher_config": validate.path_string,
    "initial_configs": validate.list_of(validate.path_string, "configuration names"),
    "full_rate_configs": lambda n, v: [] if v == [] else validate.list_of(
        validate.path_string, "configuration names")(n, v),
    "temporal_lr_scale": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "max_steps": validate.positive_int,
    "convergence_rtol": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "convergence_window": validate.positive_int,
    "batch_size": validate.positive_int,
    "learning_rate": validate.positive_float,
    "recovery_tolerance": lambda n, v: validate.float_in(n, v, 0.0, 1.0, low_open=True),
    "n_flop_cases": _at_least_three,
    "stored_results": _optional_path,
    "seed": validate.non_negative_int,
    **RESULT_PATH,
}
