"""A fitted model cannot change under its user (issue 16): settings fixed at fit, atomic and
versioned saves, explanations in bounded memory, frames read as they are meant."""

import json
import warnings
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest

import wordexperts
from wordexperts.tabular import WordExpertsClassifier, classifier, explain, persistence


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 240
    w = rng.normal(size=n)
    X = pd.DataFrame({"a": rng.integers(0, 3, n), "b": rng.choice(["u", "v"], n), "w": w,
                      "z": rng.normal(size=n) + w})
    y = pd.Series(np.where(w + 0.3 * X["a"] > 0.2, "yes", "no"), name="label")
    return X, y


@pytest.fixture(scope="module")
def fitted(table):
    X, y = table
    return WordExpertsClassifier(epochs=4, random_state=0).fit(X, y)


# ------------------------------------------------------------------ settings fixed at fit
def test_set_params_after_fit_does_not_change_predictions(fitted, table):
    X, _ = table
    clf = WordExpertsClassifier(**fitted.get_params())
    clf.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    before = clf.predict_proba(X)
    clf.set_params(numeric="bin", handle_unknown="error", vocabulary="shared", preset="paper")
    assert np.array_equal(clf.predict_proba(X), before)
    assert fitted.settings_["numeric"] == "interpolate"
    assert fitted.settings_["vocabulary"] == fitted.vocabulary_ == "per_column"
    # "auto" resolved to a number; the preset's values filled in
    assert isinstance(fitted.settings_["dropout"], float)
    assert fitted.settings_["method"] == "single_pass" and fitted.settings_["lr"] == 7e-3
    assert "random_state" not in fitted.settings_


def test_a_loaded_model_does_not_read_todays_presets(fitted, table, tmp_path, monkeypatch):
    X, _ = table
    fitted.save(tmp_path / "m")
    before = fitted.predict_proba(X)
    monkeypatch.setitem(classifier.PRESETS["fast"], "numeric", "bin")
    loaded = WordExpertsClassifier.load(tmp_path / "m")
    assert loaded.settings_ == fitted.settings_
    assert np.array_equal(loaded.predict_proba(X), before)


def test_the_encoder_is_a_fitted_object(fitted, table):
    X, _ = table
    enc = fitted.encoder_
    assert enc.numeric == "interpolate" and enc.mask_id == fitted.model_.config.mask_id
    ids, soft = enc.inputs(X)
    assert ids.shape == (len(X), 5) and (ids[:, -1] == enc.mask_id).all()
    assert soft is not None and (soft.frac[:, 2] > 0).any()         # "w" read between words
    assert fitted.columns_ is enc.columns and fitted.words_ is enc.words


# ------------------------------------------------------------------ atomic, versioned saves
def test_a_generator_random_state_saves(table, tmp_path):
    X, y = table
    clf = WordExpertsClassifier(epochs=2, random_state=np.random.default_rng(3)).fit(X, y)
    clf.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["params"]["random_state"] is None
    assert "Generator" in meta["params_not_saved"]["random_state"]
    loaded = WordExpertsClassifier.load(tmp_path / "m")
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))


class Opaque:
    """A category that JSON cannot hold."""

    def __repr__(self):
        return "Opaque()"

    def __lt__(self, other):
        return repr(self) < repr(other)


def test_a_failed_save_leaves_no_folder_and_keeps_the_old_model(fitted, table, tmp_path):
    X, y = table
    odd = X.assign(b=[Opaque() if v == "u" else v for v in X["b"]])
    bad = WordExpertsClassifier(epochs=1, random_state=0).fit(odd, y)
    with pytest.raises(ValueError, match="cannot save column 'b'"):
        bad.save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []                          # nothing half-written
    fitted.save(tmp_path / "m")
    with pytest.raises(ValueError, match="cannot save column 'b'"):
        bad.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert np.array_equal(WordExpertsClassifier.load(tmp_path / "m").predict_proba(X),
                          fitted.predict_proba(X))


def test_saving_over_a_model_replaces_it_whole(fitted, table, tmp_path):
    X, y = table
    other = WordExpertsClassifier(epochs=1, random_state=1).fit(X[["a", "b"]], y)
    other.save(tmp_path / "m")
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json",
                                                                   "model.safetensors"]
    assert WordExpertsClassifier.load(tmp_path / "m").n_features_in_ == 4


def test_versions_are_recorded_and_checked(fitted, tmp_path):
    assert wordexperts.__version__ == version("wordexperts")
    fitted.save(tmp_path / "m")
    meta_file = tmp_path / "m" / "model.json"
    meta = json.loads(meta_file.read_text())
    assert meta["format"] == persistence.FORMAT == "wordexperts.WordExpertsClassifier/4"
    assert meta["library_version"] == wordexperts.__version__
    meta["format"], meta["library_version"] = "wordexperts.WordExpertsClassifier/2", "0.1.0"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"format version 2 \(written by wordexperts 0\.1\.0\)"
                       r".* reads format version 4"):
        WordExpertsClassifier.load(tmp_path / "m")


# ------------------------------------------------------------------ explanations in chunks
def test_explanations_run_in_row_chunks(fitted, table, monkeypatch):
    X, _ = table
    whole = explain.mixture_contributions(fitted, X)
    sizes = [len(c.gates) for c in explain.contribution_chunks(fitted, X, rows=7)]
    assert max(sizes) == 7 and sum(sizes) == len(X)
    importance, shift = fitted.feature_importance(X), fitted.gate_shift(X[:100], X[100:])
    frame = fitted.explain(X.iloc[:30])
    seen = []
    original = explain._contributions

    def spy(clf, engine, inputs, absent):
        seen.append(len(inputs))
        return original(clf, engine, inputs, absent)

    monkeypatch.setattr(explain, "CHUNK_VALUES", 3000)             # a few rows a chunk
    monkeypatch.setattr(explain, "_contributions", spy)
    rows = explain.chunk_rows(fitted.model_.config, 2)
    assert 1 < rows < 30
    chunked = explain.mixture_contributions(fitted, X)
    assert max(seen) == rows
    for name in ("gates", "hidden", "mixture", "logits", "logit_bias"):
        assert np.allclose(getattr(chunked, name), getattr(whole, name), rtol=0, atol=1e-12)
    seen.clear()
    pd.testing.assert_series_equal(fitted.feature_importance(X), importance, atol=1e-12)
    pd.testing.assert_frame_equal(fitted.gate_shift(X[:100], X[100:]), shift, atol=1e-12)
    pd.testing.assert_frame_equal(fitted.explain(X.iloc[:30]), frame, atol=1e-12)
    assert max(seen) == rows


# ------------------------------------------------------------------ frames read as meant
def test_a_polars_frame_is_read_like_the_pandas_frame(fitted, table):
    pl = pytest.importorskip("polars")
    X, y = table
    frame = pl.from_dict({c: X[c].to_list() for c in X.columns})
    assert np.array_equal(fitted.predict_proba(frame), fitted.predict_proba(X))
    clf = WordExpertsClassifier(epochs=2, random_state=0).fit(frame, y)
    ref = WordExpertsClassifier(epochs=2, random_state=0).fit(X, y)
    assert list(clf.feature_names_in_) == list(X.columns)
    assert [c.numeric for c in clf.columns_] == [c.numeric for c in ref.columns_]
    assert clf.n_words_ == ref.n_words_
    assert np.array_equal(clf.predict_proba(X), ref.predict_proba(X))


def test_a_numeric_column_with_a_text_cell_warns_naming_the_row(table):
    X, y = table
    odd = X.assign(age=np.arange(len(X)).astype(object))
    odd.loc[17, "age"] = "forty"
    with pytest.warns(UserWarning, match=r"column 'age' holds numbers but for 1 of 240 cells "
                                         r"\(row 17: 'forty'\)"):
        WordExpertsClassifier(epochs=1, random_state=0).fit(odd, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # a text column: no warning
        WordExpertsClassifier(epochs=1, random_state=0).fit(X, y)


def test_a_text_cell_at_prediction_names_the_row(fitted, table):
    X, _ = table
    odd = X.head(5).astype({"w": object})
    odd.iloc[3, 2] = "n/a"
    with pytest.raises(ValueError, match=r"column 'w' was numeric in fit; row 3 \(0-based\) "
                                         r"holds 'n/a'"):
        fitted.predict(odd)


# ------------------------------------------------------------------ impute with the target
def test_impute_reads_the_target_column(fitted, table):
    X, y = table
    assert fitted.target_name_ == "label"
    rows = X.head(6).assign(label=y.head(6).to_numpy().astype(object))
    rows.loc[0, "a"] = np.nan
    rows.loc[1, "label"] = None
    filled = fitted.impute(rows)
    assert list(filled.columns) == list(rows.columns)
    assert filled.notna().all().all()
    assert filled.loc[1, "label"] == fitted.predict(X.iloc[[1]])[0]
    assert (filled.loc[2:, "label"] == rows.loc[2:, "label"]).all()
    # the observed target is context for the features: the same as the model's own reading
    ids, soft = fitted.encoder_.inputs(X.head(1).assign(a=np.nan))
    ids[0, -1] = fitted.words_[-1][list(fitted.classes_).index(y[0])]
    from wordexperts.tabular.solver import position_log_proba
    best = position_log_proba(fitted.model_, ids, fitted.words_[0], 0, soft).argmax(1)
    assert filled.loc[0, "a"] == fitted.columns_[0].values(best)[0]
    with pytest.raises(ValueError, match="target column 'label' holds classes not seen"):
        fitted.impute(rows.assign(label="maybe"))
