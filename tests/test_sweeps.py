"""hdlib.book.sweeps: sweep files, merging of parameters, executors and the runner."""
import concurrent.futures
import json

import pandas as pd
import pytest

from hdlib.book import sweeps


def test_merge_is_one_level_deep():
    base = {"steps": 10, "fit_options": {"lr": 0.1, "loss": "a"}, "tags": {"x": {"y": 1}}}
    merged = sweeps.merge(base, {"fit_options": {"loss": "b"}, "tags": {"x": {"z": 2}},
                                 "seed": 3})
    assert merged == {"steps": 10, "fit_options": {"lr": 0.1, "loss": "b"},
                      "tags": {"x": {"z": 2}}, "seed": 3}
    assert base["fit_options"] == {"lr": 0.1, "loss": "a"}  # the base is not modified


def test_load_sweep(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: {steps: 5}\nconfigs:\n  a: {}\n  b:\n  c: {steps: 7}\n")
    assert sweeps.load_sweep(path) == ({"steps": 5}, {"a": {}, "b": {}, "c": {"steps": 7}})


def test_bad_sweep_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("configs: [1, 2]\n")
    with pytest.raises(ValueError, match="configs"):
        sweeps.load_sweep(path)
    path.write_text("configs: {a: {}}\nextra: 1\n")
    with pytest.raises(ValueError, match="extra"):
        sweeps.load_sweep(path)
    path.write_text("configs: {a: 3}\n")
    with pytest.raises(ValueError, match="'a' must be a mapping"):
        sweeps.load_sweep(path)


def test_executors():
    with pytest.raises(ValueError, match="engine"):
        sweeps.make_executor("pbs")
    local = sweeps.make_executor("local", workers=1)
    try:
        assert isinstance(local, concurrent.futures.ProcessPoolExecutor)
    finally:
        local.shutdown()


@pytest.mark.slow
def test_sweep_keeps_going_past_a_failure(tmp_path, job_notebook):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("base: {options: {a: 1}}\nconfigs:\n  two: {x: 2, options: {b: 2}}\n"
                          "  bad: {x: -1}\n  three: {x: 3}\n")
    base, configs = sweeps.load_sweep(sweep_file)
    table = sweeps.run_sweep(job_notebook, configs, tmp_path / "out", base=base, workers=2,
                             progress=False)
    assert table.loc["two", "status"] == "ok" and table.loc["two", "square"] == 4
    assert table.loc["two", "options"] == {"a": 1, "b": 2}
    assert table.loc["three", "square"] == 9
    assert table.loc["bad", "status"] == "failed" and "x must be positive" in table.loc[
        "bad", "error"]
    assert json.loads((tmp_path / "out" / "two.json").read_text())["square"] == 4
    assert (tmp_path / "out" / "runs" / "bad.log").exists()  # the kernel's output of each run


def test_seeds_expand_every_configuration(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("base: {steps: 5}\nseeds: [0, 2]\nconfigs:\n  a: {}\n  b: {lr: 0.1}\n")
    _, configs = sweeps.load_sweep(path)
    assert configs == {"a_seed0": {"seed": 0}, "a_seed2": {"seed": 2},
                       "b_seed0": {"lr": 0.1, "seed": 0}, "b_seed2": {"lr": 0.1, "seed": 2}}
    for bad in ("[]", "[1, 1]", "[-1]", "3", "[0.5]"):
        path.write_text(f"seeds: {bad}\nconfigs:\n  a: {{}}\n")
        with pytest.raises(ValueError, match="seeds must"):
            sweeps.load_sweep(path)


def test_sweep_key_follows_parameters_notebook_and_library(tmp_path, monkeypatch):
    notebook = tmp_path / "nb.py"
    notebook.write_text("x = 1\n")
    key = sweeps.sweep_key(notebook, {"seed": 0, "result_path": "a.json"})
    assert key == sweeps.sweep_key(notebook, {"seed": 0, "result_path": "elsewhere.json"})
    assert key != sweeps.sweep_key(notebook, {"seed": 1})
    notebook.write_text("x = 2\n")
    assert key != sweeps.sweep_key(notebook, {"seed": 0})
    notebook.write_text("x = 1\n")
    monkeypatch.setattr(sweeps.results, "measurement_hash", lambda: "another library")
    assert key != sweeps.sweep_key(notebook, {"seed": 0})


def test_finished_runs_are_recognised_by_their_key(tmp_path):
    from hdlib.book import results

    path = tmp_path / "a_seed0.json"
    assert not sweeps.already_done(path, "k1")
    results.write_result(path, {"error": 1.5}, {"seed": 0})
    assert not sweeps.already_done(path, "k1")  # written, but not finished by a sweep
    sweeps._stamp(path, {"sweep_key": "k1", "command": "python -m hdlib sweep"})
    assert sweeps.already_done(path, "k1") and not sweeps.already_done(path, "k2")
    assert results.read_result(path)["provenance"]["command"] == "python -m hdlib sweep"
    path.write_text("{not json")
    assert not sweeps.already_done(path, "k1")


def test_bad_configuration_is_refused_before_anything_runs(tmp_path, job_notebook):
    with pytest.raises(ValueError, match="sweep configuration 'two': unknown parameter.* y"):
        sweeps.run_sweep(job_notebook, {"one": {"x": 1}, "two": {"y": 2}}, tmp_path / "out",
                         progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_with_the_missing_runs(tmp_path, job_notebook):
    configs = {"one": {"x": 1}, "two": {"x": 2}}
    first = sweeps.run_sweep(job_notebook, configs, tmp_path / "out", workers=1,
                             progress=False)
    assert (first["status"] == "ok").all() and not first["skipped"].any()
    (tmp_path / "out" / "two.json").unlink()  # as if the sweep had stopped after 'one'
    second = sweeps.run_sweep(job_notebook, configs, tmp_path / "out", workers=1,
                              progress=False)
    assert second["skipped"].tolist() == [True, False] and second.loc["two", "square"] == 4
    forced = sweeps.run_sweep(job_notebook, configs, tmp_path / "out", workers=1,
                              progress=False, force=True)
    assert not forced["skipped"].any()


def test_the_notebook_comes_from_the_command_or_the_file(tmp_path):
    (tmp_path / "nb.py").write_text("")
    named = tmp_path / "named.yaml"
    named.write_text("notebook: nb.py\nconfigs: {a: {}}\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("configs: {a: {}}\n")
    assert sweeps.sweep_notebook(named) == str((tmp_path / "nb.py").resolve())
    assert sweeps.sweep_notebook(named, str(tmp_path / "nb.py")) == str(tmp_path / "nb.py")
    assert sweeps.sweep_notebook(plain, "x.py") == "x.py"
    with pytest.raises(ValueError, match="name the notebook"):
        sweeps.sweep_notebook(plain)
    with pytest.raises(ValueError, match="but the command names"):
        sweeps.sweep_notebook(named, "other.py")


def test_looks_run_the_next_seeds_only_for_undecided_configurations(tmp_path, monkeypatch):
    ran = []

    def fake_run_sweep(notebook, configs, output_dir, **options):
        ran.append(sorted(configs))
        return pd.DataFrame({"status": "ok"}, index=list(configs))

    monkeypatch.setattr(sweeps, "run_sweep", fake_run_sweep)
    configs = sweeps.expand_seeds({"a": {}, "b": {}}, list(range(10)))
    undecided = iter([{"a"}, set()])
    table = sweeps.run_looks("nb.py", configs, tmp_path, [3, 6, 10],
                             lambda folder: next(undecided))
    assert ran == [["a_seed0", "a_seed1", "a_seed2", "b_seed0", "b_seed1", "b_seed2"],
                   ["a_seed0", "a_seed1", "a_seed2", "a_seed3", "a_seed4", "a_seed5"]]
    assert len(table) == 9  # every run once


def test_looks_must_fit_the_seeds(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("configs: {a: {}}\nseeds: [0, 1, 2, 3, 4, 5]\nlooks: [3, 6]\n")
    assert sweeps.sweep_looks(good) == [3, 6]
    for looks in ("[3, 10]", "[6, 3]", "[]"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"configs: {{a: {{}}}}\nseeds: [0, 1, 2, 3, 4, 5]\nlooks: {looks}\n")
        with pytest.raises(ValueError, match="looks must be increasing"):
            sweeps.sweep_looks(bad)


def test_undecided_configurations_follow_the_claims_of_the_stored_runs(tmp_path):
    from hdlib.book import chapter_claims, results

    def store(folder, rows):
        for seed, (reset, document, untrained, kept) in enumerate(rows):
            results.write_result(folder / f"book_seed{seed}.json",
                                 {"error_reset": reset, "error_document": document,
                                  "error_untrained": untrained, "amplitude_kept": kept},
                                 {"seed": seed})

    clear, noisy = tmp_path / "01_clear", tmp_path / "01_noisy"
    store(clear, [(2.0, 1.30, 5.0, 0.9), (2.1, 1.31, 5.1, 0.91), (2.2, 1.29, 5.2, 0.92)])
    store(noisy, [(2.0, 1.3, 5.0, 0.9), (1.0, 1.4, 5.1, 0.2), (2.2, 1.2, 5.2, 0.95)])
    assert chapter_claims.undecided_configurations(clear) == set()
    assert chapter_claims.undecided_configurations(noisy) == {"book"}


def test_chapter_04_rows_name_the_runs_that_give_them():
    import dataclasses

    from hdlib.book import chapter_claims, claims, parameters

    targets = parameters.SUPERIOR_COLLICULUS_TARGETS

    def runs(key, **changes):
        target = dataclasses.replace(targets[key], **changes) if changes else targets[key]
        return chapter_claims.superior_colliculus_runs(claims.Claim(target, [1.0, 2.0, 3.0]))

    assert runs("raw_inputs") == ("04_phases", {"raw_inputs", "baseline"})
    assert runs("hybrid_0.5") == ("04_phases", {"hybrid_0.5", "correlation_lneuron"})
    assert runs("correlation_lneuron_r") == ("04_phases", {"correlation_lneuron", "baseline"})
    assert runs("ltrial_poisson") == ("04_phases", {"ltrial_poisson", "ltrial_on"})
    assert runs("single_trial") == ("04_fit_3min", {"fit_command"})
    assert runs("beats_baseline_r", claim="The 8000-step fit beats the best baseline") == (
        "04_fit_long", {"fit_long"})
    assert runs("recovery", claim=f"{targets['recovery'].claim} (trials 400 lr 10x)") == (
        "04_recovery", {"trials_400_lr_10x"})


def test_a_look_drops_the_runs_another_code_version_made(tmp_path):
    notebook = tmp_path / "nb.py"
    notebook.write_text("# %%\nseed = 0\n")
    out = tmp_path / "out"
    out.mkdir()
    configs = sweeps.expand_seeds({"a": {}}, [0, 1])
    current = sweeps.sweep_key(str(notebook), {**configs["a_seed0"],
                                               "result_path": str(out / "a_seed0.json")})
    (out / "a_seed0.json").write_text(json.dumps({"sweep_key": current, "x": 1}))
    (out / "a_seed1.json").write_text(json.dumps({"sweep_key": "an older version", "x": 2}))
    assert sweeps.drop_stale(notebook, configs, out) == ["a_seed1"]
    assert (out / "a_seed0.json").exists() and not (out / "a_seed1.json").exists()


def test_chapter_04_rows_from_the_fit_runs_alone():
    from hdlib.book import chapter_claims

    fit_runs = pd.DataFrame({"bits_per_spike": [0.30, 0.32, 0.31],
                             "psth_r_smooth": [0.50, 0.55, 0.52],
                             "single_trial_r": [0.20, 0.21, 0.22], "seed": [0, 1, 2]},
                            index=[f"fit_command_seed{s}" for s in range(3)])
    baselines = {"Poisson GLM": {"bits_per_spike": 0.25, "psth_r_smooth": 0.6},
                 "resampled trials": {"single_trial_r": 0.1}}
    rows = chapter_claims.superior_colliculus({"04_fit_3min": fit_runs}, baselines,
                                              {"psth_r_smooth": 0.8})
    gap = next(row.values for row in rows if "3-minute" in row.target.claim
               and "bits/spike" in row.target.claim)
    assert [round(v, 2) for v in gap] == [0.05, 0.07, 0.06]  # minus the GLM's 0.25
    assert len(rows) == 4  # the two gaps, the ceiling and single-trial r; no phase rows
    assert chapter_claims.superior_colliculus({}, baselines, {"psth_r_smooth": 0.8}) == []
