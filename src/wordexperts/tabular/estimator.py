"""Tabular word experts: a scikit-learn classifier for categorical tables (paper.md section 4).

Each column of a table is a position of a "sentence", each category of a column a word. The
model is a one-block :class:`~wordexperts.core.attention.BidirectionalAttention` fitted as a masked
language model over all columns, the target column (placed last) included; the target is
predicted by masking it, and any other column can be predicted the same way (imputation)::

    row      x0    x1   ...  x{D-1}   y
    words    w(0,x0) ...              mask  ──► attention block ──► p(y | x)

Numeric columns with more than ``n_bins`` distinct values are cut into ``n_bins`` quantile
bins learned on the training data (or rejected, ``numeric="error"``).

Vocabulary: ``"shared"`` gives equal categories of different columns one word (the paper's
setting: every column cut into the same quantile bins); ``"per_column"`` makes each
(column, category) its own word. Either way the prediction at a column is a softmax over that
column's categories only. ``"auto"`` shares when one column's categories contain every other
column's (as in the paper's tables), and keeps columns apart otherwise.
"""

from __future__ import annotations

import json
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse
import torch
from safetensors.numpy import load_file, save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from wordexperts.core.attention import AttentionConfig, BidirectionalAttention
from wordexperts.core.experts import to_experts
from wordexperts.tabular.one_block import fit_one_block, paper_init

__all__ = ["PRESETS", "WordExpertsClassifier"]

#: Settings a preset gives the parameters left at ``None``. ``"paper"``: the paper's recipe
#: (L masked copies per row, 128 copies a step, Adam 1e-3, 200 epochs, dropout 0.1, one
#: vocabulary). ``"fast"``: rows, all masked positions of a row from one pass, no dropout, a
#: larger learning rate decayed linearly; measured faster and at least as accurate out of
#: distribution (docs/tabular-estimator.md).
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"method": "single_pass", "epochs": 120, "batch_size": 128, "lr": 7e-3,
             "lr_schedule": "linear", "dropout": 0.0, "vocabulary": "auto"},
    "paper": {"method": "copies", "epochs": 200, "batch_size": 128, "lr": 1e-3,
              "lr_schedule": "constant", "dropout": 0.1, "vocabulary": "shared"},
}
_PRESET_PARAMS = ("method", "epochs", "batch_size", "lr", "lr_schedule", "dropout", "vocabulary")

_FORMAT = "wordexperts.WordExpertsClassifier/1"
# restart a fit whose target puts more than this share of every head's gate on its own
# masked slot (on average over up to _COLLAPSE_ROWS training rows), at most _MAX_RESTARTS times
_COLLAPSED = 0.99
_COLLAPSE_ROWS = 512
_MAX_RESTARTS = 2


@dataclass
class _Column:
    """How one column's values become category codes ``0..n-1`` (``-1``: missing or unknown).

    ``categories``: the values of the codes; for a binned numeric column the bin indices, with
    ``edges`` (inner quantile edges) and ``bin_values`` (each bin's training median, the
    value :meth:`WordExpertsClassifier.impute` fills in).
    """

    name: str
    categories: np.ndarray
    edges: np.ndarray | None = None
    bin_values: np.ndarray | None = None

    @property
    def numeric(self) -> bool:
        return self.edges is not None

    def codes(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes of ``values`` and a mask of the non-missing values that are unknown."""
        missing = np.asarray(pd.isna(values), dtype=bool)
        if self.numeric:
            try:
                numbers_ = np.where(missing, 0.0, values).astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"column {self.name!r} was numeric in fit; got values that "
                                 f"are not numbers ({exc})") from exc
            # right-closed bins, as pandas.qcut; values outside the training range go to
            # the first or last bin
            codes = np.searchsorted(self.edges, numbers_, side="left")
            return np.where(missing, -1, codes), np.zeros_like(missing)
        codes = pd.Index(self.categories).get_indexer(pd.Index(values, dtype=object))
        codes = np.where(missing, -1, codes)
        return codes, (codes < 0) & ~missing

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The value of each code (the bin's median for a numeric column)."""
        return (self.bin_values if self.numeric else self.categories)[codes]


def _column_values(X: Any, j: int) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        column = X.iloc[:, j]
        if isinstance(column.dtype, pd.CategoricalDtype):
            return np.asarray(column.astype(object))
        if (isinstance(column.dtype, pd.api.extensions.ExtensionDtype)
                and pd.api.types.is_numeric_dtype(column.dtype)
                and not pd.api.types.is_bool_dtype(column.dtype)):
            return column.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable Int64 etc.
        return column.to_numpy()
    return X[:, j]


def _column_names(X: Any, n: int) -> list[str]:
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return [f"x{j}" for j in range(n)]


def _as_table(X: Any, *, what: str = "X") -> Any:
    """``X`` as a DataFrame or a 2-D NumPy array (object or numeric), validated."""
    if scipy.sparse.issparse(X):
        raise TypeError(f"{what} is a sparse matrix; WordExpertsClassifier needs dense "
                        "categorical columns: use X.toarray()")
    if not isinstance(X, pd.DataFrame):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(
                f"{what} must be 2-D (rows, columns), got shape {X.shape}. "
                "Reshape your data with X.reshape(-1, 1) for one column"
            )
    if X.shape[0] == 0:
        raise ValueError(f"{what} is empty: 0 rows (shape {X.shape})")
    if X.shape[1] == 0:
        raise ValueError(f"{what} has 0 feature(s) (shape={X.shape}) while a minimum of 1 "
                         "is required.")
    return X


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    unique = pd.unique(pd.Series(values, dtype=object))
    try:
        return np.array(sorted(unique), dtype=object)
    except TypeError:  # mixed types: order by (type name, text)
        return np.array(sorted(unique, key=lambda v: (type(v).__name__, str(v))), dtype=object)


def _fit_column(values: np.ndarray, name: str, *, numeric: str, n_bins: int) -> _Column:
    kind = values.dtype.kind
    if kind in "cmMV":
        raise ValueError(f"column {name!r} has unsupported dtype {values.dtype}: give "
                         "categories (int, str, bool, pandas categorical) or numbers")
    present = values[~np.asarray(pd.isna(values), dtype=bool)]
    if len(present) == 0:
        raise ValueError(f"column {name!r} has no values (all missing)")
    if kind in "iuf" and len(np.unique(present)) > n_bins:
        if numeric == "error":
            raise ValueError(
                f"column {name!r} is numeric with {len(np.unique(present))} distinct values "
                f"(more than n_bins={n_bins}): convert it to categories, or use numeric='bin'"
            )
        present = present.astype(np.float64)
        if not np.isfinite(present).all():
            raise ValueError(f"column {name!r} holds infinite values")
        edges = np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)))[1:-1]
        codes = np.searchsorted(edges, present, side="left")
        bin_values = np.array([np.median(present[codes == k]) for k in range(len(edges) + 1)])
        return _Column(name, np.arange(len(edges) + 1), edges=edges, bin_values=bin_values)
    if kind in "iub":
        return _Column(name, np.unique(present))
    if kind == "f":
        categories = np.unique(present)
        if np.all(categories == np.round(categories)):  # integers stored as floats
            categories = categories.astype(np.int64)
        return _Column(name, categories)
    return _Column(name, _sorted_unique(present))


class WordExpertsClassifier(ClassifierMixin, BaseEstimator):
    """Bidirectional attention over the columns of a categorical table, as a classifier.

    The paper's tabular model (paper.md section 4): each column a position, each category a
    word; fitted as a masked language model over all columns plus the target, and predicting
    the target by masking it. ``gates`` shows how much each column (expert) weighed in each
    prediction; ``impute`` predicts missing cells of any column from the others.

    Parameters
    ----------
    preset : {"fast", "paper"}
        Recipe (:data:`PRESETS`) for the settings left at ``None``. ``"paper"``: the paper's
        (each row's L masked copies, batches of 128 copies, Adam 1e-3, 200 epochs, dropout
        0.1, one vocabulary). ``"fast"`` (default): batches of 128 rows, each predicting all
        its columns from one pass, no dropout, Adam 7e-3 with a short warm-up then decayed
        linearly to 0 over 120 epochs: measured faster and at least as accurate out of
        distribution.
    objective : {"mlm", "target"}
        ``"mlm"``: predict every column from the others (the paper's); ``"target"``: the
        target column only, for comparison.
    method : {"single_pass", "copies"} or None
        How a batch is built: rows (each predicting all its columns) or masked copies
        (each predicting one cell). Same objective; ``None``: the preset's.
    vocabulary : {"auto", "shared", "per_column"} or None
        Whether equal categories of different columns share a word (see module docs).
    numeric : {"bin", "error"}
        What to do with a numeric column with more than ``n_bins`` distinct values.
    n_bins : int
        Quantile bins for such columns, learned on the training data.
    handle_unknown : {"mask", "error"}
        A category not seen in training: read as the mask (missing), with a warning, or raise.
    d_model, n_heads, d_ff : model shape (the paper's: 20, 5, 5).
    dropout : dropout on the attention and feed-forward outputs in training (as the paper's
        block); ``None``: the preset's.
    epochs, batch_size, lr, lr_schedule : training length, batch (rows or copies), Adam
        learning rate, and ``"constant"`` or ``"linear"`` (a linear warm-up over the first
        5% of the steps, then linear decay to 0); ``None``: the preset's.
    random_state : int, None or NumPy generator
        Seeds the initialization, shuffling and dropout: the same int gives the same model.
    verbose : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    classes_ : the target's classes. ``n_features_in_``, ``feature_names_in_`` (DataFrames with
    string column names). ``model_`` : the fitted
    :class:`~wordexperts.core.attention.BidirectionalAttention` (positions: the features in order,
    then the target). ``vocabulary_`` : "shared" or "per_column". ``history_`` : mean training
    loss per epoch. ``n_restarts_`` : fits restarted from a new initialization because the
    target's gates had collapsed onto its own masked slot in every head (the target then
    ignores every feature); at most 2, the last fit is kept.

    >>> from wordexperts.datasets import make_shift_simulation
    >>> train, test = make_shift_simulation(n=300, seed=0)
    >>> clf = WordExpertsClassifier(epochs=5, random_state=0)
    >>> clf.fit(train.drop(columns="y"), train["y"]).predict(test.drop(columns="y")).shape
    (300,)
    """

    def __init__(
        self,
        *,
        preset: Literal["fast", "paper"] = "fast",
        objective: Literal["mlm", "target"] = "mlm",
        method: Literal["single_pass", "copies"] | None = None,
        vocabulary: Literal["auto", "shared", "per_column"] | None = None,
        numeric: Literal["bin", "error"] = "bin",
        n_bins: int = 10,
        handle_unknown: Literal["mask", "error"] = "mask",
        d_model: int = 20,
        n_heads: int = 5,
        d_ff: int = 5,
        dropout: float | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        lr_schedule: Literal["constant", "linear"] | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.objective = objective
        self.method = method
        self.vocabulary = vocabulary
        self.numeric = numeric
        self.n_bins = n_bins
        self.handle_unknown = handle_unknown
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags

    # ----------------------------------------------------------------- settings
    def effective_params(self) -> dict[str, Any]:
        """``get_params()`` with the settings left at ``None`` filled from the preset.

        >>> WordExpertsClassifier(preset="paper").effective_params()["method"]
        'copies'
        """
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        params = self.get_params()
        for name in _PRESET_PARAMS:
            if params[name] is None:
                params[name] = PRESETS[self.preset][name]
        return params

    def _settings(self) -> dict[str, Any]:
        """:meth:`effective_params`, checked."""
        s = self.effective_params()
        choices = {"objective": ("mlm", "target"), "method": ("single_pass", "copies"),
                   "vocabulary": ("auto", "shared", "per_column"), "numeric": ("bin", "error"),
                   "handle_unknown": ("mask", "error"), "lr_schedule": ("constant", "linear")}
        for name, allowed in choices.items():
            if s[name] not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {s[name]!r}")
        for name in ("n_bins", "d_model", "n_heads", "d_ff", "epochs", "batch_size"):
            low = 2 if name == "n_bins" else 1
            if (not isinstance(s[name], numbers.Integral) or isinstance(s[name], bool)
                    or s[name] < low):
                raise ValueError(f"{name} must be an integer >= {low}, got {s[name]!r}")
            s[name] = int(s[name])
        if not (isinstance(s["dropout"], numbers.Real) and 0 <= s["dropout"] < 1):
            raise ValueError(f"dropout must be in [0, 1), got {s['dropout']!r}")
        if not (isinstance(s["lr"], numbers.Real) and s["lr"] > 0):
            raise ValueError(f"lr must be a positive number, got {s['lr']!r}")
        if s["d_model"] % s["n_heads"]:
            raise ValueError(f"d_model ({s['d_model']}) must be divisible by "
                             f"n_heads ({s['n_heads']})")
        return s

    # ----------------------------------------------------------------- encoding
    def _encode(self, X: Any, *, what: str = "X") -> np.ndarray:
        """Category codes (n, D) of the feature columns; -1 for missing or unknown cells."""
        codes = np.empty(X.shape, dtype=np.int64)
        unknown: list[str] = []
        for j, column in enumerate(self.columns_):
            codes[:, j], is_unknown = column.codes(_column_values(X, j))
            if is_unknown.any():
                values = pd.unique(pd.Series(_column_values(X, j)[is_unknown], dtype=object))
                unknown.append(f"{column.name!r}: {list(values[:5])}")
        if unknown:
            message = "categories not seen in fit, column " + "; column ".join(unknown)
            if self.handle_unknown == "error":
                raise ValueError(f"{what} has {message} (handle_unknown='error')")
            warnings.warn(f"{what} has {message}; read as missing (the mask)", UserWarning,
                          stacklevel=3)
        return codes

    def _ids(self, codes: np.ndarray) -> np.ndarray:
        """Word ids (n, L) of category codes (n, D) or, with the target, (n, D + 1).

        A code -1 (missing, unknown) and the target when not given read as the mask.
        """
        return self._ids_for(codes, self.model_.config.mask_id)

    def _ids_for(self, codes: np.ndarray, mask: int) -> np.ndarray:
        ids = np.full((codes.shape[0], len(self.words_)), mask, dtype=np.int64)
        for j in range(codes.shape[1]):
            known = codes[:, j] >= 0
            ids[known, j] = self.words_[j][codes[known, j]]
        return ids

    def _build_vocabulary(self, vocabulary: str) -> None:
        columns = [*self.columns_, _Column("target", self.classes_)]
        largest = max(columns, key=lambda c: len(c.categories)).categories
        common = all((pd.Index(largest).get_indexer(pd.Index(c.categories, dtype=object))
                      >= 0).all() for c in columns)
        if vocabulary == "auto":
            vocabulary = "shared" if common else "per_column"
        self.vocabulary_ = vocabulary
        if vocabulary == "shared":
            words = pd.Index(largest, dtype=object) if common else pd.Index(
                _sorted_unique(np.concatenate([c.categories.astype(object) for c in columns])))
            self.words_ = [words.get_indexer(pd.Index(c.categories, dtype=object))
                           for c in columns]
            self.n_words_ = len(words)
        else:
            sizes = [len(c.categories) for c in columns]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            self.words_ = [np.arange(o, o + n) for o, n in zip(offsets[:-1], sizes, strict=True)]
            self.n_words_ = int(offsets[-1])

    # ----------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any) -> WordExpertsClassifier:
        """Fit the masked language model over the columns of ``X`` and the target ``y``."""
        s = self._settings()
        X = _as_table(X)
        validate_data(self, X, y, skip_check_array=True)
        y = column_or_1d(np.asarray(y), warn=True)
        if len(y) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)}")
        if np.asarray(pd.isna(y)).any():
            raise ValueError("y has missing values: every training row needs a target")
        check_classification_targets(y)
        self.classes_, y_codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has one class ({self.classes_[0]!r}): a classifier needs "
                             "at least two classes")
        names = _column_names(X, X.shape[1])
        self.columns_ = [_fit_column(_column_values(X, j), names[j], numeric=s["numeric"],
                                     n_bins=s["n_bins"]) for j in range(X.shape[1])]
        self._build_vocabulary(s["vocabulary"])
        codes = np.column_stack([self._encode(X), y_codes])
        length = codes.shape[1]
        config = AttentionConfig(
            vocab_size=self.n_words_, seq_len=length, d_model=s["d_model"],
            n_heads=s["n_heads"], block="bert", d_ff=s["d_ff"], dropout=s["dropout"],
            ln_eps=1e-6,
        )  # ln_eps: the paper's Keras LayerNormalization
        rng = _generator(self.random_state)
        ids = self._ids_for(codes, config.mask_id)
        weight = (codes >= 0).astype(np.float32)
        if s["objective"] == "target":
            weight[:, :-1] = 0
        classes = np.full((length, max(len(w) for w in self.words_)), -1, dtype=np.int64)
        for j, w in enumerate(self.words_):
            classes[j, :len(w)] = w
        masked = ids[:_COLLAPSE_ROWS].copy()
        masked[:, -1] = config.mask_id
        self.n_restarts_ = 0
        while True:
            model = BidirectionalAttention(config)
            paper_init(model, rng)
            history = fit_one_block(
                model, ids, target=np.maximum(codes, 0), weight=weight, classes=classes,
                method=s["method"], epochs=s["epochs"], batch_size=s["batch_size"],
                lr=s["lr"], lr_schedule=s["lr_schedule"], rng=rng, progress=self.verbose,
            )
            # A target whose gates sit on its own masked slot in every head ignores every
            # feature: a degenerate solution some initializations fall into. Restart.
            own = to_experts(model).gates(masked)[:, :, -1, -1].mean(0)
            if own.min() < _COLLAPSED or self.n_restarts_ == _MAX_RESTARTS:
                break
            self.n_restarts_ += 1
        self.model_, self.history_ = model, history
        return self

    # ----------------------------------------------------------------- predict
    def _check_X(self, X: Any) -> Any:
        check_is_fitted(self)
        X = _as_table(X)
        validate_data(self, X, reset=False, skip_check_array=True)
        return X

    @torch.no_grad()
    def _logits(self, ids: np.ndarray) -> torch.Tensor:
        """Logits (n, L, V) at every position, each read with the row as given."""
        self.model_.eval()
        return self.model_(torch.from_numpy(ids))

    def _column_log_proba(self, logits: torch.Tensor, j: int) -> np.ndarray:
        """log p over column ``j``'s categories (the softmax is restricted to them)."""
        return logits[:, j, torch.from_numpy(self.words_[j])].log_softmax(-1).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """p(y = each of ``classes_`` | the row's features), from the masked target."""
        X = self._check_X(X)
        logits = self._logits(self._ids(self._encode(X)))
        return np.exp(self._column_log_proba(logits, len(self.columns_)))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        X = self._check_X(X)
        logits = self._logits(self._ids(self._encode(X)))
        return self._column_log_proba(logits, len(self.columns_))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def impute(self, X: Any) -> pd.DataFrame:
        """``X`` with every missing (NaN, None) cell replaced by its most probable category.

        All missing cells of a row (and the target) are read as the mask at once and each is
        predicted from the row's observed cells. A binned numeric column gets the median of
        the predicted bin. Returns a DataFrame with ``X``'s columns and index.
        """
        X = self._check_X(X)
        codes = self._encode(X)
        logits = self._logits(self._ids(codes))
        frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(
            X, columns=[c.name for c in self.columns_])
        for j, column in enumerate(self.columns_):
            missing = np.asarray(pd.isna(_column_values(X, j)), dtype=bool)
            if not missing.any():
                continue
            best = self._column_log_proba(logits[torch.from_numpy(missing)], j).argmax(1)
            values = frame.iloc[:, j].to_numpy(dtype=object, copy=True)
            values[missing] = column.values(best)
            frame[frame.columns[j]] = pd.Series(values, index=frame.index).infer_objects()
        return frame

    def gates(self, X: Any) -> np.ndarray:
        """How much each column (expert) weighs in the target prediction, per head.

        Returns ``(n_rows, n_heads, n_features + 1)``: the mixture weights ``pi`` of the
        masked target over the positions (paper.md section 2), the last entry being the
        target's own (masked) position. Each row sums to one over the last axis.
        """
        X = self._check_X(X)
        ids = self._ids(self._encode(X))
        return to_experts(self.model_).gates(ids)[:, :, -1, :].numpy()

    # ----------------------------------------------------------------- save / load
    def save(self, path: str | Path) -> None:
        """Write the fitted model to ``path`` (a directory): safetensors weights + JSON."""
        check_is_fitted(self)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().numpy()
                   for k, v in self.model_.state_dict().items()}
        columns = []
        for j, column in enumerate(self.columns_):
            entry: dict[str, Any] = {"name": column.name}
            if column.numeric:
                tensors[f"column.{j}.edges"] = column.edges
                tensors[f"column.{j}.bin_values"] = column.bin_values
                entry["n_bins"] = len(column.categories)
            else:
                entry["categories"] = _to_json_list(column.categories, column.name)
                entry["dtype"] = column.categories.dtype.str
            columns.append(entry)
        meta = {
            "format": _FORMAT,
            "params": self.get_params(),
            "config": self.model_.config.to_dict(),
            "classes": _to_json_list(self.classes_, "y"),
            "classes_dtype": self.classes_.dtype.str,
            "columns": columns,
            "vocabulary": self.vocabulary_,
            "words": [w.tolist() for w in self.words_],
            "n_features_in": self.n_features_in_,
            "feature_names_in": (list(self.feature_names_in_)
                                 if hasattr(self, "feature_names_in_") else None),
            "history": self.history_,
            "n_restarts": self.n_restarts_,
        }
        save_file(tensors, str(path / "model.safetensors"))
        (path / "model.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordExpertsClassifier:
        """Read a model written by :meth:`save`; it predicts bit-identically."""
        path = Path(path)
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved WordExpertsClassifier "
                             f"(format {meta.get('format')!r})")
        tensors = load_file(str(path / "model.safetensors"))
        clf = cls(**meta["params"])
        clf.model_ = BidirectionalAttention(AttentionConfig(**meta["config"]))
        clf.model_.load_state_dict({k[len("model."):]: torch.from_numpy(v)
                                    for k, v in tensors.items() if k.startswith("model.")})
        clf.model_.eval()
        clf.classes_ = _from_json_list(meta["classes"], meta["classes_dtype"])
        clf.columns_ = []
        for j, entry in enumerate(meta["columns"]):
            if "n_bins" in entry:
                clf.columns_.append(_Column(entry["name"], np.arange(entry["n_bins"]),
                                            edges=tensors[f"column.{j}.edges"],
                                            bin_values=tensors[f"column.{j}.bin_values"]))
            else:
                clf.columns_.append(_Column(entry["name"],
                                            _from_json_list(entry["categories"], entry["dtype"])))
        clf.vocabulary_ = meta["vocabulary"]
        clf.words_ = [np.array(w, dtype=np.int64) for w in meta["words"]]
        clf.n_words_ = meta["config"]["vocab_size"]
        clf.n_features_in_ = meta["n_features_in"]
        if meta["feature_names_in"] is not None:
            clf.feature_names_in_ = np.array(meta["feature_names_in"], dtype=object)
        clf.history_ = meta["history"]
        clf.n_restarts_ = meta["n_restarts"]
        return clf


def _generator(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from an int, None, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"random_state must be an int, None or a NumPy generator, got "
                         f"{random_state!r}") from exc


def _to_json_list(values: np.ndarray, name: str) -> list:
    out = []
    for v in values.tolist():
        if not (v is None or isinstance(v, str | bool | int | float)):
            raise ValueError(f"cannot save column {name!r}: category {v!r} of type "
                             f"{type(v).__name__} is not a JSON string, number or bool")
        out.append(v)
    return out


def _from_json_list(values: list, dtype: str) -> np.ndarray:
    return np.array(values, dtype=object if dtype == "|O" else np.dtype(dtype))

