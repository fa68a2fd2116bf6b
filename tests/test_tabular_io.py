"""The tabular estimator's input checks and saved models: the defects a new user hit (issue 11)."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from wordexperts.tabular import WordExpertsClassifier
from wordexperts.tabular.encoding import MANY_CATEGORIES, smallest_uint, word_ids


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 3, 200), "b": rng.choice(["u", "v"], 200),
                      "w": rng.normal(size=200)})
    y = np.where(X["a"] > 0, "yes", "no")
    return X, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory, table):
    X, y = table
    clf = WordExpertsClassifier(epochs=3, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("saved") / "model"
    clf.save(path)
    return clf, path


def copy_model(path, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for name in ("model.json", "model.safetensors"):
        (target / name).write_bytes((path / name).read_bytes())
    return target


@pytest.mark.parametrize("name", ["model.safetensors", "model.json"])
def test_a_truncated_file_is_not_a_valid_saved_model(saved, tmp_path, name):
    _, path = saved
    copy = copy_model(path, tmp_path)
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{name} is not a valid saved model"):
        WordExpertsClassifier.load(copy)


def test_load_accepts_a_file_of_the_saved_folder(saved, table):
    clf, path = saved
    X, _ = table
    loaded = WordExpertsClassifier.load(path / "model.json")
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    other = path.parent / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is a file, not a saved model"):
        WordExpertsClassifier.load(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        WordExpertsClassifier.load(path.parent / "nothing")


def test_the_loader_checks_that_the_fields_agree(saved, tmp_path):
    _, path = saved
    copy = copy_model(path, tmp_path)
    meta = json.loads((copy / "model.json").read_text())
    broken = dict(meta, classes=meta["classes"][:-1])            # one class removed
    (copy / "model.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="field 'classes'.* 1 entries but the target has 2"):
        WordExpertsClassifier.load(copy)
    columns = [dict(meta["columns"][1], categories=["u"]), *meta["columns"][2:]]
    broken = dict(meta, columns=[meta["columns"][0], *columns])
    (copy / "model.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="column 'b' has 1 categories"):
        WordExpertsClassifier.load(copy)
    broken = dict(meta, config=dict(meta["config"], d_model=10))
    (copy / "model.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="do not fit field 'config'"):
        WordExpertsClassifier.load(copy)
    broken = {k: v for k, v in meta.items() if k != "words"}
    (copy / "model.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="missing field 'words'"):
        WordExpertsClassifier.load(copy)


def test_duplicate_column_names_are_named(table):
    X, y = table
    twice = pd.concat([X, X[["a"]]], axis=1)
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        WordExpertsClassifier(epochs=1).fit(twice, y)
    clf = WordExpertsClassifier(epochs=1, random_state=0).fit(X, y)
    renamed = X.set_axis(["a", "a", "w"], axis=1)
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        clf.predict(renamed)


def test_a_column_with_many_categories_warns_with_its_cost():
    rng = np.random.default_rng(0)
    n = 3 * MANY_CATEGORIES
    X = pd.DataFrame({"id": [f"u{i}" for i in rng.integers(0, 2 * MANY_CATEGORIES, n)],
                      "c": rng.integers(0, 3, n)})
    y = X["c"].to_numpy() > 0
    with pytest.warns(UserWarning, match=r"column 'id' \(\d+\) has more than 1000 categories"):
        WordExpertsClassifier(max_steps=2, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WordExpertsClassifier(max_steps=2, random_state=0).fit(X[["c"]], y)


def test_word_ids_mask_the_target_and_the_missing_cells(table):
    X, y = table
    clf = WordExpertsClassifier(epochs=1, random_state=0).fit(X, y)
    holes = X.iloc[:4].copy()
    holes.loc[0, "b"] = None
    ids = clf.word_ids(holes)
    mask = clf.model_.config.mask_id
    assert ids.shape == (4, 4) and ids.dtype == np.int64
    assert (ids[:, -1] == mask).all() and ids[0, 1] == mask
    expected_a = clf.words_[0][np.searchsorted(clf.columns_[0].categories, holes["a"])]
    assert np.array_equal(ids[:, 0], expected_a)
    with pytest.raises(ValueError, match="3 features"), pytest.warns(UserWarning):
        clf.word_ids(holes.to_numpy()[:, :2])


def test_word_ids_use_the_smallest_integer_dtype():
    words = [np.arange(3), np.arange(3, 6)]
    codes = np.array([[0, 2], [-1, 1]], dtype=np.int8)
    ids = word_ids(codes, words, 6)
    assert ids.dtype == np.uint8 and ids.tolist() == [[0, 5], [6, 4]]
    assert smallest_uint(255) == np.uint8 and smallest_uint(256) == np.uint16
    assert smallest_uint(70_000) == np.int32
