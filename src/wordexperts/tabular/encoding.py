"""From a table to word ids: columns -> category codes -> words (docs/paper.md section 4).

:class:`TableEncoder` is the fitted object that does it all; the functions below are its
steps. Each column becomes a :class:`Column` (its categories; a numeric column's values or quantile
bins, in order); each cell a category code ``0..K-1`` (``-1``: missing or unknown); each
code a word of the vocabulary. :func:`interpolate` reads a numeric cell between the words of
its two neighbouring bins (the estimator's ``numeric="interpolate"``; ``"linear"``: a
column of more than ``n_bins`` values in two bins, values past their medians extrapolated, so
that the input is linear in the value).
``"shared"`` gives equal categories of different columns one word (the paper's setting);
``"per_column"`` makes each (column, category) its own word; ``"auto"`` shares when one
column's categories contain every other column's. Arrays are kept in the smallest integer
dtype that holds them (codes int8/int16/int32, word ids uint8/uint16/int32).

>>> import pandas as pd
>>> X = pd.DataFrame({"size": ["S", "L", "S"], "n": [1, 2, 2]})
>>> columns = fit_columns(X, numeric="bin", n_bins=10)
>>> [c.name for c in columns], columns[0].categories.tolist()
(['size', 'n'], ['L', 'S'])
>>> codes = encode(columns, X, handle_unknown="error")
>>> codes.tolist(), codes.dtype.name
([[1, 0], [0, 1], [1, 1]], 'int8')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

__all__ = ["LINEAR_REACH", "MANY_CATEGORIES", "MOSTLY_NUMERIC", "Column", "Soft", "TableEncoder",
           "as_table", "build_vocabulary", "column_values", "encode", "fit_columns", "interpolate",
           "smallest_int", "smallest_uint", "word_ids"]

#: A column with more categories than this warns at fit time: each category is a word with
#: its own input and output embedding, and each step's output layer costs
#: ``rows x (sum of the columns' category counts) x d_model``.
MANY_CATEGORIES = 1000
#: A text column in which at least this share of the values read as numbers warns at fit
#: time, naming a cell that does not: it is read as categories, which is rarely meant
#: ("forty" in an ``age`` column).
MOSTLY_NUMERIC = 0.9
#: ``numeric="linear"``: a value past the outer bins' medians is read on the line through
#: them up to this many times their distance beyond (a value further out is read there), so
#: that one outlying cell cannot dominate the gates' softmax.
LINEAR_REACH = 4.0


def smallest_uint(high: int) -> np.dtype:
    """The smallest of uint8, uint16, int32 (then int64) that holds ``0..high``."""
    for dtype in (np.uint8, np.uint16, np.int32):
        if high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def smallest_int(high: int) -> np.dtype:
    """The smallest signed integer dtype that holds ``-1..high``."""
    for dtype in (np.int8, np.int16, np.int32):
        if high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


@dataclass
class Column:
    """How one column's values become category codes ``0..n-1`` (``-1``: missing or unknown).

    ``categories``: the values of the codes. A numeric column (``numeric``) also has ``edges``
    (the inner edges between its codes) and ``bin_values`` (each code's value: the training
    median of a quantile bin, whose category is its index, or the value itself for a column
    of at most ``n_bins`` values); a value reads as the code whose interval holds it, so an
    unseen value as the nearest seen one. ``binned``: the column was cut into quantile bins
    (``WordExpertsClassifier.impute`` fills such a cell with the expected value over the
    bins' medians; a column of few values, with the most probable one). ``reach``: how far
    past its outer bins' medians a value is read on the line through them, in units of
    their distance to the next bin's (:meth:`coordinates`); 0 (the default): not at all.
    """

    name: str
    categories: np.ndarray
    edges: np.ndarray | None = None
    bin_values: np.ndarray | None = None
    binned: bool = False
    reach: float = 0.0

    @property
    def numeric(self) -> bool:
        return self.edges is not None

    def codes(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (int64) of ``values`` and a mask of the non-missing values that are unknown."""
        missing = np.asarray(pd.isna(values), dtype=bool)
        if self.numeric:
            try:
                numbers_ = np.where(missing, 0.0, values).astype(np.float64)
            except (TypeError, ValueError):
                bad = np.flatnonzero(np.asarray(pd.isna(pd.to_numeric(
                    pd.Series(values, dtype=object), errors="coerce")), dtype=bool) & ~missing)
                raise ValueError(f"column {self.name!r} was numeric in fit; row {bad[0]} "
                                 f"(0-based) holds {values[bad[0]]!r}, not a number"
                                 + (f", and {len(bad) - 1} more row(s)" if len(bad) > 1
                                    else "")) from None
            # right-closed bins, as pandas.qcut; values outside the training range go to
            # the first or last bin
            codes = np.searchsorted(self.edges, numbers_, side="left")
            return np.where(missing, -1, codes), np.zeros_like(missing)
        if self.categories.dtype.kind in "iub" and values.dtype.kind in "iub":
            # sorted integer categories: a binary search, no object arrays
            codes = np.searchsorted(self.categories, values)
            found = np.take(self.categories, np.minimum(codes, len(self.categories) - 1))
            codes = np.where(found == values, codes, -1)
        else:
            codes = pd.Index(self.categories).get_indexer(pd.Index(values, dtype=object))
        codes = np.where(missing, -1, codes)
        return codes, (codes < 0) & ~missing

    def coordinates(self, values: np.ndarray) -> np.ndarray:
        """A binned numeric column's values on the bin scale: ``k`` at bin ``k``'s median,
        linear between neighbouring medians, clipped to ``0..K-1`` (with ``reach`` > 0:
        linear past the ends too, clipped to ``-reach..K-1+reach``); NaN where missing.

        >>> Column("x", np.arange(2), edges=np.array([1.5]), bin_values=np.array([1.0, 2.0]),
        ...        reach=4.0).coordinates(np.array([0.5, 1.5, 3.0, 99.0])).tolist()
        [-0.5, 0.5, 2.0, 5.0]
        """
        missing = np.asarray(pd.isna(values), dtype=bool)
        numbers_ = np.where(missing, 0.0, values).astype(np.float64)
        m = self.bin_values
        u = np.interp(numbers_, m, np.arange(len(m)))
        if self.reach > 0 and len(m) > 1:
            below, above = numbers_ < m[0], numbers_ > m[-1]
            u[below] = (numbers_[below] - m[0]) / (m[1] - m[0])
            u[above] = len(m) - 1 + (numbers_[above] - m[-1]) / (m[-1] - m[-2])
            u = np.clip(u, -self.reach, len(m) - 1 + self.reach)
        return np.where(missing, np.nan, u)

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The value of each code (the bin's median for a numeric column)."""
        return (self.bin_values if self.numeric else self.categories)[codes]


def column_values(X: Any, j: int) -> np.ndarray:
    """Column ``j`` of a DataFrame or 2-D array as a NumPy array (categoricals as objects)."""
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


def column_names(X: Any) -> list[str]:
    """The column names of a DataFrame (as strings), ``x0, x1, ...`` for an array."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return [f"x{j}" for j in range(X.shape[1])]


def as_table(X: Any, *, what: str = "X") -> Any:
    """``X`` as a DataFrame or a 2-D NumPy array (object or numeric), validated.

    A polars (or any other narwhals-supported) data frame is read column by column with its
    names and types, as a pandas frame would be; it is not turned into one array of objects.
    """
    if not isinstance(X, pd.DataFrame | np.ndarray):
        X = _from_narwhals(X)
    if scipy.sparse.issparse(X):
        raise TypeError(f"{what} is a sparse matrix; WordExpertsClassifier needs dense "
                        "categorical columns: use X.toarray()")
    if isinstance(X, pd.DataFrame):
        duplicated = X.columns[X.columns.duplicated()].unique()
        if len(duplicated):
            raise ValueError(f"{what} has duplicate column names {[str(c) for c in duplicated]}"
                             ": give every column its own name")
    else:
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


def _from_narwhals(X: Any) -> Any:
    """A pandas copy of a narwhals-supported eager frame (polars, pyarrow, modin, ...) with
    its column names and each column's own NumPy type; anything else unchanged."""
    import narwhals as nw

    frame = nw.from_native(X, eager_only=True, pass_through=True)
    if not isinstance(frame, nw.DataFrame):
        return X
    return pd.DataFrame({name: frame[name].to_numpy() for name in frame.columns})


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    unique = pd.unique(pd.Series(values, dtype=object))
    try:
        return np.array(sorted(unique), dtype=object)
    except TypeError:  # mixed types: order by (type name, text)
        return np.array(sorted(unique, key=lambda v: (type(v).__name__, str(v))), dtype=object)


def fit_column(values: np.ndarray, name: str, *, numeric: str, n_bins: int) -> Column:
    """The :class:`Column` of training ``values``: its categories; for a numeric column its
    values in order, or ``n_bins`` quantile bins if it has more than ``n_bins`` distinct
    values (``numeric="error"``: raise instead; ``numeric="linear"``: two bins, read
    linearly past their medians up to :data:`LINEAR_REACH`)."""
    kind = values.dtype.kind
    if numeric == "linear" and kind in "iuf":
        column = fit_column(values, name, numeric="interpolate", n_bins=n_bins)
        if column.binned:               # a measurement, not a few codes: two bins instead
            column = fit_column(values, name, numeric="interpolate", n_bins=2)
            column.binned, column.reach = True, LINEAR_REACH
        return column
    if kind in "cmMV":
        raise ValueError(f"column {name!r} has unsupported dtype {values.dtype}: give "
                         "categories (int, str, bool, pandas categorical) or numbers")
    present = values[~np.asarray(pd.isna(values), dtype=bool)]
    if len(present) == 0:
        raise ValueError(f"column {name!r} has no values (all missing)")
    if kind in "iuf":
        distinct = np.unique(present)
        if len(distinct) > n_bins:
            if numeric == "error":
                raise ValueError(
                    f"column {name!r} is numeric with {len(distinct)} distinct values "
                    f"(more than n_bins={n_bins}): convert it to categories, or use "
                    "numeric='bin'"
                )
            present = present.astype(np.float64)
            if not np.isfinite(present).all():
                raise ValueError(f"column {name!r} holds infinite values")
            edges = np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)))[1:-1]
            codes = np.searchsorted(edges, present, side="left")
            bin_values = np.array([np.median(present[codes == k])
                                   for k in range(len(edges) + 1)])
            return Column(name, np.arange(len(edges) + 1), edges=edges, bin_values=bin_values,
                          binned=True)
        if kind == "f" and np.all(distinct == np.round(distinct)):
            distinct = distinct.astype(np.int64)        # integers stored as floats
        # each value its own bin: an unseen value reads as the nearest seen one
        edges = (distinct[1:] + distinct[:-1]) / 2.0
        return Column(name, distinct, edges=edges, bin_values=distinct.astype(np.float64))
    if kind == "b":
        return Column(name, np.unique(present))
    return Column(name, _sorted_unique(present))


def fit_columns(X: Any, *, numeric: str, n_bins: int) -> list[Column]:
    """A :class:`Column` per column of ``X``; warns about columns with more than
    :data:`MANY_CATEGORIES` categories (their cost)."""
    names = column_names(X)
    columns = [fit_column(column_values(X, j), names[j], numeric=numeric, n_bins=n_bins)
               for j in range(X.shape[1])]
    for j, column in enumerate(columns):
        if not column.numeric and column.categories.dtype == object:
            _warn_mostly_numeric(column_values(X, j), column.name,
                                 X.index if isinstance(X, pd.DataFrame) else None)
    many = [f"{c.name!r} ({len(c.categories)})" for c in columns
            if len(c.categories) > MANY_CATEGORIES]
    if many:
        warnings.warn(
            f"column {', '.join(many)} has more than {MANY_CATEGORIES} categories: each is a "
            "word with its own embeddings, and a training step costs rows x (sum of the "
            "columns' category counts) x d_model; group rare categories, or bin the column "
            "if it is numeric", UserWarning, stacklevel=3)
    return columns


def _warn_mostly_numeric(values: np.ndarray, name: str, index: pd.Index | None) -> None:
    """Warn when a text column reads as numbers but for a few cells (:data:`MOSTLY_NUMERIC`),
    naming the first such cell's row."""
    present = ~np.asarray(pd.isna(values), dtype=bool)
    if present.sum() < 2:
        return
    texts = values[present]
    if not any(isinstance(v, str) for v in texts):
        return
    numeric = ~np.asarray(pd.isna(pd.to_numeric(pd.Series(texts, dtype=object),
                                                 errors="coerce")), dtype=bool)
    if numeric.all() or numeric.mean() < MOSTLY_NUMERIC:
        return
    first = np.flatnonzero(present)[np.flatnonzero(~numeric)[0]]
    row = f"row {index[first]!r}" if index is not None else f"row {first} (0-based)"
    warnings.warn(
        f"column {name!r} holds numbers but for {int((~numeric).sum())} of {len(texts)} "
        f"cells ({row}: {texts[~numeric][0]!r}): it is read as categories, each value a word; "
        "fix those cells or set them to NaN to read the column as numbers",
        UserWarning, stacklevel=4)


def encode(columns: list[Column], X: Any, *, handle_unknown: str, what: str = "X"
           ) -> np.ndarray:
    """Category codes (n, D) of the columns of ``X`` in the smallest signed dtype; -1 for
    missing or unknown cells. An unknown category warns (``handle_unknown="mask"``) or
    raises (``"error"``), naming the column and the values."""
    high = max(len(c.categories) for c in columns)
    codes = np.empty(X.shape, dtype=smallest_int(high))
    unknown: list[str] = []
    for j, column in enumerate(columns):
        codes[:, j], is_unknown = column.codes(column_values(X, j))
        if is_unknown.any():
            values = pd.unique(pd.Series(column_values(X, j)[is_unknown], dtype=object))
            unknown.append(f"{column.name!r}: {list(values[:5])}")
    if unknown:
        message = "categories not seen in fit, column " + "; column ".join(unknown)
        if handle_unknown == "error":
            raise ValueError(f"{what} has {message} (handle_unknown='error')")
        warnings.warn(f"{what} has {message}; read as missing (the mask)", UserWarning,
                      stacklevel=3)
    return codes


def build_vocabulary(columns: list[Column], classes: np.ndarray, vocabulary: str
                     ) -> tuple[str, list[np.ndarray], int]:
    """``(kind, words, n_words)``: ``words[i]`` holds the word id of each category of
    position ``i`` (the columns in order, then the target with ``classes``)."""
    columns = [*columns, Column("target", classes)]
    largest = max(columns, key=lambda c: len(c.categories)).categories
    common = all((pd.Index(largest).get_indexer(pd.Index(c.categories, dtype=object))
                  >= 0).all() for c in columns)
    if vocabulary == "auto":
        vocabulary = "shared" if common else "per_column"
    if vocabulary == "shared":
        words = pd.Index(largest, dtype=object) if common else pd.Index(
            _sorted_unique(np.concatenate([c.categories.astype(object) for c in columns])))
        return (vocabulary, [words.get_indexer(pd.Index(c.categories, dtype=object))
                             for c in columns], len(words))
    sizes = [len(c.categories) for c in columns]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return (vocabulary, [np.arange(o, o + n) for o, n in zip(offsets[:-1], sizes, strict=True)],
            int(offsets[-1]))


def interpolate(columns: list[Column], X: Any, ids: np.ndarray, words: list[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Numeric cells read between their two neighbouring bins' words: ``(lower, upper,
    frac)`` (n, len(words)), the cell's input being ``(1 - frac) E[lower] + frac E[upper]``,
    with ``frac`` its position between the two bins' medians (:meth:`Column.coordinates`).
    Other cells keep their word (``lower = upper`` = ``ids``, ``frac`` 0). ``None`` if no
    column is numeric."""
    numeric = [j for j, c in enumerate(columns) if c.numeric]
    if not numeric:
        return None
    lower, upper = ids.copy(), ids.copy()
    frac = np.zeros(ids.shape, np.float32)
    for j in numeric:
        u = columns[j].coordinates(column_values(X, j))
        present = ~np.isnan(u)
        low = np.floor(u[present]).astype(np.int64)
        if columns[j].reach > 0:        # past an end: on the line through the end pair
            low = np.clip(low, 0, len(columns[j].categories) - 2)
        high = np.minimum(low + 1, len(columns[j].categories) - 1)
        lower[present, j] = words[j][low]
        upper[present, j] = words[j][high]
        frac[present, j] = u[present] - low
    return lower, upper, frac


def word_ids(codes: np.ndarray, words: list[np.ndarray], mask: int) -> np.ndarray:
    """Word ids (n, len(words)) of category codes (n, D <= len(words)), in the smallest
    unsigned dtype; a code -1 and the positions past ``D`` (the target) read as ``mask``."""
    ids = np.full((codes.shape[0], len(words)), mask, dtype=smallest_uint(mask))
    for j in range(codes.shape[1]):
        known = codes[:, j] >= 0
        ids[known, j] = words[j][codes[known, j]]
    return ids


@dataclass
class Soft:
    """Cells read between two words: cell ``(j, b)``'s input is ``(1 - frac) E[x_jb] +
    frac E[upper_jb]`` (a numeric value between two bins' medians). Arrays shaped like the
    word ids; ``frac`` 0 (and ``upper`` anything valid) for a cell that is one word."""

    upper: np.ndarray
    frac: np.ndarray

    def rows(self, rows: np.ndarray | slice) -> Soft:
        """Those rows of row-major arrays (n, L)."""
        return Soft(self.upper[rows], self.frac[rows])

    def take(self, rows: np.ndarray) -> Soft:
        """Those rows of row-major arrays, batch last: (L, len(rows))."""
        part = self.rows(rows)
        return Soft(part.upper.T, part.frac.T)


@dataclass
class TableEncoder:
    """The fitted reading of a table as the model's inputs: everything ``fit`` decided.

    ``columns`` (one :class:`Column` a feature), ``classes`` (the target's), ``vocabulary``
    (``"shared"`` or ``"per_column"``, resolved), ``words`` (per position, the features then
    the target: each category's word id), ``n_words`` (the mask's id is ``n_words``),
    ``numeric`` (``"interpolate"``, ``"linear"``, ``"bin"`` or ``"error"``: how numeric cells
    are read)
    and ``handle_unknown``. Nothing here reads the estimator's parameters: a fitted (or
    loaded) model reads its rows the same way whatever ``set_params`` or a later preset says.

    >>> X = pd.DataFrame({"size": ["S", "L", "S"], "n": [1.0, 2.5, 4.0]})
    >>> enc = TableEncoder.fit(X, np.array(["no", "yes"]), numeric="interpolate", n_bins=2,
    ...                        vocabulary="auto", handle_unknown="mask")
    >>> ids, soft = enc.inputs(X)      # "n" in 2 bins: 2.5 a third of the way between them
    >>> ids.tolist(), [round(float(f), 2) for f in soft.frac[:, 1]]   # target slot: mask 6
    ([[1, 2, 6], [0, 2, 6], [1, 3, 6]], [0.0, 0.33, 0.0])
    """

    columns: list[Column]
    classes: np.ndarray
    vocabulary: str
    words: list[np.ndarray]
    n_words: int
    numeric: str
    handle_unknown: str

    @classmethod
    def fit(cls, X: Any, classes: np.ndarray, *, numeric: str, n_bins: int, vocabulary: str,
            handle_unknown: str) -> TableEncoder:
        """Learn the columns of ``X`` (checked by :func:`as_table`) and the vocabulary."""
        columns = fit_columns(X, numeric=numeric, n_bins=n_bins)
        kind, words, n_words = build_vocabulary(columns, classes, vocabulary)
        return cls(columns, classes, kind, words, n_words, numeric, handle_unknown)

    @property
    def mask_id(self) -> int:
        return self.n_words

    def codes(self, X: Any, *, what: str = "X") -> np.ndarray:
        """Category codes (n, D) of the features of ``X``; -1 missing or unknown
        (:func:`encode`, with this encoder's ``handle_unknown``)."""
        return encode(self.columns, X, handle_unknown=self.handle_unknown, what=what)

    def ids(self, codes: np.ndarray) -> np.ndarray:
        """Word ids (n, D + 1) of category codes (n, D or D + 1), the target slot masked
        when ``codes`` has no target column (:func:`word_ids`)."""
        return word_ids(codes, self.words, self.mask_id)

    def soft(self, X: Any, ids: np.ndarray) -> tuple[np.ndarray, Soft | None]:
        """The word ids and the cells read between two words of the rows of ``X`` whose
        word ids are ``ids`` (``None`` unless ``numeric`` is ``"interpolate"`` or
        ``"linear"`` and a column is numeric): :func:`interpolate`."""
        if self.numeric not in ("interpolate", "linear"):
            return ids, None
        cells = interpolate(self.columns, X, ids, self.words)
        if cells is None:
            return ids, None
        return cells[0], Soft(cells[1], cells[2])

    def inputs(self, X: Any, *, what: str = "X") -> tuple[np.ndarray, Soft | None]:
        """The model's inputs for the features of ``X``: word ids (n, D + 1), the target
        slot masked, and the cells read between two words (or ``None``)."""
        return self.soft(X, self.ids(self.codes(X, what=what)))
