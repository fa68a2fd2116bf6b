"""``wordexperts reproduce real-shift``: real tables with a natural shift, ours against peers.

Every table of :data:`wordexperts.datasets.real_shift.REAL_SHIFT_TABLES` is split by its
natural groups (place, time, group). Per seed, a stratified 20% of the training group is
held out (the in-distribution slice, ID) and every method is fitted on the other 80%, then
scored on the ID slice and on the test group (out of distribution, OOD): accuracy, log loss
and expected calibration error (with the reliability diagram's bins), plus the fit's CPU
seconds (one thread). The seed is also each model's random state.

Methods (:func:`build_methods`): our estimator with its defaults and with
``preset="paper"``; logistic regression (one-hot categoricals, standardized numerics, C by
5-fold CV on log loss); CatBoost defaults (native categoricals); LightGBM defaults
(categoricals as pandas ``category``); a random forest (scikit-learn defaults, one-hot);
PyTorch Tabular's FT-Transformer and TabTransformer (library defaults; numeric columns as
continuous); the Explainable Boosting Machine (``interpret``, defaults); RealMLP and TabM
(``pytabkit``'s tuned defaults, ``RealMLP_TD`` and ``TabM_D``). ``--variant
NAME:key=value,...`` adds our estimator with other arguments (and ``average=K``: the mean
probability of K seeds' fits), for the tuning runs of docs/real-shift.md.

The tables are split once, before any result was seen, into a development part
(:data:`DEVELOPMENT`: defaults are chosen on it) and a held-out part (:data:`HELD_OUT`:
reported only).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.datasets.real_shift import REAL_SHIFT_TABLES, TARGET, load_real_shift
from wordexperts.harness.markdown import markdown_table
from wordexperts.harness.methods import Method
from wordexperts.harness.provenance import code_version
from wordexperts.harness.report import format_interval, interval
from wordexperts.harness.store import add_runner_arguments, run_grid
from wordexperts.tabular.calibration import expected_calibration_error, reliability

#: The development part: five mixed tables, and three small tables of measurements.
DEVELOPMENT: tuple[str, ...] = ("chile", "oj", "swiss_labor", "wage", "flights",
                                "crabs", "possum", "ais")
SMALL: tuple[str, ...] = ("crabs", "possum", "ais")
HELD_OUT: tuple[str, ...] = ("wvs", "credit", "nmes", "anes96", "fertility")
TABLES: tuple[str, ...] = DEVELOPMENT + HELD_OUT

#: At most this many rows of each group (train, test) enter the benchmark: a fixed random
#: sample (the same for every seed and method) of the larger tables, so that the whole grid
#: (the paper preset's copies and the neural peers are the costly fits) stays near 60
#: CPU-minutes on one thread. ``attrition`` (29 columns; the paper preset alone takes about
#: 4 CPU-minutes a fit on it) is a loader but not in the default grid.
ROW_CAP = 2_000
ID_FRACTION = 0.2
SPLIT = "__split__"  # column of the evaluation frame: "id" or "ood"

PEERS = ("lr", "catboost", "lightgbm", "rf", "ebm", "realmlp", "tabm", "ft_transformer",
         "tab_transformer")
REFERENCES = ("lr", "catboost")  # ours is compared with the better of these per table
DEFAULT_METHODS: tuple[str, ...] = ("ours", "ours_paper", *PEERS)
#: Our estimator as its defaults were before calibration, the step floor and the linear
#: reading (wordexperts 0.2): the same run's reference for what they changed.
PREVIOUS = {"numeric": "interpolate", "calibration": "none", "min_steps": 1}
#: The tables the calibration and accuracy comparisons are made on (the mixed ones).
MIXED: tuple[str, ...] = ("chile", "oj", "swiss_labor", "wage", "flights", "wvs", "credit",
                          "nmes", "anes96", "fertility")
PROBA_FLOOR = 1e-15  # log loss: probabilities clipped here (as scikit-learn's log_loss)


# ---------------------------------------------------------------------------------------
# Data

@functools.cache
def _table(name: str, keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = load_real_shift(name, keep_missing=keep_missing)
    n_train = n_test = ROW_CAP
    rng = np.random.default_rng(0)  # the caps' sample: fixed, whatever the seed
    if len(train) > n_train:
        train = train.iloc[np.sort(rng.choice(len(train), n_train, replace=False))]
    if len(test) > n_test:
        test = test.iloc[np.sort(rng.choice(len(test), n_test, replace=False))]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def load(config: str, seed: int, *, keep_missing: bool = False
         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(fit, evaluation)`` of table ``config`` for ``seed``: ``fit`` is the training group
    less its ID slice (a stratified ``ID_FRACTION`` drawn with ``seed``); ``evaluation`` is
    the ID slice then the test group, column ``__split__`` saying which ("id", "ood").
    ``keep_missing``: with the rows that have missing cells (see ``load_real_shift``)."""
    from sklearn.model_selection import train_test_split

    train, test = _table(config, keep_missing)
    fit, held = train_test_split(train, test_size=ID_FRACTION, random_state=seed,
                                 stratify=train[TARGET])
    evaluation = pd.concat([held.assign(**{SPLIT: "id"}), test.assign(**{SPLIT: "ood"})],
                           ignore_index=True)
    return fit.reset_index(drop=True), evaluation


def _features(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(categorical, numeric) feature columns: object columns are categorical."""
    columns = [c for c in frame.columns if c not in (TARGET, SPLIT)]
    categorical = [c for c in columns if frame[c].dtype == object]
    return categorical, [c for c in columns if c not in categorical]


def scores(classes: np.ndarray, proba: np.ndarray, evaluation: pd.DataFrame
           ) -> dict[str, Any]:
    """Accuracy, log loss and expected calibration error (``ece_*``, top label,
    :data:`~wordexperts.tabular.calibration.ECE_BINS` bins) on the ID slice and the OOD
    group, from class probabilities ``proba`` (rows of ``evaluation``, columns ``classes``);
    ``reliability_ood``: the OOD rows' count and summed confidence and hits per bin.

    >>> ev = pd.DataFrame({"y": ["a", "b", "a"], "__split__": ["id", "ood", "ood"]})
    >>> s = scores(np.array(["a", "b"]), np.array([[.9, .1], [.2, .8], [.4, .6]]), ev)
    >>> round(s["acc_ood"], 3), round(s["logloss_id"], 3), round(s["ece_ood"], 3)
    (0.5, 0.105, 0.4)
    """
    y = evaluation[TARGET].to_numpy()
    index = pd.Index(classes).get_indexer(y)
    p_true = np.where(index >= 0, proba[np.arange(len(y)), np.maximum(index, 0)], 0.0)
    hit = classes[proba.argmax(axis=1)] == y
    loss = -np.log(np.clip(p_true, PROBA_FLOOR, 1.0))
    out: dict[str, Any] = {}
    for split in ("id", "ood"):
        rows = (evaluation[SPLIT] == split).to_numpy()
        out[f"acc_{split}"] = float(hit[rows].mean())
        out[f"logloss_{split}"] = float(loss[rows].mean())
        # a class the training group never had counts as a miss (index -1 matches no column)
        out[f"ece_{split}"] = expected_calibration_error(proba[rows], index[rows])
    rows = (evaluation[SPLIT] == "ood").to_numpy()
    bins = reliability(proba[rows], index[rows])
    out["reliability_ood"] = {"count": bins["count"].tolist(),
                              "confidence": np.nan_to_num(bins["confidence"] * bins["count"]
                                                          ).tolist(),
                              "hits": np.nan_to_num(bins["accuracy"] * bins["count"]).tolist()}
    return out


# ---------------------------------------------------------------------------------------
# Methods: each fit(fit_frame, seed) -> predict_proba(evaluation) and its classes

Fitted = tuple[np.ndarray, Callable[[pd.DataFrame], np.ndarray]]


def _scored(fit_fn: Callable[[pd.DataFrame, int], Fitted]
            ) -> Callable[[pd.DataFrame, pd.DataFrame, int], dict[str, Any]]:
    def run(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, Any]:
        start = time.process_time()
        classes, predict_proba = fit_fn(train, seed)
        fit_seconds = time.process_time() - start
        proba = predict_proba(test.drop(columns=[TARGET, SPLIT]))
        return {**scores(np.asarray(classes), np.asarray(proba), test),
                "fit_cpu_seconds": fit_seconds, "n_fit": len(train),
                "n_id": int((test[SPLIT] == "id").sum()),
                "n_ood": int((test[SPLIT] == "ood").sum())}
    return run


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return frame.drop(columns=[TARGET]), frame[TARGET].to_numpy()


def fit_ours(train: pd.DataFrame, seed: int, *, params: dict[str, Any],
             average: int = 1) -> Fitted:
    """Our estimator with ``params``; ``average`` > 1: the mean probability of that many fits
    (random states ``seed * average + i``)."""
    from wordexperts.tabular import WordExpertsClassifier

    X, y = _xy(train)
    models = [WordExpertsClassifier(**params, random_state=seed * average + i).fit(X, y)
              for i in range(average)]
    return models[0].classes_, lambda X_: np.mean([m.predict_proba(X_) for m in models], 0)


def ours_settings(params: dict[str, Any], average: int = 1) -> dict[str, Any]:
    from wordexperts.tabular import WordExpertsClassifier

    effective = WordExpertsClassifier(**params).effective_params()
    effective.pop("random_state", None)
    # the model code's version: a change of the code refits (docs/reproducibility.md)
    return {"estimator": "WordExpertsClassifier", "params": effective, "average": average,
            "code": code_version()}


def _encoder(categorical: list[str], numeric: list[str], *, scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ("numeric", StandardScaler() if scale else "passthrough", numeric),
    ])


def fit_lr(train: pd.DataFrame, seed: int) -> Fitted:
    """Logistic regression: one-hot + standardized numerics; C from 10 values (1e-4..1e4)
    by stratified 5-fold CV on log loss. Deterministic (``seed`` unused)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    X, y = _xy(train)
    model = make_pipeline(_encoder(*_features(train), scale=True),
                          LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss",
                                               max_iter=5000)).fit(X, y)
    return model.classes_, model.predict_proba


def fit_rf(train: pd.DataFrame, seed: int) -> Fitted:
    """Random forest, scikit-learn defaults (100 trees), one-hot categoricals."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    X, y = _xy(train)
    model = make_pipeline(_encoder(*_features(train), scale=False),
                          RandomForestClassifier(random_state=seed, n_jobs=1)).fit(X, y)
    return model.classes_, model.predict_proba


def fit_catboost(train: pd.DataFrame, seed: int) -> Fitted:
    """CatBoost defaults (1000 trees, learning rate picked by CatBoost), native
    categoricals, one thread."""
    from catboost import CatBoostClassifier

    X, y = _xy(train)
    categorical, _ = _features(train)
    model = CatBoostClassifier(random_seed=seed, thread_count=1, verbose=False,
                               allow_writing_files=False, cat_features=categorical).fit(X, y)
    return model.classes_, model.predict_proba


def fit_lightgbm(train: pd.DataFrame, seed: int) -> Fitted:
    """LightGBM defaults; categoricals as pandas ``category`` with the training
    categories (an unseen category is missing)."""
    from lightgbm import LGBMClassifier

    X, y = _xy(train)
    categorical, _ = _features(train)
    types = {c: pd.CategoricalDtype(sorted(X[c].dropna().unique())) for c in categorical}
    model = LGBMClassifier(random_state=seed, n_jobs=1, verbose=-1).fit(X.astype(types), y)
    return model.classes_, lambda X_: model.predict_proba(X_.astype(types))


def fit_ebm(train: pd.DataFrame, seed: int) -> Fitted:
    """The Explainable Boosting Machine (``interpret``), defaults (interactions found by the
    library, outer bags 14), one thread; categoricals as strings (its own encoding)."""
    from interpret.glassbox import ExplainableBoostingClassifier

    X, y = _xy(train)
    model = ExplainableBoostingClassifier(random_state=seed, n_jobs=1).fit(X, y)
    return model.classes_, model.predict_proba


def fit_pytabkit(train: pd.DataFrame, seed: int, *, name: str) -> Fitted:
    """``pytabkit``'s RealMLP (``realmlp``: ``RealMLP_TD_Classifier``) or TabM (``tabm``:
    ``TabM_D_Classifier``) with their tuned defaults (each holds out 20% of the rows to
    pick its best epoch), on the CPU, one thread; categoricals as pandas ``category``
    with the training categories."""
    from pytabkit import RealMLP_TD_Classifier, TabM_D_Classifier

    X, y = _xy(train)
    categorical, _ = _features(train)
    types = {c: pd.CategoricalDtype(sorted(X[c].dropna().unique())) for c in categorical}
    model = {"realmlp": RealMLP_TD_Classifier, "tabm": TabM_D_Classifier}[name](
        random_state=seed, n_threads=1, device="cpu", verbosity=0)
    model.fit(X.astype(types), y)
    return model.classes_, lambda X_: model.predict_proba(X_.astype(types))


PEER_EPOCHS = 10  # PyTorch Tabular's default max_epochs (early stopping, patience 3)


def fit_peer(train: pd.DataFrame, seed: int, *, name: str) -> Fitted:
    """PyTorch Tabular's ``name`` (``ft_transformer``, ``tab_transformer``) with the
    library's defaults (20% random validation split, early stopping on it, batch 64,
    10 epochs at most); categorical and continuous columns as such."""
    import contextlib
    import os
    import tempfile

    from pytorch_tabular import TabularModel
    from pytorch_tabular.config import DataConfig, OptimizerConfig, TrainerConfig
    from pytorch_tabular.models import FTTransformerConfig, TabTransformerConfig

    categorical, numeric = _features(train)
    config = {"ft_transformer": FTTransformerConfig,
              "tab_transformer": TabTransformerConfig}[name](task="classification")
    tmp = tempfile.TemporaryDirectory(prefix="wordexperts-peer-")
    with contextlib.chdir(tmp.name):  # its run registry and checkpoints go there
        model = TabularModel(
            data_config=DataConfig(target=[TARGET], continuous_cols=numeric,
                                   categorical_cols=categorical),
            model_config=config, optimizer_config=OptimizerConfig(),
            trainer_config=TrainerConfig(
                max_epochs=PEER_EPOCHS, accelerator="cpu", devices=1, seed=seed,
                checkpoints_path=os.path.join(tmp.name, "checkpoints"), progress_bar="none",
                trainer_kwargs={"enable_model_summary": False}),
            verbose=False)
        model.fit(train=train, seed=seed)
    classes = np.array(model.datamodule.label_encoder[0].classes_)

    def predict_proba(X: pd.DataFrame) -> np.ndarray:
        with contextlib.chdir(tmp.name):
            out = model.predict(X)
        return out[[f"{TARGET}_{c}_probability" for c in classes]].to_numpy()

    return classes, predict_proba


def _library_settings(name: str, params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    def settings() -> dict[str, Any]:
        from importlib.metadata import version

        package = {"lr": "scikit-learn", "rf": "scikit-learn", "catboost": "catboost",
                   "lightgbm": "lightgbm", "ebm": "interpret-core", "realmlp": "pytabkit",
                   "tabm": "pytabkit"}.get(name, "pytorch_tabular")
        return {"library": package, "version": version(package), **params}
    return settings


def ours_method(name: str, params: dict[str, Any], average: int = 1) -> Method:
    """Our estimator with ``params`` (and ``average`` fits per run) as a method ``name``."""
    return Method(name, _scored(functools.partial(fit_ours, params=params, average=average)),
                  functools.partial(ours_settings, params, average), uses_torch=True)


def build_methods(names: list[str], variants: dict[str, tuple[dict[str, Any], int]]
                  ) -> list[Method]:
    """The methods ``names`` (of :data:`DEFAULT_METHODS` or ``variants``: name ->
    (estimator arguments, number of fits averaged)), in order."""
    peers = {"ft_transformer", "tab_transformer"}
    library = {"lr": fit_lr, "rf": fit_rf, "catboost": fit_catboost, "lightgbm": fit_lightgbm,
               "ebm": fit_ebm}
    out = []
    for name in dict.fromkeys(names):
        if name == "ours":
            out.append(ours_method(name, {}))
        elif name == "ours_paper":
            out.append(ours_method(name, {"preset": "paper"}))
        elif name == "ours_previous":
            out.append(ours_method(name, PREVIOUS))
        elif name in variants:
            out.append(ours_method(name, *variants[name]))
        elif name in library:
            out.append(Method(name, _scored(library[name]),
                              _library_settings(name, {"fit": library[name].__doc__})))
        elif name in peers:
            out.append(Method(name, _scored(functools.partial(fit_peer, name=name)),
                              _library_settings(name, {"model": name,
                                                       "max_epochs": PEER_EPOCHS}),
                              uses_torch=True))
        elif name in ("realmlp", "tabm"):
            out.append(Method(name, _scored(functools.partial(fit_pytabkit, name=name)),
                              _library_settings(name, {"fit": fit_pytabkit.__doc__,
                                                       "model": name}),
                              uses_torch=True))
        else:
            raise ValueError(f"unknown method {name!r}; choose from "
                             f"{[*DEFAULT_METHODS, 'ours_previous', *variants]}")
    return out


def parse_variant(text: str) -> tuple[str, dict[str, Any], int]:
    """``"NAME:key=value,..."`` -> (name, estimator arguments, fits averaged).

    >>> parse_variant("es:epochs=60,lr=0.01,vocabulary=per_column,average=3")
    ('es', {'epochs': 60, 'lr': 0.01, 'vocabulary': 'per_column'}, 3)
    """
    name, _, rest = text.partition(":")
    if not name or name in DEFAULT_METHODS:
        raise ValueError(f"--variant needs a new name before ':', got {text!r}")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--variant {name}: {item!r} is not key=value")
        params[key] = _value(value)
    average = params.pop("average", 1)
    if not isinstance(average, int) or average < 1:
        raise ValueError(f"--variant {name}: average must be an integer >= 1")
    return name, params, average


def _value(text: str) -> Any:
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ---------------------------------------------------------------------------------------
# Report

METRICS = {"acc_ood": "OOD accuracy", "acc_id": "ID accuracy",
           "logloss_ood": "OOD log loss", "logloss_id": "ID log loss",
           "ece_ood": "OOD ECE", "ece_id": "ID ECE"}


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (table, method): seeds, mean, sd and 95% interval of each metric
    (accuracy intervals clipped to [0, 1]), and mean fit CPU seconds."""
    rows = []
    for (config, method), group in runs.groupby(["config", "method"], sort=False):
        row: dict[str, Any] = {"config": config, "method": method, "n": len(group)}
        for metric in METRICS:
            # runs stored before the ECE was recorded have none
            values = group[metric].to_numpy(float) if metric in group else np.full(len(group),
                                                                                   np.nan)
            mean, sd, low, high = interval(values)
            if metric.startswith("acc"):
                low, high = max(low, 0.0), min(high, 1.0)
            row |= {f"{metric}_mean": mean, f"{metric}_sd": sd, f"{metric}_low": low,
                    f"{metric}_high": high}
        row["fit_s"] = float(group["fit_cpu_seconds"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def paired(runs: pd.DataFrame, ours: str) -> pd.DataFrame:
    """Per table: ``ours`` minus the better of LR and CatBoost (higher mean OOD accuracy),
    paired by seed, in OOD and ID accuracy and OOD log loss: mean and 95% interval."""
    rows = []
    for config, group in runs.groupby("config", sort=False):
        present = [m for m in REFERENCES if m in set(group["method"])]
        if ours not in set(group["method"]) or not present:
            continue
        best = group[group["method"].isin(present)].groupby("method")["acc_ood"].mean().idxmax()
        mine = group[group["method"] == ours].set_index("seed")
        base = group[group["method"] == best].set_index("seed")
        seeds = mine.index.intersection(base.index)
        row: dict[str, Any] = {"config": config, "method": ours, "best_ref": best,
                               "n": len(seeds)}
        for metric in ("acc_ood", "acc_id", "logloss_ood"):
            mean, _, low, high = interval((mine.loc[seeds, metric]
                                           - base.loc[seeds, metric]).to_numpy())
            row |= {f"{metric}_diff": mean, f"{metric}_low": low, f"{metric}_high": high}
        rows.append(row)
    return pd.DataFrame(rows)


def targets(summary: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    """Issue 8's targets per table for our default: OOD accuracy >= best of LR/CatBoost -
    0.005, ahead of it, seed sd <= 0.02, no more than 0.01 below the paper preset."""
    s = summary.set_index(["config", "method"])
    rows = []
    for r in comparison[comparison["method"] == "ours"].itertuples():
        ours = s.loc[(r.config, "ours")]
        has_paper = (r.config, "ours_paper") in s.index
        paper = s.loc[(r.config, "ours_paper"), "acc_ood_mean"] if has_paper else np.nan
        rows.append({
            "table": r.config, "part": "dev" if r.config in DEVELOPMENT else "held out",
            "ours": ours["acc_ood_mean"], "best of LR/CatBoost": r.best_ref,
            "its acc": s.loc[(r.config, r.best_ref), "acc_ood_mean"],
            "diff": r.acc_ood_diff,
            "within 0.005": "yes" if r.acc_ood_diff >= -0.005 else "no",
            "ahead": "yes" if r.acc_ood_diff > 0 else "no",
            "seed sd": ours["acc_ood_sd"],
            "sd <= 0.02": "yes" if ours["acc_ood_sd"] <= 0.02 else "no",
            "paper preset": paper,
            "paper seeds": int(s.loc[(r.config, "ours_paper"), "n"]) if has_paper else 0,
            "ours - paper": ours["acc_ood_mean"] - paper,
            ">= paper - 0.01": "" if np.isnan(paper) else (
                "yes" if ours["acc_ood_mean"] - paper >= -0.01 else "no"),
        })
    return pd.DataFrame(rows)


def calibration(summary: pd.DataFrame) -> pd.DataFrame:
    """Per mixed table, our default's OOD log loss and ECE beside LR's and CatBoost's: whether
    its log loss is at most the better one's + 0.01 and its ECE at most the better one's."""
    s = summary.set_index(["config", "method"])
    rows = []
    for config in MIXED:
        if not all((config, m) in s.index for m in ("ours", *REFERENCES)):
            continue
        loss = {m: s.loc[(config, m), "logloss_ood_mean"] for m in ("ours", *REFERENCES)}
        ece = {m: s.loc[(config, m), "ece_ood_mean"] for m in ("ours", *REFERENCES)}
        best_loss, best_ece = min(loss[m] for m in REFERENCES), min(ece[m] for m in REFERENCES)
        rows.append({"table": config, "ours log loss": loss["ours"], "LR": loss["lr"],
                     "CatBoost": loss["catboost"],
                     "<= better + 0.01": "yes" if loss["ours"] <= best_loss + 0.01 else "no",
                     "ours ECE": ece["ours"], "LR ECE": ece["lr"],
                     "CatBoost ECE": ece["catboost"],
                     "ECE <= better": "yes" if ece["ours"] <= best_ece else "no"})
    return pd.DataFrame(rows)


def small_tables(summary: pd.DataFrame) -> pd.DataFrame:
    """Per small table of measurements, OOD accuracy of our default against LR's."""
    s = summary.set_index(["config", "method"])
    rows = []
    for config in SMALL:
        if not all((config, m) in s.index for m in ("ours", "lr")):
            continue
        ours, lr = s.loc[(config, "ours"), "acc_ood_mean"], s.loc[(config, "lr"), "acc_ood_mean"]
        row = {"table": config, "ours": ours, "LR": lr, "diff": ours - lr,
               "within 0.02": "yes" if ours >= lr - 0.02 else "no"}
        if (config, "ours_previous") in s.index:
            row["previous default"] = s.loc[(config, "ours_previous"), "acc_ood_mean"]
        rows.append(row)
    return pd.DataFrame(rows)


def against_previous(runs: pd.DataFrame) -> pd.DataFrame:
    """Per table, our default minus the previous defaults (:data:`PREVIOUS`), paired by
    seed: OOD accuracy, log loss and ECE, and the ratio of their mean fit CPU seconds."""
    rows = []
    for config, group in runs.groupby("config", sort=False):
        ours = group[group["method"] == "ours"].set_index("seed")
        before = group[group["method"] == "ours_previous"].set_index("seed")
        seeds = ours.index.intersection(before.index)
        if not len(seeds):
            continue
        row: dict[str, Any] = {"table": config, "n": len(seeds)}
        for metric, label in (("acc_ood", "OOD acc"), ("logloss_ood", "OOD log loss"),
                              ("ece_ood", "OOD ECE")):
            mean, _, low, high = interval((ours.loc[seeds, metric]
                                           - before.loc[seeds, metric]).to_numpy(float))
            row[f"{label} diff"] = format_interval(mean, low, high)
        diff = float((ours.loc[seeds, "acc_ood"] - before.loc[seeds, "acc_ood"]).mean())
        row["acc no lower (0.003)"] = "yes" if diff >= -0.003 else "no"
        row["fit CPU ratio"] = float(ours.loc[seeds, "fit_cpu_seconds"].mean()
                                     / before.loc[seeds, "fit_cpu_seconds"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def plot_reliability(runs: pd.DataFrame, path: Path, *, methods: list[str],
                     configs: list[str]) -> None:
    """OOD reliability diagrams, one panel a table: per confidence bin (rows pooled over the
    seeds), the accuracy against the mean confidence, for ours and the references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in ("ours", "ours_previous", *REFERENCES) if m in methods]
    cols = 4
    nrows = -(-len(configs) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, config in zip(axes.flat, configs, strict=False):
        for method in shown:
            bins = runs[(runs["config"] == config) & (runs["method"] == method)]
            bins = [b for b in bins.get("reliability_ood", []) if isinstance(b, dict)]
            if not bins:
                continue
            count = np.sum([b["count"] for b in bins], axis=0)
            used = count > 0
            confidence = np.sum([b["confidence"] for b in bins], axis=0)[used] / count[used]
            hits = np.sum([b["hits"] for b in bins], axis=0)[used] / count[used]
            ax.plot(confidence, hits, "o-", ms=3, label=method)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlim(0.3, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(config, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(configs):]:
        ax.axis("off")
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7)
    fig.supxlabel("confidence (top class probability), pooled over seeds")
    fig.supylabel("accuracy")
    fig.suptitle("Out-of-distribution reliability diagrams (dashed: calibrated)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(summary: pd.DataFrame, path: Path, *, methods: list[str], configs: list[str]) -> None:
    """OOD and ID accuracy per table, each method's mean with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in methods if m in set(summary["method"])]
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.1 * len(configs) + 3), 7), sharex=True)
    for ax, metric in zip(axes, ("acc_ood", "acc_id"), strict=True):
        for j, method in enumerate(methods):
            rows = summary[summary["method"] == method].set_index("config").reindex(configs)
            x = np.arange(len(configs)) + (j - (len(methods) - 1) / 2) * width
            mean = rows[f"{metric}_mean"].to_numpy()
            err = np.vstack([mean - rows[f"{metric}_low"], rows[f"{metric}_high"] - mean])
            ax.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="s" if method in PEERS else "o",
                        ms=3 if method in PEERS else 5, capsize=2, label=method)
        ax.set_ylabel(METRICS[metric])
        ax.grid(alpha=0.3)
    axes[1].set_xticks(np.arange(len(configs)),
                       [c + ("" if c in DEVELOPMENT else "*") for c in configs], rotation=30,
                       ha="right")
    axes[0].legend(fontsize=7, ncol=4)
    axes[0].set_title("Real tables with a natural shift: mean and 95% interval over seeds "
                      "(* held out)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(records: list[dict[str, Any]], out: Path, *, configs: list[str],
                 methods: list[str], seeds: list[int], command: str) -> Path:
    """``report.md``, ``runs.csv``, ``summary.csv``, ``plot.png`` and ``reliability.png`` in
    ``out``."""
    if not records:
        raise ValueError("no finished runs to report")
    runs = pd.DataFrame(records).drop_duplicates(["method", "config", "seed"])
    order = {"config": configs, "method": methods, "seed": seeds}
    runs = runs[runs["config"].isin(configs) & runs["method"].isin(methods)]
    runs = runs.sort_values(list(order), key=lambda col: col.map(order[col.name].index))
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs)
    summary.to_csv(out / "summary.csv", index=False)
    plot(summary, out / "plot.png", methods=methods, configs=configs)
    present = [c for c in configs if c in set(summary["config"])]
    plot_reliability(runs, out / "reliability.png", methods=methods, configs=present)

    lines = ["# Real tables with a natural shift", "", f"Command: `{command}`", "",
             f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}; a seed is each model's "
             f"random state and the draw of the in-distribution (ID) slice, a stratified "
             f"{ID_FRACTION:.0%} of the training group not used for fitting. OOD: the test "
             "group. Cells: mean [95% t-interval over seeds, accuracies clipped to [0, 1]].",
             f"Development tables (defaults chosen on them): {', '.join(DEVELOPMENT)}. "
             f"Held out (reported only): {', '.join(HELD_OUT)}.", "", "## Tables", ""]
    info = []
    for c in present:
        t = REAL_SHIFT_TABLES[c]
        used = (min(t.n_train, ROW_CAP), min(t.n_test, ROW_CAP))
        info.append({"table": c, "part": "dev" if c in DEVELOPMENT else "held out",
                     "source": t.source, "target": t.target, "shift": t.shift,
                     "train rows": t.n_train, "test rows": t.n_test,
                     "used (train, test)": f"{used[0]}, {used[1]}"})
    lines += [markdown_table(pd.DataFrame(info))]

    wide = summary.pivot(index="config", columns="method", values="acc_ood_mean")
    wide = wide.reindex(index=present, columns=[m for m in methods if m in wide.columns])
    lines += ["", "## OOD accuracy (mean over seeds)", "",
              markdown_table(wide.rename_axis("table").reset_index())]

    comparisons = pd.concat([paired(runs, m) for m in methods if m not in PEERS],
                            ignore_index=True)
    lines += ["", "## Ours against the better of LR and CatBoost (paired by seed)", "",
              "Difference = ours - the better of LR and CatBoost (by mean OOD accuracy on that "
              "table), per seed; mean [95% t-interval].", ""]
    if comparisons.empty:
        lines.append("Not run: needs one of ours and LR or CatBoost.")
    else:
        lines.append(markdown_table(pd.DataFrame({
            "table": comparisons["config"], "method": comparisons["method"],
            "best ref": comparisons["best_ref"], "n": comparisons["n"],
            "OOD acc diff": [format_interval(r.acc_ood_diff, r.acc_ood_low, r.acc_ood_high)
                             for r in comparisons.itertuples()],
            "ID acc diff": [format_interval(r.acc_id_diff, r.acc_id_low, r.acc_id_high)
                            for r in comparisons.itertuples()],
            "OOD log loss diff": [format_interval(r.logloss_ood_diff, r.logloss_ood_low,
                                      r.logloss_ood_high) for r in comparisons.itertuples()],
        })))
        goals = targets(summary, comparisons)
        if not goals.empty:
            lines += ["", "## Accuracy against the better of LR and CatBoost (our default)", "",
                      markdown_table(goals)]
            for part, rows in goals.groupby("part", sort=False):
                lines.append(f"\n{part}: within 0.005 on {(rows['within 0.005'] == 'yes').sum()}"
                             f" of {len(rows)}, ahead on {(rows['ahead'] == 'yes').sum()}, "
                             f"seed sd <= 0.02 on {(rows['sd <= 0.02'] == 'yes').sum()}, "
                             f">= paper - 0.01 on {(rows['>= paper - 0.01'] == 'yes').sum()}.")

    calibrated = calibration(summary)
    if not calibrated.empty:
        met_loss = (calibrated["<= better + 0.01"] == "yes").sum()
        met_ece = (calibrated["ECE <= better"] == "yes").sum()
        lines += ["", "## Calibration out of distribution: ours against LR and CatBoost", "",
                  "Mean over seeds of the OOD log loss and the top-label expected calibration "
                  "error (15 equal-width confidence bins); reliability diagrams in "
                  "`reliability.png`.", "", markdown_table(calibrated), "",
                  f"Log loss at most the better of LR and CatBoost + 0.01 on {met_loss} of "
                  f"{len(calibrated)} tables; ECE no worse than the better one's on {met_ece} "
                  f"of {len(calibrated)}."]
    small = small_tables(summary)
    if not small.empty:
        lines += ["", "## Small tables of measurements: ours against LR", "",
                  markdown_table(small), "",
                  f"Within 0.02 of LR on {(small['within 0.02'] == 'yes').sum()} of "
                  f"{len(small)}."]
    previous = against_previous(runs)
    if not previous.empty:
        mixed = previous[previous["table"].isin(MIXED)]
        lines += ["", "## Our default against the previous defaults (paired by seed)", "",
                  "Previous: " + ", ".join(f"`{k}={v!r}`" for k, v in PREVIOUS.items())
                  + " (no calibration, no step floor, numeric columns interpolated); "
                  "fit CPU ratio: mean fit CPU seconds of ours over theirs.", "",
                  markdown_table(previous)]
        if not mixed.empty:
            lines += ["", f"On the {len(mixed)} mixed tables: OOD accuracy no lower (within "
                      f"0.003) on {(mixed['acc no lower (0.003)'] == 'yes').sum()}; median fit "
                      f"CPU ratio {mixed['fit CPU ratio'].median():.2f}."]

    lines += ["", "## Every table and method", ""]
    detail = {"table": summary["config"], "method": summary["method"], "n": summary["n"]}
    for metric, label in METRICS.items():
        detail[label] = [format_interval(r[f"{metric}_mean"], r[f"{metric}_low"],
                                         r[f"{metric}_high"]) for _, r in summary.iterrows()]
        if metric == "acc_ood":
            detail["OOD acc seed sd"] = summary["acc_ood_sd"]
    detail["fit CPU s"] = summary["fit_s"].map(lambda s: f"{s:.1f}")
    lines.append(markdown_table(pd.DataFrame(detail)))

    cost = runs.groupby("method", sort=False)["seconds"].agg(["count", "mean", "sum"])
    lines += ["", "## Cost (wall seconds per run: fit and scoring, one thread)", "",
              markdown_table(pd.DataFrame({
                  "method": cost.index, "runs": cost["count"],
                  "mean s/run": cost["mean"].map(lambda s: f"{s:.1f}"),
                  "total s": cost["sum"].map(lambda s: f"{s:.0f}")})),
              "", "Every run: `runs.csv`; summary: `summary.csv`; plot: `plot.png`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


# ---------------------------------------------------------------------------------------
# Command

def add_grid_arguments(parser: argparse.ArgumentParser, *, methods: tuple[str, ...],
                       default_out: str) -> None:
    """The options of the commands over the real-shift tables: tables, seeds, methods,
    variants of ours, and the runner's."""
    parser.add_argument("--tables", nargs="+", default=list(TABLES), metavar="TABLE",
                        help=f"tables (default: all: {' '.join(TABLES)})")
    parser.add_argument("--seeds", type=int, default=5, metavar="K",
                        help="seeds 0..K-1 (default: 5)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"methods (default: {' '.join(methods)})")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:k=v,...",
                        help="add our estimator with these arguments as method NAME "
                             "(average=K: mean probability of K fits); repeatable")
    add_runner_arguments(parser, default_out=default_out)


def check_grid_arguments(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for a seed count below 1 or an unknown table."""
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    unknown = [t for t in args.tables if t not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {list(TABLES)}")


def configure(parser: argparse.ArgumentParser) -> None:
    add_grid_arguments(parser, methods=DEFAULT_METHODS, default_out="runs/real-shift")
    parser.add_argument("--part", choices=("all", "dev", "held-out"), default="all",
                        help="only the development or the held-out tables")


def run(args: argparse.Namespace) -> int:
    check_grid_arguments(args)
    part = {"all": TABLES, "dev": DEVELOPMENT, "held-out": HELD_OUT}[args.part]
    configs = [t for t in args.tables if t in part]
    variants = {name: (params, average)
                for name, params, average in map(parse_variant, args.variant)}
    names = args.methods or [*DEFAULT_METHODS, *variants]
    methods = build_methods(names, variants)
    for config in configs:
        _table(config)  # fails early without the data's package
    seeds = list(range(args.seeds))
    outcome = run_grid(methods, configs, seeds, load, out=args.out, scheduler=args.scheduler,
                       workers=args.workers, progress=args.progress,
                       submit=not args.report_only)
    if not outcome.records:
        print("no finished runs", file=sys.stderr)
        return 1
    command = ("wordexperts reproduce real-shift --seeds "
               f"{args.seeds} --tables {' '.join(configs)} --methods {' '.join(names)}"
               + "".join(f" --variant {v}" for v in args.variant))
    report = write_report(outcome.records, args.out, configs=configs,
                          methods=[m.name for m in methods], seeds=seeds, command=command)
    print(report.read_text())
    return 1 if outcome.failed else 0
