"""Each chapter's claims from its stored runs, and the configurations the sequential design of
:mod:`hdlib.book.claims` gives more seeds.

The chapters show these tables; ``python -m hdlib sweep`` with ``looks`` in its sweep file asks
:func:`undecided_configurations` after each look which configurations to run on more seeds. A
row depends on the configurations of the runs that gave it (every configuration of a sweep
that has only one).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import claims, parameters, results


def _versions(table):
    return list(table["version"]) if "version" in table else None


def tracking(stored) -> list[claims.Claim]:
    """Chapter 01: the tracking network's claims over the stored seeds (one row per seed)."""
    targets = parameters.TRACKING_TARGETS
    measured = {
        "state_passing": claims.paired(stored["error_reset"], stored["error_document"]),
        "about_1_3": (stored["error_document"] - 1.3).abs().tolist(),
        "beats_untrained": claims.paired(stored["error_untrained"], stored["error_document"]),
        "holds_in_darkness": stored["amplitude_kept"].tolist(),
    }
    return [claims.Claim(targets[key], values, versions=_versions(stored))
            for key, values in measured.items()]


#: Chapter 02's recipes: the reference, its controls and the document's presets.
REFERENCE = "cosine (default)"
CONTROLS = ["constant rate", "SGD + cosine"]
PRESETS = [REFERENCE, "conservative", "aggressive"]
TRAINING_MEASURES = {
    "constant_rate": "constant rate above reference (%)",
    "sgd": "SGD + cosine above reference (%)",
    "conservative_slower": "conservative: log2 sequences ratio",
    "conservative_stable": "conservative: rise minus reference (points)",
    "aggressive_faster": "aggressive: log2 sequences ratio",
    "aggressive_unstable": "aggressive: rise minus reference (points)",
    "val_tracks_train": "largest val / train",
}


#: Chapter 02's measures of the document's options, each run once per seed beside the
#: defaults (``options/...`` of a run's record).
OPTION_MEASURES = {
    "per_group_balance": "spread of changes: one rate minus per-group (log2)",
    "constraints_cost": "constraints: val loss above unconstrained (%)",
    "plausible": "unconstrained: share inside the bounds",
    "early_stopping_helps": "early stopping: error minus the full run's (deg)",
    "best_state_helps": "best state: error minus the last state's (deg)",
}


def _option_measures(record: dict) -> dict:
    """One seed's values of :data:`OPTION_MEASURES` (by key)."""
    on = record[f"{REFERENCE}/final_val_loss"]
    off = record["options/final_val_loss_unconstrained"]
    return {
        "per_group_balance": (math.log2(record["options/most_moved_one_rate"]
                                        / record["options/least_moved_one_rate"])
                              - math.log2(record["options/most_moved_groups"]
                                          / record["options/least_moved_groups"])),
        "constraints_cost": 100.0 * (on - off) / off,
        "plausible": record["options/inside_bounds_unconstrained"],
        "early_stopping_helps": (record["options/early_error_best"]
                                 - record[f"{REFERENCE}/tracking_error_deg"]),
        "best_state_helps": record["options/early_error_best"] - record["options/early_error_last"],
    }


def training_measures(stored) -> dict:
    """Chapter 02's per-seed quantities
    (:func:`hdlib.fitters.recipe_comparison.paired_measures`, then :data:`OPTION_MEASURES`
    when the runs measured the options)."""
    from ..fitters import recipe_comparison

    records = [row.to_dict() for _, row in stored.sort_values("seed").iterrows()]
    measures = recipe_comparison.paired_measures(records, REFERENCE, controls=CONTROLS,
                                                 presets=PRESETS)
    if records and "options/least_moved_groups" in records[0]:
        per_seed = [_option_measures(r) for r in records]
        measures.update({name: [m[key] for m in per_seed]
                         for key, name in OPTION_MEASURES.items()})
    return measures


def training(stored) -> list[claims.Claim]:
    """Chapter 02: the recipes' claims, costs of a preset that never reached the defaults' loss
    censored (counted at their lower bound)."""
    targets = parameters.TRAINING_TARGETS
    measures = training_measures(stored.sort_values("seed"))
    censored = {f"{p}_{what}": [not reached for reached in measures[f"{p}: reached the level"]]
                for p in ("conservative", "aggressive") for what in ("slower", "faster")}
    return [claims.Claim(targets[key], measures[name], censored=censored.get(key),
                         versions=_versions(stored))
            for key, name in {**TRAINING_MEASURES, **OPTION_MEASURES}.items()
            if name in measures]


#: Chapter 03's columns that are checks, not claims.
ANGULAR_VELOCITY_CHECKS = ("drift_per_sequence", "final_amplitude", "gain_error_pct",
                           "bump_width", "ideal_long", "diverged")
#: Single rows of chapter 03 that are checks: ReLU from the silent start receives exactly zero
#: gradient (the chapter computes it), so whether it learns is settled before any run.
ANGULAR_VELOCITY_CHECK_ROWS = (("relu_silent_start", "percent_of_null"),)


def is_angular_velocity_check(key: tuple) -> bool:
    """Whether chapter 03's target ``(configuration, column)`` goes to the checks list."""
    return key[1] in ANGULAR_VELOCITY_CHECKS or key in ANGULAR_VELOCITY_CHECK_ROWS


def angular_velocity_table(stored, seq_len: int) -> dict:
    """Chapter 03's per-seed quantities, ``{column: {configuration: [values]}}``, with the
    derived ones (:func:`hdlib.fitters.av_integration.add_derived`), the gap to the ideal ring
    at the long length (``excess_over_ideal``) and each run's ``version``."""
    from ..fitters import av_integration as avi
    from ..fitters.sc_analysis import by_configuration

    stored = stored.copy()
    stored["diverged"] = stored.get("diverged", 0.0)
    stored["diverged"] = stored["diverged"].fillna(0.0)
    columns = ("error_short", "error_long", "null_short", "ideal_long", "drift_deg_per_step",
               "final_amplitude", "gain_error_pct", "bump_width", "argmax_error", "worst_jump",
               "diverged", "version")
    per_config = {c: avi.by_config(stored, c) for c in columns if c in stored}
    avi.add_derived(per_config, seq_len)
    per_config["excess_over_ideal"] = {
        config: [e - i for e, i in zip(errors, per_config["ideal_long"][config])]
        for config, errors in per_config["error_long"].items()}
    groups = by_configuration(stored)  # indexed by seed

    def size(config):  # |log10 amplitude| after the still period, by seed
        return groups[config]["final_amplitude"].map(lambda a: abs(math.log10(max(a, 1e-12))))

    if {"plain_cosine", "plain_cosine_no_amplitude"} <= set(groups):
        without, with_term = size("plain_cosine_no_amplitude"), size("plain_cosine")
        seeds = without.index.intersection(with_term.index).sort_values()  # paired by seed
        per_config["amplitude_ablation"] = {"plain_cosine": claims.paired(
            without[seeds], with_term[seeds])}
    return per_config


def angular_velocity(stored, seq_len: int) -> dict:
    """Chapter 03: ``{(configuration, column): Claim}`` for every target that is not a check
    and has at least three stored seeds."""
    per_config = angular_velocity_table(stored, seq_len)
    versions = per_config.get("version", {})
    partner = {"amplitude_ablation": "plain_cosine_no_amplitude"}  # paired configurations

    def runs(config, column):
        return versions.get(config, []) + versions.get(partner.get(column), [])

    return {key: claims.Claim(target, per_config[key[1]][key[0]], versions=runs(*key))
            for key, target in parameters.ANGULAR_VELOCITY_TARGETS.items()
            if not is_angular_velocity_check(key)
            and len(per_config.get(key[1], {}).get(key[0], [])) >= 3}


def polar(stored, operation_ratios=(1.0,)) -> tuple[list[claims.Claim], list[claims.Check]]:
    """Chapter 05: the constants' claims and checks
    (:func:`hdlib.fitters.polar_fit.claims_of_document`, the cost check on
    ``operation_ratios``), and Option 2 against Option 1 on held-out bits/spike."""
    from ..fitters import polar_fit

    targets = parameters.POLAR_TARGETS
    rows, checks = polar_fit.claims_of_document(stored, list(operation_ratios), targets)
    o1, o2 = (polar_fit.fit_label(c, 0.1) for c in ("polar_v1", "polar_v1_relaxed"))
    if {o1, o2} <= set(polar_fit.stored_fits(stored)):
        rows.append(claims.Claim(targets["option2_beats_option1"], claims.paired(
            polar_fit.per_seed(stored, o2, "bits_per_spike"),
            polar_fit.per_seed(stored, o1, "bits_per_spike")), versions=_versions(stored)))
    return rows, checks


#: Chapter 04's sweeps (folders of ``results/``) and the recorded session they are scored on.
SC_SWEEPS = ("04_fit_3min", "04_fit_long", "04_phases", "04_recovery")
SC_SESSION = Path(__file__).parents[2] / "data" / "sc" / "rnn_export_Newton_08_14_2025_SC.mat"
#: Rows of chapter 04 read from the fit command's runs; every other keyed row is a phase item.
_SC_FIT_ROWS = ("beats_baseline_bps", "beats_baseline_r", "ceiling", "selectivity",
                "single_trial")
#: A phase row's configuration when its key is not one, and what it is compared with when
#: that is not the baseline.
_SC_CONFIG = {"correlation_lneuron_r": "correlation_lneuron", "pooled_term_metric": "pooled_term"}
_SC_AGAINST = {"hybrid_0.3": "correlation_lneuron", "hybrid_0.5": "correlation_lneuron",
               "ltrial_poisson": "ltrial_on"}


def superior_colliculus(stored: dict, baselines: dict, ceiling: dict) -> list[claims.Claim]:
    """Chapter 04's rows (:func:`hdlib.fitters.sc_analysis.document_claims`) from ``stored``,
    the tables of :data:`SC_SWEEPS` by folder name, scored against the session's
    ``baselines`` and ``ceiling`` on its test trials; rows with fewer than three runs (a sweep
    still running) are left out."""
    from ..fitters import sc_analysis

    empty = pd.DataFrame(index=pd.Index([], dtype=object))

    def table(name, missing=None):  # ``missing`` for a sweep with no runs yet
        found = stored.get(name)
        return found if found is not None and len(found) else missing

    fit_runs, recovery = table("04_fit_3min"), table("04_recovery", empty)
    if fit_runs is None:
        return []
    rows = sc_analysis.document_claims(
        table("04_phases", empty),
        sc_analysis.recovery_errors(recovery) if len(recovery) else recovery,
        fit_runs, baselines, ceiling, parameters.SUPERIOR_COLLICULUS_TARGETS,
        longer=table("04_fit_long"))
    return [row for row in rows if len(row.values) >= 3]


def superior_colliculus_runs(row: claims.Claim) -> tuple[str, set[str]]:
    """The sweep (folder name) and configurations whose runs give a chapter 04 row."""
    targets = parameters.SUPERIOR_COLLICULUS_TARGETS
    key = next((k for k, t in targets.items() if t is row.target), None)
    if key is None or key in _SC_FIT_ROWS:  # a fit-command row, or one whose text was filled
        recovery = targets["recovery"].claim
        if row.target.claim.startswith(recovery):
            cell = row.target.claim[len(recovery):].strip(" ()").replace(" ", "_")
            return "04_recovery", {cell}
        if "-step fit" in row.target.claim:
            return "04_fit_long", {"fit_long"}
        return "04_fit_3min", {"fit_command"}
    return "04_phases", {_SC_CONFIG.get(key, key), _SC_AGAINST.get(key, "baseline")}


def _superior_colliculus_undecided(folder: Path) -> set[str]:
    """Chapter 04: the configurations of ``folder`` behind its undecided rows; the rows are
    decided on all four sweeps together, against the shipped session's baselines."""
    from .. import baselines as bl
    from ..datasets import sessions
    from ..fitters import sc_fit

    stored = {}
    for name in SC_SWEEPS:
        try:
            stored[name] = results.load_results(folder.parent / name)
        except FileNotFoundError:
            continue
    if folder.name not in stored:
        return set()
    session = sessions.load_session(SC_SESSION, seed=sc_fit.SPLIT_SEED,
                                    val_fraction=sc_fit.VAL_FRACTION,
                                    test_fraction=sc_fit.TEST_FRACTION)
    baselines = sc_fit.score_baselines(session, bl.fit_baselines(session), session.test_idx)
    rows = superior_colliculus(stored, baselines, sc_fit.ceilings(session, session.test_idx))
    chosen = set()
    for i in claims.undecided(rows):
        sweep, configs = superior_colliculus_runs(rows[i])
        if sweep == folder.name:
            chosen |= configs
    return chosen


def undecided_configurations(folder, seq_len: int = 120) -> set[str]:
    """The configurations of the sweep in ``folder`` (``results/NN_name``) that the sequential
    design gives more seeds: those of every row that is inconclusive below the last look."""
    folder = Path(folder)
    if folder.name in SC_SWEEPS:
        return _superior_colliculus_undecided(folder)
    try:
        stored = results.load_results(folder)
    except FileNotFoundError:
        return set()
    names = {str(name).rsplit("_seed", 1)[0] for name in stored.index}
    number = folder.name[:2]
    if number == "03":
        rows = angular_velocity(stored, seq_len)
        keys = list(rows)
        partners = {"amplitude_ablation": "plain_cosine_no_amplitude"}
        return {config for i in claims.undecided(list(rows.values()))
                for config in (keys[i][0], partners.get(keys[i][1])) if config}
    builders = {"01": tracking, "02": training, "05": lambda table: polar(table)[0]}
    if number not in builders:
        return set()
    return names if claims.undecided(builders[number](stored)) else set()


def seeds_needed(n_now: int) -> int:
    """The next look's number of seeds after ``n_now`` (:data:`hdlib.book.claims.LOOKS`)."""
    later = [n for n in claims.LOOKS if n > n_now]
    return later[0] if later else n_now

