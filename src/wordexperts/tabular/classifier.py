"""The presets, and what :meth:`WordExpertsClassifier.fit
<wordexperts.tabular.estimator.WordExpertsClassifier.fit>` does with a checked table: read it
(each numeric reading ``numeric="auto"`` tries), cross-fit when a choice or the temperature
needs predictions of unseen rows, fit the kept model, and calibrate it
(docs/calibration.md)::

    X, y ──► TableEncoder (per reading) ──► [2 folds: fit on one, predict the other] ──►
         reading with the lower log loss ──► fit_table on every row ──► temperature

The kept model draws from the estimator's random generator exactly as it would without the
folds (they draw from a generator spawned from it), so calibration never changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight

from wordexperts.core.attention import AttentionConfig
from wordexperts.tabular import encoding
from wordexperts.tabular.calibration import CROSS_FIT_FOLDS, fit_temperature, stratified_folds
from wordexperts.tabular.encoding import Soft, TableEncoder
from wordexperts.tabular.solver import (
    AUTO_OBJECTIVE_ROWS,
    FitSettings,
    TableFit,
    cross_fitted_log_proba,
    fit_table,
    holds_out,
    objectives_to_try,
)

__all__ = ["AUTO_DROPOUT", "AUTO_DROPOUT_ROWS", "PRESETS", "PRESET_PARAMS",
           "ClassifierFit", "Encoded", "as_generator", "auto_dropout", "encode_table",
           "fit_classifier", "row_weights"]

#: Settings a preset gives the parameters left at ``None``. ``"paper"``: the paper's recipe
#: (L masked copies per row, 128 copies a step, Adam 1e-3, 200 epochs, dropout 0.1, one
#: vocabulary, no step budget, no early stopping, numeric values as their bins' words, the
#: MLM objective, no calibration). ``"fast"``: rows, all masked positions of a row from one
#: pass, dropout by rows per category, a larger learning rate decayed linearly, at most 120
#: epochs and 2000 steps but at least 400, numeric values read between two bins' words or
#: linearly (chosen on cross-fitted predictions), the objective chosen on held-out rows for
#: tables of more than 10,000 rows, a temperature; measured faster, at least as accurate and
#: better calibrated out of distribution (docs/tabular-estimator.md, docs/real-shift.md).
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"method": "single_pass", "epochs": 120, "max_steps": 2000, "min_steps": 400,
             "batch_size": 128, "lr": 7e-3, "lr_schedule": "linear", "dropout": "auto",
             "vocabulary": "auto", "early_stopping": False, "numeric": "auto",
             "objective": "auto", "max_positions": 32, "missing": "mask",
             "context_corruption": 0.0, "calibration": "temperature"},
    "paper": {"method": "copies", "epochs": 200, "max_steps": None, "min_steps": None,
              "batch_size": 128, "lr": 1e-3, "lr_schedule": "constant", "dropout": 0.1,
              "vocabulary": "shared", "early_stopping": False, "numeric": "bin",
              "objective": "mlm", "max_positions": None, "missing": "mask",
              "context_corruption": 0.0, "calibration": None},
}
#: The parameters a preset fills.
PRESET_PARAMS = ("method", "epochs", "max_steps", "min_steps", "batch_size", "lr",
                  "lr_schedule", "dropout", "vocabulary", "early_stopping", "numeric",
                  "objective", "max_positions", "missing", "context_corruption",
                  "calibration")
#: ``dropout="auto"`` (the fast preset's): this dropout on tables with fewer than
#: ``AUTO_DROPOUT_ROWS`` training rows per category, none on larger ones. Chosen on the
#: development tables of ``reproduce real-shift`` and the paper's data (docs/real-shift.md):
#: dropout 0.1 steadied the small tables (oj: seed sd 0.155 -> 0.012) but cost 0.04 on the
#: paper's 5_0.9_0 simulation, which has 33 rows per category; the development tables that
#: gained have 5-18.
AUTO_DROPOUT = 0.1
AUTO_DROPOUT_ROWS = 20


@dataclass
class ClassifierFit:
    """What :func:`fit_classifier` returns: the kept reading's ``encoder``, the ``fit``, the
    ``temperature`` (1.0 without calibration), the cross-fitted log loss of each reading tried
    (empty without cross-fitting), and the ``settings`` resolved (``numeric`` the kept
    reading, ``dropout`` a number, ``vocabulary`` the encoder's)."""

    encoder: TableEncoder
    fit: TableFit
    temperature: float
    cross_fit_losses: dict[str, float]
    settings: dict[str, Any]


def fit_classifier(X: Any, y_codes: np.ndarray, classes: np.ndarray, settings: dict[str, Any],
                   *, rng: np.random.Generator, progress: bool = False,
                   row_weight: np.ndarray | None = None) -> ClassifierFit:
    """Fit the classifier's model on the checked table ``X`` and the target's class indices
    ``y_codes``, with the estimator's checked ``settings`` (see the module docs).
    ``row_weight`` (n,): each row's weight in the objective (every cell of the row), in the
    choice of reading and in the cross-fitted temperature; ``None``: equal weights."""
    s = dict(settings)
    train = FitSettings.of(s)
    folds_rng = rng.spawn(1)[0]     # the cross-fitting's: the kept fit draws as without it
    objectives = objectives_to_try(s["objective"], len(y_codes))
    small = not holds_out(len(y_codes), train, objectives)
    first = "interpolate" if s["numeric"] == "auto" else s["numeric"]
    tables = {first: encode_table(X, y_codes, classes, s, numeric=first,
                                  row_weight=row_weight)}
    # numeric="auto" also tries the linear reading on a small table with a measurement
    # column (on a table without one it would read every cell the same way)
    if (s["numeric"] == "auto" and small and len(y_codes) <= AUTO_OBJECTIVE_ROWS
            and any(c.binned for c in tables[first].encoder.columns)):
        tables["linear"] = encode_table(X, y_codes, classes, s, numeric="linear",
                                        row_weight=row_weight)
    readings = tuple(tables)
    losses: dict[str, float] = {}
    held: dict[str, np.ndarray] = {}
    if small and (s["calibration"] == "temperature" or len(readings) > 1):
        folds = stratified_folds(y_codes, CROSS_FIT_FOLDS, folds_rng)
        for reading, table in tables.items():
            held[reading] = cross_fitted_log_proba(
                table.ids, table.codes, table.weight, folds=folds, words=table.encoder.words,
                config=table.config, settings=train, rng=folds_rng, soft=table.soft,
                objectives=objectives)
            losses[reading] = float(-np.average(
                held[reading][np.arange(len(y_codes)), y_codes], weights=row_weight))
    reading = min(readings, key=lambda r: losses.get(r, 0.0))
    table = tables[reading]
    s |= {"numeric": reading, "dropout": table.config.dropout,
          "vocabulary": table.encoder.vocabulary}
    fit = fit_table(table.ids, table.codes, table.weight, words=table.encoder.words,
                    config=table.config, settings=train, rng=rng, progress=progress,
                    soft=table.soft, objectives=objectives)
    temperature = 1.0
    if s["calibration"] == "temperature":
        if fit.held_out is not None:     # NOTE: the held-out rows' own weights are not kept
            temperature = fit_temperature(*fit.held_out)
        else:
            temperature = fit_temperature(held[reading], y_codes, row_weight)
    return ClassifierFit(table.encoder, fit, temperature, losses, s)


class Encoded(NamedTuple):
    """A training table read one way: its encoder, word ids, each cell's class index, which
    cells are observed, the cells between two words, and the model's config."""

    encoder: TableEncoder
    ids: np.ndarray
    codes: np.ndarray
    weight: np.ndarray
    soft: Soft | None
    config: AttentionConfig


def encode_table(X: Any, y_codes: np.ndarray, classes: np.ndarray, s: dict[str, Any], *,
                 numeric: str, row_weight: np.ndarray | None = None) -> Encoded:
    """Read the training table with ``numeric``; the model's config for that reading (its
    vocabulary, and ``dropout="auto"`` resolved on its categories)."""
    encoder = TableEncoder.fit(X, classes, numeric=numeric, n_bins=s["n_bins"],
                               vocabulary=s["vocabulary"], handle_unknown=s["handle_unknown"])
    features = encoder.codes(X)
    codes = np.empty((len(y_codes), features.shape[1] + 1), dtype=encoding.smallest_int(
        max(len(w) for w in encoder.words)))
    codes[:, :-1] = features
    codes[:, -1] = y_codes
    del features
    dropout = s["dropout"]
    if dropout == "auto":
        dropout = auto_dropout(len(y_codes), sum(len(w) for w in encoder.words))
    config = AttentionConfig(
        vocab_size=encoder.n_words, seq_len=codes.shape[1], d_model=s["d_model"],
        n_heads=s["n_heads"], block="bert", d_ff=s["d_ff"], dropout=dropout,
        ln_eps=1e-6, absent_experts=s["missing"] == "absent",
    )  # ln_eps: the paper's Keras LayerNormalization
    ids = encoder.ids(codes)
    weight = codes >= 0                             # observed cells
    if row_weight is not None:
        weight = weight * row_weight[:, None].astype(np.float32)
    np.maximum(codes, 0, out=codes)                 # class index of each cell
    ids, soft = encoder.soft(X, ids)
    return Encoded(encoder, ids, codes, weight, soft, config)


def auto_dropout(n_rows: int, n_categories: int) -> float:
    """``dropout="auto"``: :data:`AUTO_DROPOUT` when the table has fewer than
    :data:`AUTO_DROPOUT_ROWS` training rows per category (summed over the columns and the
    target: each category is a word with its own embeddings), else 0.

    >>> auto_dropout(571, 103), auto_dropout(2000, 60)
    (0.1, 0.0)
    """
    return AUTO_DROPOUT if n_rows < AUTO_DROPOUT_ROWS * n_categories else 0.0


def as_generator(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from an int, None, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"random_state must be an int, None or a NumPy generator, got "
                         f"{random_state!r}") from exc


def row_weights(X: Any, y: np.ndarray, sample_weight: Any, class_weight: Any
                ) -> np.ndarray | None:
    """Each training row's weight: ``sample_weight`` (checked: one non-negative number a
    row, not all zero) times its class's weight (``class_weight``: a dict, ``"balanced"``);
    ``None`` when neither is given (every row weighs 1, and the fit takes its unweighted
    path)."""
    if sample_weight is None and class_weight is None:
        return None
    return (_check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            * compute_sample_weight(class_weight, y))
