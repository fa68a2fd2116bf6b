"""Tabular word experts: a scikit-learn classifier for categorical tables (docs/paper.md section 4).

Each column of a table is a position of a "sentence", each category of a column a word. The
model is a one-block :class:`~wordexperts.core.attention.BidirectionalAttention` fitted as a
masked language model over all columns, the target column (placed last) included; the target
is predicted by masking it, and any other column can be predicted the same way (imputation)::

    row      x0    x1   ...  x{D-1}   y
    words    w(0,x0) ...              mask  ──► attention block ──► p(y | x)

The estimator is a thin scikit-learn layer: the table becomes word ids through a fitted
:class:`~wordexperts.tabular.encoding.TableEncoder` (numeric columns with more than ``n_bins``
distinct values cut into quantile bins, the vocabulary shared or per column), the model is
fitted by
:func:`wordexperts.tabular.solver.fit_table`, and saved by :mod:`wordexperts.tabular.persistence`.
"""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from wordexperts.core.attention import Method
from wordexperts.tabular import classifier, encoding, explain, imputation, persistence
from wordexperts.tabular.calibration import calibrated
from wordexperts.tabular.encoding import Soft
from wordexperts.tabular.solver import input_embeddings, position_log_proba

__all__ = ["WordExpertsClassifier"]

#: Parameters that do not change what a fit learns: left out of ``settings_``.
_NOT_SETTINGS = ("random_state", "verbose")
#: Integer parameters, stored as plain ints in ``settings_`` (JSON).
_INTEGERS = ("n_bins", "d_model", "n_heads", "d_ff", "epochs", "max_steps", "min_steps",
             "max_positions", "batch_size", "patience")



class WordExpertsClassifier(ClassifierMixin, BaseEstimator):
    """Bidirectional attention over the columns of a categorical table, as a classifier.

    The paper's tabular model (docs/paper.md section 4): each column a position, each category a
    word; fitted as a masked language model over all columns plus the target, and predicting
    the target by masking it. ``gates`` shows how much each column (expert) weighed in each
    prediction; ``impute`` predicts missing cells of any column from the others.

    Parameters
    ----------
    preset : {"fast", "paper"}
        Recipe (:data:`~wordexperts.tabular.classifier.PRESETS`) for the settings left at
        ``None``. ``"paper"``: the paper's (each row's L masked copies, batches of 128, Adam
        1e-3, 200 epochs, dropout 0.1, one vocabulary, numbers as their bins' words, no
        calibration). ``"fast"`` (default): batches of 128 rows, each predicting all its
        columns in one pass, Adam 7e-3 warmed up then decayed linearly over at most 120
        epochs and 2000 steps (at least 400), the numeric reading and a temperature chosen
        on cross-fitted predictions: faster, and better calibrated out of distribution.
    objective : {"auto", "mlm", "target"} or None
        ``"mlm"``: predict every column from the others (the paper's); ``"target"``: the
        target column only. ``"auto"``: the MLM on tables of at most
        :data:`~wordexperts.tabular.solver.AUTO_OBJECTIVE_ROWS` rows; on larger tables both,
        fitted on the same rows (the target-only one with early stopping), keeping the one
        with the lower log loss of the target on a held-out ``validation_fraction`` of the
        rows (at most 5,000; they do not train the kept model): ``objective_`` says which.
        ``None``: the preset's (fast: auto; paper: mlm).
    method : {"single_pass", "copies"} or None
        How a batch is built: rows (each predicting all its columns) or masked copies
        (each predicting one cell). Same objective; ``None``: the preset's.
    vocabulary : {"auto", "shared", "per_column"} or None
        Whether equal categories of different columns share a word (see
        :mod:`~wordexperts.tabular.encoding`).
    numeric : {"auto", "interpolate", "linear", "bin", "error"} or None
        How a numeric column's values become inputs. Its bins: ``n_bins`` training quantiles,
        or each value its own bin when it has at most ``n_bins`` distinct values (an unseen
        value reads as the nearest bin). ``"interpolate"``: a value is read between the words
        of its two neighbouring bins, by its place between their medians
        (:func:`~wordexperts.tabular.encoding.interpolate`); ``"linear"``: a column of more
        than ``n_bins`` values in two bins, and the input linear in the value, past the
        bins' medians too (up to
        :data:`~wordexperts.tabular.encoding.LINEAR_REACH` times their distance): keeps the
        contrasts between correlated measurements, and extrapolates them to values outside
        the training range; ``"auto"``: the one of these two with the lower cross-fitted
        log loss of the target (the folds of ``calibration``), on tables of at most
        :data:`~wordexperts.tabular.solver.AUTO_OBJECTIVE_ROWS` rows that have a numeric
        column of more than ``n_bins`` values, else ``"interpolate"`` (``settings_["numeric"]``
        says which; ``cross_fit_losses_`` the losses); ``"bin"``: as its bin's word;
        ``"error"``: as ``"bin"``, but a column with more than ``n_bins`` distinct values is
        an error. ``None``: the preset's (fast: auto; paper: bin).
    n_bins : int
        Quantile bins of a numeric column, learned on the training data.
    handle_unknown : {"mask", "error"}
        A category not seen in training: read as the mask (missing), with a warning, or raise.
    missing : {"absent", "mask"} or None
        How a missing cell (NaN, None, or an unknown category) is read as context:
        ``"absent"``: an absent expert, left out of every gate softmax, so the gates
        renormalize over the cells present (the mixture's own way to marginalize it);
        ``"mask"``: as the mask word (the paper's). ``None``: the preset's (both: mask).
    context_corruption : float in [0, 1) or None
        While fitting, each cell of a batch is read as missing with this probability, as
        context only (its own prediction is kept): the model learns to predict from partial
        rows. ``None``: the preset's (both: 0). With ``missing="absent"``, 0.3 was the best
        reading of rows with missing cells on the development tables of ``reproduce
        missing``; it is not the default because it cost accuracy on complete tables and
        broke the paper's simulation (docs/missing.md).
    class_weight : dict, "balanced" or None
        Each class's weight on its rows (``fit`` multiplies it into ``sample_weight``):
        ``{class: weight}``, or ``"balanced"`` (``n_rows / (n_classes * class count)``, as
        scikit-learn's); ``None``: every class 1.
    d_model, n_heads, d_ff : model shape (the paper's: 20, 5, 5).
    dropout : dropout on the attention and feed-forward outputs in training (as the paper's
        block); ``"auto"``: :data:`~wordexperts.tabular.classifier.AUTO_DROPOUT` on tables
        with fewer than :data:`~wordexperts.tabular.classifier.AUTO_DROPOUT_ROWS` training rows
        per category, else 0 (:func:`~wordexperts.tabular.classifier.auto_dropout`);
        ``None``: the preset's (fast: auto; paper: 0.1).
    epochs, max_steps : training length: at most ``epochs`` passes over the training rows
        (or copies) and at most ``max_steps`` optimizer steps, whichever ends first;
        ``None``: the preset's (fast: 120 and 2000; paper: 200 and no step budget).
    min_steps : int or None
        A floor on the training length in optimizer steps (at most ``max_steps``), for
        small tables where ``epochs`` would plan fewer (80 rows are one step an epoch).
        ``None``: the preset's (fast: 400, which leaves every table of more than 426 rows
        as before; paper: none), unless ``epochs`` is given: then no floor.
    calibration : {"temperature", None} or None
        ``"temperature"``: the target's logits are divided by ``temperature_``, fitted on
        predictions of rows the kept model did not train on: held-out rows where the fit
        holds some out, else cross-fitted on 2 folds (about one more fit;
        :mod:`~wordexperts.tabular.calibration`). Keeps every prediction; explanations stay
        exact. ``"none"``: the model's own probabilities. ``None``: the preset's (fast:
        temperature; paper: none).
    max_positions : int or None
        With ``method="single_pass"`` on a table of more columns: each step predicts the
        target and a random subset of the feature columns, this many positions in all, the
        drawn columns' weights scaled so that the objective is the same on average
        (:class:`~wordexperts.tabular.one_block.PositionSample`; the attention costs
        positions x columns a row instead of columns squared). A number above the columns
        predicts every column in every step. ``None``: the preset's (fast: 32; paper: every
        position, as its copies predict one cell each).
    batch_size, lr, lr_schedule : batch (rows or copies), Adam learning rate, and
        ``"constant"`` or ``"linear"`` (a linear warm-up over the first 5% of the planned
        steps, then linear decay to 0); ``None``: the preset's.
    early_stopping : {"auto", True, False} or None
        Hold out ``validation_fraction`` of the training rows (at most 5,000), score the
        target's log loss on them about 20 times over the budget, stop after ``patience``
        checks without improvement and keep the best check's weights. ``"auto"``: on for
        tables of more than 10,000 rows. ``None``: the preset's (off in both: measured, it
        can stop on the plateau where the target has not started to learn).
    validation_fraction : float in (0, 1)
        Share of the rows held out for early stopping.
    patience : int
        Checks without a lower validation loss before stopping.
    device : None or str
        ``None`` (default): the NumPy trainer (one thread). A torch device (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ``"mps"``): the same objective trained with PyTorch on that
        device (:mod:`wordexperts.tabular.torch_backend`); the fitted model is on the CPU.
    random_state : int, None or NumPy generator
        Seeds the initialization, shuffling, validation split and dropout: the same int
        gives the same model (on one backend).
    verbose : bool
        Show a progress bar over steps with the training (and validation) loss.

    Attributes
    ----------
    classes_ : the target's classes. ``n_features_in_``, ``feature_names_in_`` (DataFrames with
    string column names). ``settings_`` : every setting the fit used, resolved from the
    preset and the data (``dropout`` a number, ``vocabulary`` "shared" or "per_column",
    ``numeric``, ``objective`` as asked, ...); predictions read these and ``encoder_``, never
    the parameters, so ``set_params`` after ``fit`` (or a later change of a preset, for a
    loaded model) cannot change what a fitted model predicts. ``encoder_`` : the fitted
    :class:`~wordexperts.tabular.encoding.TableEncoder` (columns, vocabulary, numeric
    reading). ``columns_`` : one :class:`~wordexperts.tabular.encoding.Column` per
    feature (``.name``, ``.categories``). ``words_`` : per position (features, then the target)
    the word id of each category. ``model_`` : the fitted
    :class:`~wordexperts.core.attention.BidirectionalAttention` (positions: the features in
    order, then the target). ``vocabulary_`` : "shared" or "per_column". ``history_`` : a
    :class:`~wordexperts.core.loop.History` (training and validation loss per check).
    ``target_name_`` : the name of ``y`` when it was a named Series (``impute`` then reads a
    column of that name as the target). ``n_restarts_`` : fits restarted from a new
    initialization because the target's gates had collapsed onto its own masked slot in
    every head (the target then ignores every feature); at most 2, the last fit is kept.
    ``objective_`` : the objective of the fitted model ("mlm" or "target").
    ``objective_losses_`` : with ``objective="auto"`` on a large table, the target's
    held-out log loss of each objective tried (else empty). ``temperature_`` : what the
    target's logits are divided by (1.0 without calibration). ``cross_fit_losses_`` : the
    target's cross-fitted log loss of each numeric reading tried (before calibration;
    empty when the fit was not cross-fitted).

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
        objective: Literal["auto", "mlm", "target"] | None = None,
        method: Method | None = None,
        vocabulary: Literal["auto", "shared", "per_column"] | None = None,
        numeric: Literal["interpolate", "bin", "error"] | None = None,
        n_bins: int = 10,
        handle_unknown: Literal["mask", "error"] = "mask",
        d_model: int = 20,
        n_heads: int = 5,
        d_ff: int = 5,
        dropout: float | Literal["auto"] | None = None,
        epochs: int | None = None,
        max_steps: int | None = None,
        min_steps: int | None = None,
        max_positions: int | None = None,
        missing: Literal["absent", "mask"] | None = None,
        context_corruption: float | None = None,
        calibration: Literal["temperature", "none"] | None = None,
        class_weight: dict | Literal["balanced"] | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        lr_schedule: Literal["constant", "linear"] | None = None,
        early_stopping: Literal["auto"] | bool | None = None,
        validation_fraction: float = 0.1,
        patience: int = 5,
        device: str | None = None,
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
        self.max_steps = max_steps
        self.min_steps = min_steps
        self.max_positions = max_positions
        self.missing = missing
        self.context_corruption = context_corruption
        self.calibration = calibration
        self.class_weight = class_weight
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    _parameter_constraints: dict = {
        "preset": [StrOptions(set(classifier.PRESETS))],
        "objective": [StrOptions({"auto", "mlm", "target"}), None],
        "method": [StrOptions({"single_pass", "copies"}), None],
        "vocabulary": [StrOptions({"auto", "shared", "per_column"}), None],
        "numeric": [StrOptions({"auto", "interpolate", "linear", "bin", "error"}), None],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "handle_unknown": [StrOptions({"mask", "error"})],
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "d_ff": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"}), None],
        "epochs": [Interval(Integral, 1, None, closed="left"), None],
        "max_steps": [Interval(Integral, 1, None, closed="left"), None],
        "min_steps": [Interval(Integral, 1, None, closed="left"), None],
        "max_positions": [Interval(Integral, 2, None, closed="left"), None],
        "missing": [StrOptions({"absent", "mask"}), None],
        "context_corruption": [Interval(Real, 0, 1, closed="left"), None],
        "calibration": [StrOptions({"temperature", "none"}), None],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "lr_schedule": [StrOptions({"constant", "linear"}), None],
        "early_stopping": [StrOptions({"auto"}), "boolean", None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "device": [str, None],
        "random_state": ["random_state", np.random.Generator],
        "verbose": ["verbose"],
    }

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
        if self.preset not in classifier.PRESETS:
            raise ValueError(f"preset must be one of {sorted(classifier.PRESETS)}, "
                             f"got {self.preset!r}")
        params = self.get_params()
        for name in classifier.PRESET_PARAMS:
            if params[name] is None:
                params[name] = classifier.PRESETS[self.preset][name]
        return params

    def _settings(self) -> dict[str, Any]:
        """:meth:`effective_params`, checked (:attr:`_parameter_constraints`, then what one
        parameter cannot say alone) and resolved."""
        self._validate_params()
        s = self.effective_params()
        if s["calibration"] == "none":
            s["calibration"] = None
        if self.min_steps is None and self.epochs is not None:
            s["min_steps"] = None           # epochs given: as many as asked
        if None not in (s["min_steps"], s["max_steps"]):
            s["min_steps"] = min(s["min_steps"], s["max_steps"])
        for name in _INTEGERS:              # plain ints (numpy ints pass the constraints)
            s[name] = None if s[name] is None else int(s[name])
        s["context_corruption"] = float(s["context_corruption"])
        if s["epochs"] is None and s["max_steps"] is None:
            raise ValueError("give epochs or max_steps (or both): training needs a budget")
        if s["d_model"] % s["n_heads"]:
            raise ValueError(f"d_model ({s['d_model']}) must be divisible by "
                             f"n_heads ({s['n_heads']})")
        return s

    # ----------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> WordExpertsClassifier:
        """Fit the masked language model over the columns of ``X`` and the target ``y``.

        ``sample_weight`` (n,), non-negative: each row's weight (times its ``class_weight``)
        in the objective, the choice of numeric reading and the cross-fitted temperature;
        not a repetition: the minibatches draw the rows as they are, each term weighted."""
        s = self._settings()
        X = encoding.as_table(X)
        validate_data(self, X, y, skip_check_array=True)
        if isinstance(getattr(y, "name", None), str):
            self.target_name_ = y.name
        elif hasattr(self, "target_name_"):
            del self.target_name_
        y = column_or_1d(np.asarray(y), warn=True)
        if len(y) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)}")
        if np.asarray(pd.isna(y)).any():
            raise ValueError("y has missing values: every training row needs a target")
        check_classification_targets(y)
        classes, y_codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has one class ({classes[0]!r}): a classifier needs "
                             "at least two classes")
        self.classes_ = classes
        fitted = classifier.fit_classifier(
            X, y_codes, classes, s, rng=classifier.as_generator(self.random_state),
            progress=self.verbose,
            row_weight=classifier.row_weights(X, y, sample_weight, self.class_weight))
        self.encoder_, self.temperature_ = fitted.encoder, fitted.temperature
        self.cross_fit_losses_ = fitted.cross_fit_losses
        self.settings_ = {k: v for k, v in fitted.settings.items() if k not in _NOT_SETTINGS}
        fit = fitted.fit
        self.model_, self.history_, self.n_restarts_ = fit.model, fit.history, fit.n_restarts
        self.objective_, self.objective_losses_ = fit.objective, fit.validation_loss
        return self

    # ----------------------------------------------------------------- predict
    def _check_X(self, X: Any) -> Any:
        check_is_fitted(self)
        X = encoding.as_table(X)
        validate_data(self, X, reset=False, skip_check_array=True)
        return X

    def model_inputs(self, X: Any) -> tuple[np.ndarray, Soft | None]:
        """What the model reads for the rows of ``X`` (checked as by :meth:`predict`): word
        ids (n, n_features + 1), the target slot masked, and the cells read between two words
        (``None`` without numeric columns read so)."""
        X = self._check_X(X)                    # first: unfitted is NotFittedError
        return self.encoder_.inputs(X)

    # read-only views of the fitted encoder
    @property
    def columns_(self) -> list[encoding.Column]:
        return self.encoder_.columns

    @property
    def words_(self) -> list[np.ndarray]:
        return self.encoder_.words

    @property
    def vocabulary_(self) -> str:
        return self.encoder_.vocabulary

    @property
    def n_words_(self) -> int:
        return self.encoder_.n_words

    def input_embeddings(self, X: Any) -> torch.Tensor:
        """The model's inputs ``e_j`` for the rows of ``X``: (n, n_features + 1, d_model), the
        target position (last) the mask's. A numeric cell (``numeric="interpolate"``) is read
        between its two neighbouring bins' words; every other cell is its word's embedding
        plus its position's. Feed the result to the methods of ``to_experts(model_)``
        (``gates``, ``expert_values``, ``masked_log_probs``) to look inside a prediction.
        """
        ids, soft = self.model_inputs(X)
        with torch.no_grad():
            return input_embeddings(self.model_, ids, soft)

    def word_ids(self, X: Any) -> np.ndarray:
        """Word ids (n, n_features + 1) of the rows of ``X``, the target position (last) set
        to the mask id, as the model reads them; missing or unknown cells are the mask too.

        ``X`` is checked as by :meth:`predict`. Feed the result to ``model_`` (or
        ``to_experts(model_)``) to look inside a prediction. With ``numeric="interpolate"``
        a numeric cell is read between two words and its id here is its nearest bin's: use
        :meth:`input_embeddings` for the model's exact inputs.
        """
        return self.encoder_.ids(self.encoder_.codes(self._check_X(X))).astype(np.int64)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log p(y = each of ``classes_`` | the row's features), from the masked target, the
        logits divided by ``temperature_``."""
        ids, soft = self.model_inputs(X)
        log_p = position_log_proba(self.model_, ids, self.words_[-1], len(self.columns_), soft)
        if self.temperature_ == 1.0:
            return log_p
        return calibrated(log_p, self.temperature_).astype(log_p.dtype)

    def predict_proba(self, X: Any) -> np.ndarray:
        """p(y = each of ``classes_`` | the row's features), from the masked target."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        best = self.predict_log_proba(X).argmax(axis=1)
        return self.classes_[best]

    def impute(self, X: Any) -> pd.DataFrame:
        """``X`` with every missing (NaN, None) cell filled in from the row's observed cells.

        All missing cells of a row are read as missing at once (``missing``) and each is
        predicted from the row's observed cells: a categorical cell, or a numeric column of
        at most ``n_bins`` values, gets its most probable value; a column cut into quantile
        bins gets the expected value under the predicted distribution over its bins (each
        bin at its training median: the estimate of least squared error). ``X`` may also
        hold the target column (named as ``y`` was in ``fit``: ``target_name_``): its
        observed cells are then read as context, and its missing ones filled with the
        predicted class; without it the target is read as missing. Returns a DataFrame with
        ``X``'s columns and index.
        """
        return imputation.impute(self, X)

    def gates(self, X: Any) -> np.ndarray:
        """How much each column (expert) weighs in the target prediction, per head.

        Returns ``(n_rows, n_heads, n_features + 1)``: the mixture weights ``pi`` of the
        masked target over the positions (docs/paper.md section 2), the last entry being the
        target's own (masked) position. Each row sums to one over the last axis; with
        ``missing="absent"`` a missing cell's gate is 0.
        """
        return explain.target_gates(self, X)

    # ----------------------------------------------------------------- explain
    def explain(self, X: Any, *, by_head: bool = False) -> pd.DataFrame:
        """Each column's gate and its contribution to every class's logit, per row: a tidy
        frame whose contributions plus the bias are the logits
        (:func:`wordexperts.tabular.explain.explain_predictions`)."""
        return explain.explain_predictions(self, X, by_head=by_head)

    def feature_importance(self, X: Any) -> pd.Series:
        """Global importance of each column over the rows of ``X``, largest first: the mean
        absolute centred contribution (:func:`wordexperts.tabular.explain.global_importance`)."""
        return explain.global_importance(self, X)

    def gate_shift(self, X_a: Any, X_b: Any) -> pd.DataFrame:
        """How the target's mean gates move from the rows of ``X_a`` to those of ``X_b``
        (say, the training and the shifted test group): :func:`wordexperts.tabular.explain.
        gate_shift`."""
        return explain.gate_shift(self, X_a, X_b)

    # ----------------------------------------------------------------- save / load
    def save(self, path: str | Path) -> None:
        """Write the fitted model to ``path`` (a folder): safetensors weights + JSON."""
        check_is_fitted(self)
        persistence.save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> WordExpertsClassifier:
        """Read a model written by :meth:`save` (its folder, or a file in it); it predicts
        bit-identically. A damaged or inconsistent folder raises ``ValueError`` naming the
        file and the field."""
        return persistence.load(cls, path)
