"""The table commands end to end, through ``wordexperts.harness.cli.main``: ``fit`` on a CSV
with missing cells, ``predict`` (labels and probabilities, an unseen category, rows in order),
``impute``, Parquet in and out, ``explain-table`` on a model ``fit`` wrote (a missing cell
marked), and bad input: one line naming the file, column or option, exit code 2."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from wordexperts import WordExpertsClassifier
from wordexperts.harness.cli import main

FEATURES = ["w", "c", "k"]
FIT = ["--drop", "id", "--epochs", "3", "--random-state", "0"]


def table(n: int, seed: int) -> pd.DataFrame:
    """``id``, a number ``w``, a category ``c``, a small integer ``k`` and the class ``y``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)],
                          "w": rng.normal(size=n).round(2), "c": rng.choice(["a", "b", "c"], n),
                          "k": rng.integers(0, 3, n)})
    return frame.assign(y=np.where(frame["w"] + (frame["c"] == "a") > 0.3, "hi", "lo"))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The folder of ``train.csv`` (missing cells) and of the ``model`` that ``wordexperts
    fit`` wrote from it, and the training frame as read back."""
    folder = tmp_path_factory.mktemp("table-cli")
    train = table(90, seed=0)
    train.loc[[3, 10], "w"] = np.nan
    train.loc[5, "c"] = None
    train.to_csv(folder / "train.csv", index=False)
    assert main(["fit", str(folder / "train.csv"), "--target", "y", "--out",
                 str(folder / "model"), *FIT]) == 0
    return folder, pd.read_csv(folder / "train.csv")


def one_error(capsys, argv: list[str]) -> str:
    """The command's error: exit code 2 and one line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("wordexperts: error: ") and err.count("\n") == 1, err
    return err


def test_fit_fits_as_the_library_does(fitted):
    folder, train = fitted
    clf = WordExpertsClassifier.load(folder / "model")
    assert [c.name for c in clf.columns_] == FEATURES            # the target and id dropped
    assert clf.target_name_ == "y" and list(clf.classes_) == ["hi", "lo"]
    params = clf.get_params()
    assert (params["epochs"], params["random_state"], params["verbose"]) == (3, 0, False)
    same = WordExpertsClassifier(epochs=3, random_state=0).fit(train[FEATURES], train["y"])
    assert np.array_equal(clf.predict_proba(train[FEATURES]),
                          same.predict_proba(train[FEATURES]))


def test_fit_passes_flags_and_params_to_the_estimator(tmp_path, capsys):
    table(40, seed=1).to_csv(tmp_path / "train.csv", index=False)
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--out",
                 str(tmp_path / "model"), *FIT, "--missing", "absent", "--calibration",
                 "none", "--param", "n_heads=2", "--param", "lr=0.02", "--param",
                 "early_stopping=false"]) == 0
    assert f"saved the model to {tmp_path / 'model'}" in capsys.readouterr().out
    params = WordExpertsClassifier.load(tmp_path / "model").get_params()
    assert (params["missing"], params["calibration"], params["n_heads"], params["lr"],
            params["early_stopping"]) == ("absent", "none", 2, 0.02, False)


def test_fit_shows_progress_on_a_terminal(tmp_path, capsys, monkeypatch):
    table(40, seed=1).to_csv(tmp_path / "train.csv", index=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--out",
                 str(tmp_path / "model"), *FIT, "--calibration", "none"]) == 0
    assert "step" in capsys.readouterr().err                      # the tqdm bar
    assert WordExpertsClassifier.load(tmp_path / "model").get_params()["verbose"] is True


def test_fit_warns_that_many_integers_are_read_as_classes(tmp_path, capsys):
    frame = table(100, seed=2).assign(y=np.arange(100) % 25)
    frame.to_csv(tmp_path / "train.csv", index=False)
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--out",
                 str(tmp_path / "model"), *FIT, "--calibration", "none"]) == 0
    err = capsys.readouterr().err
    assert (f"wordexperts: warning: {tmp_path / 'train.csv'}: target column 'y' holds 25 "
            "distinct integers; each is read as a class") in err
    table(40, seed=1).to_csv(tmp_path / "few.csv", index=False)   # classes in text: no warning
    assert main(["fit", str(tmp_path / "few.csv"), "--target", "y", "--out",
                 str(tmp_path / "m2"), *FIT, "--calibration", "none"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_predict_labels_and_probabilities_in_the_rows_order(fitted, tmp_path, capsys):
    folder, _ = fitted
    clf = WordExpertsClassifier.load(folder / "model")
    rows = table(30, seed=3).sample(frac=1, random_state=0)       # ids out of order
    rows.loc[rows.index[2], "w"] = np.nan
    rows.to_csv(tmp_path / "rows.csv", index=False)
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert main(["predict", str(folder / "model"), str(tmp_path / "rows.csv"), "--out",
                 str(tmp_path / "labels.csv")]) == 0
    assert f"wrote 30 predictions of {tmp_path / 'rows.csv'}" in capsys.readouterr().out
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert list(labels.columns) == ["prediction"]
    assert labels["prediction"].tolist() == clf.predict(rows[FEATURES]).tolist()

    assert main(["predict", str(folder / "model"), str(tmp_path / "rows.csv"), "--proba",
                 "--keep", "id", "--out", str(tmp_path / "proba.parquet")]) == 0
    out = pd.read_parquet(tmp_path / "proba.parquet")
    assert list(out.columns) == ["id", "prediction", "proba_hi", "proba_lo"]
    assert out["id"].tolist() == rows["id"].tolist()
    proba = out[["proba_hi", "proba_lo"]].to_numpy()
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    assert np.array_equal(proba, clf.predict_proba(rows[FEATURES]))
    assert out["prediction"].tolist() == labels["prediction"].tolist()


def test_predict_reads_an_unseen_category_as_missing(fitted, tmp_path, capsys):
    folder, _ = fitted
    rows = table(5, seed=4)
    rows.loc[1, "c"] = "zzz"
    rows.to_csv(tmp_path / "new.csv", index=False)
    rows.assign(c=rows["c"].where(rows.index != 1)).to_csv(tmp_path / "holes.csv", index=False)
    for name in ("new", "holes"):
        assert main(["predict", str(folder / "model"), str(tmp_path / f"{name}.csv"),
                     "--proba", "--out", str(tmp_path / f"{name}.out.csv")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "wordexperts: warning: X has categories not seen in fit, column 'c': ['zzz']; "
        "read as missing (the mask)"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "new.out.csv"),
                                  pd.read_csv(tmp_path / "holes.out.csv"))


def test_parquet_and_csv_input_predict_alike(fitted, tmp_path):
    folder, train = fitted
    train.to_parquet(tmp_path / "train.parquet")
    outputs = []
    for source in (folder / "train.csv", tmp_path / "train.parquet"):
        out = tmp_path / f"from-{source.suffix[1:]}.csv"
        assert main(["predict", str(folder / "model"), str(source), "--proba", "--out",
                     str(out)]) == 0
        outputs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(*outputs)


def test_impute_fills_the_missing_cells_and_nothing_else(fitted, tmp_path, capsys):
    folder, _ = fitted
    clf = WordExpertsClassifier.load(folder / "model")
    rows = table(20, seed=5)
    rows.loc[[0, 4], "w"] = np.nan
    rows.loc[[1, 4], "c"] = None
    rows.loc[[2], "y"] = None                 # the target too: fitted under the name y
    rows.to_parquet(tmp_path / "rows.parquet")
    for out in ("filled.csv", "filled.parquet"):
        assert main(["impute", str(folder / "model"), str(tmp_path / "rows.parquet"), "--out",
                     str(tmp_path / out)]) == 0
    assert "filled 5 missing cell(s)" in capsys.readouterr().out
    filled = pd.read_parquet(tmp_path / "filled.parquet")
    assert list(filled.columns) == list(rows.columns) and not filled.isna().any().any()
    holes = rows.isna()
    for column in rows.columns:                # every observed cell as it was
        assert filled.loc[~holes[column], column].tolist() == \
            rows.loc[~holes[column], column].tolist()
    expected = clf.impute(rows[[*FEATURES, "y"]])
    pd.testing.assert_frame_equal(filled[[*FEATURES, "y"]], expected, check_dtype=False)
    assert set(filled.loc[[1, 4], "c"]) <= {"a", "b", "c"} and filled.loc[2, "y"] in ("hi", "lo")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "filled.csv"), filled,
                                  check_dtype=False)


def test_explain_table_reads_a_fitted_model_and_marks_missing_cells(fitted, tmp_path, capsys):
    folder, _ = fitted
    rows = table(6, seed=6)
    rows.loc[1, "w"] = np.nan
    rows.loc[2, "c"] = "zzz"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["explain-table", str(folder / "model"), str(tmp_path / "rows.csv"), "--rows",
                 "0", "1", "2", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    tables = {n: printed.split(f"row {n}: predicted class", 1)[1].split("\n\n", 1)[0]
              for n in (0, 1, 2)}
    assert "(missing)" not in tables[0] and "read as missing" not in tables[0]
    assert [line.split()[:2] for line in tables[1].splitlines() if "(missing)" in line] == [
        ["w", "(missing)"]]
    assert "zzz (unseen, read as missing)" in tables[2]
    frame = pd.read_csv(tmp_path / "out" / "contributions.csv")
    cells = frame[frame["column"].isin(FEATURES)].drop_duplicates(["row", "column"])
    marked = cells.loc[cells["missing"].astype(bool), ["row", "column"]]
    assert marked.values.tolist() == [[1, "w"], [2, "c"]]
    assert frame.loc[~frame["column"].isin(FEATURES), "missing"].isna().all()


# --------------------------------------------------------------------------- bad input


def test_fit_names_a_missing_target_column_and_an_empty_file(fitted, tmp_path, capsys):
    folder, _ = fitted
    train = folder / "train.csv"
    err = one_error(capsys, ["fit", str(train), "--target", "nope", "--out",
                             str(tmp_path / "m")])
    assert str(train) in err and "no column(s) ['nope']" in err
    err = one_error(capsys, ["fit", str(train), "--target", "y", "--drop", "ID", "--out",
                             str(tmp_path / "m")])
    assert "no column(s) ['ID']" in err
    (tmp_path / "empty.csv").write_bytes(b"")
    err = one_error(capsys, ["fit", str(tmp_path / "empty.csv"), "--target", "y", "--out",
                             str(tmp_path / "m")])
    assert f"train: {tmp_path / 'empty.csv'} is empty" in err
    pd.read_csv(train).assign(y=lambda f: f["y"].where(f.index != 7)).to_csv(
        tmp_path / "unlabelled.csv", index=False)
    err = one_error(capsys, ["fit", str(tmp_path / "unlabelled.csv"), "--target", "y",
                             "--out", str(tmp_path / "m")])
    assert "target column 'y' is missing in 1 row(s) (first: row 7" in err
    assert not (tmp_path / "m").exists()
    # saving replaces the folder: one holding other files is refused, a saved model replaced
    err = one_error(capsys, ["fit", str(train), "--target", "y", "--out", str(tmp_path)])
    assert f"--out {tmp_path} holds files and no saved model" in err
    assert (tmp_path / "empty.csv").is_file()


@pytest.mark.parametrize(("options", "says"), [
    (["--param", "colour=red"], "--param colour: WordExpertsClassifier has no parameter"),
    (["--param", "lr"], "--param 'lr': give KEY=VALUE"),
    (["--param", "epochs=4"], "--param epochs: epochs is given twice"),
    (["--param", "n_bins=1"], "'n_bins' parameter of WordExpertsClassifier must be an int"),
    (["--device", "nonsense"], "--device nonsense: not available here"),
], ids=["unknown", "no-value", "twice", "bad-value", "device"])
def test_fit_names_a_bad_param(fitted, tmp_path, capsys, options, says):
    folder, _ = fitted
    err = one_error(capsys, ["fit", str(folder / "train.csv"), "--target", "y", "--out",
                             str(tmp_path / "m"), *FIT, *options])
    assert says in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("damage", ["absent", "empty", "not-json", "no-weights"])
def test_predict_and_impute_name_an_unreadable_model_folder(fitted, tmp_path, capsys, damage):
    folder, _ = fitted
    model = tmp_path / "model"
    if damage != "absent":
        model.mkdir()
    if damage in ("not-json", "no-weights"):
        (model / "model.json").write_text(json.dumps({"format": "x"})[:-3])
    if damage == "not-json":
        (model / "model.safetensors").write_bytes(b"\0" * 8)
    for command in ("predict", "impute"):
        err = one_error(capsys, [command, str(model), str(folder / "train.csv"), "--out",
                                 str(tmp_path / "out.csv")])
        assert str(model) in err
    assert not (tmp_path / "out.csv").exists()


def test_predict_names_missing_columns_and_bad_outputs(fitted, tmp_path, capsys):
    folder, train = fitted
    model, source = str(folder / "model"), tmp_path / "rows.csv"
    train.drop(columns="k").to_csv(source, index=False)
    err = one_error(capsys, ["predict", model, str(source), "--out", str(tmp_path / "p.csv")])
    assert str(source) in err and "no column(s) ['k']" in err
    train.to_csv(source, index=False)
    err = one_error(capsys, ["predict", model, str(source), "--keep", "ID", "--out",
                             str(tmp_path / "p.csv")])
    assert "--keep" in err and "['ID']" in err
    err = one_error(capsys, ["predict", model, str(source), "--out", str(tmp_path / "p.txt")])
    assert "--out" in err and ".csv or .parquet" in err
    err = one_error(capsys, ["impute", model, str(source)])
    assert "impute needs MODEL_DIR, ROWS and --out" in err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    err = one_error(capsys, ["impute", model, str(tmp_path / "bad.parquet"), "--out",
                             str(tmp_path / "p.csv")])
    assert f"cannot read {tmp_path / 'bad.parquet'} as Parquet" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "rows.csv"]


@pytest.mark.parametrize("command", ["fit", "predict", "impute"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"example:\n  wordexperts {command} " in capsys.readouterr().out
