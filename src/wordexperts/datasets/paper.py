"""The paper's two out-of-distribution data sets, as categorical tables.

- :func:`make_shift_simulation`: the simulated covariate shift of the paper's Tables 3 and 4.
- :func:`load_auto_mpg`: auto-mpg split by origin (paper Table 5), from ``vega_datasets``.

Both return ``(train, test)`` DataFrames of small non-negative integer codes, one column per
feature and the target in column ``y``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd

__all__ = ["AUTO_MPG_FEATURES", "load_auto_mpg", "make_shift_simulation", "paper_seeds"]

# Singular values and right singular vectors (rows) of the paper's covariance matrices
# (5 features; pairwise correlation 0.1 or 0.9, and 1 - 0.9 as the shifted test computes it),
# keyed by (n_features, off-diagonal, diagonal) exactly as LAPACK returned them to the paper's
# NumPy. Each matrix has a 4-fold eigenvalue, so the basis of that eigenspace is arbitrary and
# LAPACK builds differ in it (OpenBLAS's Haswell kernels here give another basis than its
# SkylakeX kernels): same distribution, different draws. The paper's data come out row for row
# only with these bases (reproduced with OpenBLAS 0.3.31, SkylakeX kernels); other matrices use
# a fixed analytic basis instead, so every machine draws the same numbers.
_PAPER_SVD: dict[tuple[int, float, float], tuple[list[float], list[list[float]]]] = {
    (5, 0.1, 1.0): (
        [1.4000000000000001, 0.9000000000000002, 0.9, 0.9, 0.8999999999999999],
        [
            [-0.4472135954999581, -0.44721359549995787, -0.44721359549995787,
             -0.44721359549995787, -0.447213595499958],
            [0.0, -0.04499298793420556, 0.6892404093689163, -0.7192357346583867,
             0.0749883132236759],
            [0.0, -0.4979715162905932, -0.22962019917844023, -0.10236081168195524,
             0.8299525271509884],
            [0.8944271909999157, -0.22360679774997905, -0.22360679774997905,
             -0.22360679774997905, -0.2236067977499791],
            [0.0, 0.7071067811865472, -0.47140452079103146, -0.4714045207910317,
             0.2357022603955158],
        ],
    ),
    (5, 0.9, 1.0): (
        [4.6000000000000005, 0.10000000000000035, 0.09999999999999999, 0.09999999999999998,
         0.09999999999999996],
        [
            [-0.447213595499958, -0.4472135954999579, -0.4472135954999579, -0.4472135954999579,
             -0.4472135954999579],
            [0.8944271909999159, -0.223606797749979, -0.223606797749979, -0.223606797749979,
             -0.223606797749979],
            [0.0, -8.129419882081724e-18, -9.027033596501113e-17, -0.7071067811865475,
             0.7071067811865476],
            [0.0, 0.8660254037844386, -0.28867513459481287, -0.28867513459481287,
             -0.28867513459481287],
            [0.0, 7.193556055096575e-17, 0.8164965809277259, -0.408248290463863,
             -0.408248290463863],
        ],
    ),
    (5, 0.09999999999999998, 1.0): (
        [1.3999999999999997, 0.9000000000000002, 0.9000000000000001, 0.9000000000000001,
         0.9],
        [
            [-0.4472135954999581, -0.447213595499958, -0.447213595499958, -0.447213595499958,
             -0.447213595499958],
            [0.894427190999916, -0.22360679774997905, -0.22360679774997905, -0.22360679774997905,
             -0.22360679774997905],
            [0.0, -0.22360679774997905, -0.07453559924999302, -0.521749194749951,
             0.8198915917499229],
            [0.0, 0.8333333333333334, -0.38888888888888895, -0.38888888888888895,
             -0.05555555555555558],
            [0.0, 0.07453559924999295, 0.7702011922499274, -0.5714395942499462,
             -0.2732971972499743],
        ],
    ),
}

AUTO_MPG_FEATURES: tuple[str, ...] = (
    "cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year",
)


def equicorrelation_factor(cov: np.ndarray) -> np.ndarray:
    """``F`` with ``F.T @ F == cov`` for an equicorrelation ``cov`` (one off-diagonal value,
    one diagonal value), laid out as NumPy's legacy ``multivariate_normal`` builds it
    (``sqrt(s)[:, None] * v`` from the SVD), so ``standard_normal((n, dim)) @ F`` replays it."""
    dim = cov.shape[0]
    off, diag = float(cov[0, -1]), float(cov[0, 0])
    if (dim, off, diag) in _PAPER_SVD:
        s, v = (np.array(a) for a in _PAPER_SVD[(dim, off, diag)])
        return np.sqrt(s)[:, None] * v
    # Helmert basis: the all-ones direction, then orthonormal contrasts.
    basis = np.zeros((dim, dim))
    basis[0] = 1.0 / np.sqrt(dim)
    for i in range(1, dim):
        basis[i, :i] = 1.0
        basis[i, i] = -float(i)
        basis[i] /= np.sqrt(i * (i + 1))
    eigenvalues = np.full(dim, diag - off)
    eigenvalues[0] += dim * off
    return np.sqrt(eigenvalues)[:, None] * basis


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_real(name: str, value: object, low: float, high: float = np.inf) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def make_shift_simulation(
    *,
    n: int = 2000,
    n_features: int = 5,
    n_causal: int = 1,
    corr: float = 0.1,
    x_noise: float = 0.0,
    y_noise: float = 2.0,
    n_bins: int = 10,
    shift: bool = True,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's simulated covariate shift (Tables 3 and 4), binned into categories.

    ``n`` training and ``n`` test rows of ``n_features`` Gaussian features with pairwise
    correlation ``corr`` in training and ``1 - corr`` in test (``shift=True``); the first
    ``n_features // 2`` features are negated. The target is linear in the first ``n_causal``
    noiseless features plus ``y_noise`` Gaussian noise; the observed features get
    ``x_noise`` times (0.4 causal, 0.3 other) Gaussian noise. Every column is then cut into
    ``n_bins`` quantile bins over train and test pooled. The draws replay NumPy's legacy
    generator seeded with ``seed`` in the paper's order, so the paper's seeds
    (:func:`paper_seeds`) give the paper's tables row for row.

    Returns ``(train, test)``: integer columns ``x0 .. x{n_features-1}`` and ``y`` in
    ``0 .. n_bins-1``.

    >>> train, test = make_shift_simulation(n=100, n_features=3, seed=1)
    >>> list(train.columns), train.shape, test.shape
    (['x0', 'x1', 'x2', 'y'], (100, 4), (100, 4))
    >>> int(pd.concat([train, test])["y"].value_counts().min())
    20
    """
    n = _check_int("n", n, 1)
    n_features = _check_int("n_features", n_features, 1)
    n_causal = _check_int("n_causal", n_causal, 1)
    if n_causal > n_features:
        raise ValueError(f"n_causal must be <= n_features ({n_features}), got {n_causal}")
    corr = _check_real("corr", corr, 0.0, 1.0)
    x_noise = _check_real("x_noise", x_noise, 0.0)
    y_noise = _check_real("y_noise", y_noise, 0.0)
    n_bins = _check_int("n_bins", n_bins, 2)
    if 2 * n < n_bins:
        raise ValueError(f"n_bins ({n_bins}) must be <= the 2 * n = {2 * n} pooled rows")
    if not isinstance(shift, bool | np.bool_):
        raise ValueError(f"shift must be a bool, got {shift!r}")
    seed = _check_int("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32, got {seed}")

    # RandomState(seed) replays np.random.seed(seed) + np.random.* without touching the
    # global generator.
    rng = np.random.RandomState(seed)
    sign = np.where(np.arange(n_features) < n_features // 2, -1.0, 1.0)
    ones, eye = np.ones((n_features, n_features)), np.eye(n_features)
    # Written as the paper writes them: the factor lookup needs the exact float matrices.
    train_cov = corr * ones + (1 - corr) * eye
    test_cov = (1 - corr) * ones + corr * eye if shift else train_cov
    train_factor = equicorrelation_factor(train_cov)
    test_factor = equicorrelation_factor(test_cov)
    train_x_true = (rng.standard_normal((n, n_features)) @ train_factor) * sign
    test_x_true = (rng.standard_normal((n, n_features)) @ test_factor) * sign
    sigma = x_noise * np.array([0.4] * n_causal + [0.3] * (n_features - n_causal))
    train_x = train_x_true + sigma * rng.normal(size=(n, n_features))
    test_x = test_x_true + sigma * rng.normal(size=(n, n_features))
    coef = rng.uniform(size=n_causal) * 10
    train_y = train_x_true[:, :n_causal] @ coef + y_noise * rng.normal(size=n)
    test_y = test_x_true[:, :n_causal] @ coef + y_noise * rng.normal(size=n)

    pooled = pd.DataFrame(
        np.vstack([train_x, test_x]), columns=[f"x{i}" for i in range(n_features)]
    )
    pooled["y"] = np.concatenate([train_y, test_y])
    binned = pooled.apply(lambda col: pd.qcut(col, n_bins, labels=False)).astype(np.int64)
    return binned.iloc[:n].reset_index(drop=True), binned.iloc[n:].reset_index(drop=True)


def paper_seeds(n: int = 20) -> list[int]:
    """The paper's simulation seeds: ``np.random.seed(2023); np.random.randint(10000, size=n)``.

    The first 20 (the default) are the paper's; a larger ``n`` continues the same stream.

    >>> paper_seeds()[:3]
    [4951, 5657, 2743]
    """
    n = _check_int("n", n, 1)
    return [int(s) for s in np.random.RandomState(2023).randint(10000, size=n)]


def load_auto_mpg() -> tuple[pd.DataFrame, pd.DataFrame]:
    """auto-mpg as in the paper's Table 5: trained on US cars, tested on the others.

    From ``vega_datasets`` (a local copy, no download): drop rows with unknown mpg or
    horsepower, keep 4, 6 and 8 cylinders (recoded 0, 1, 2), and cut displacement,
    horsepower, weight, acceleration, model year and the target mpg into 3 quantile bins over
    the filtered table (385 rows). Train: origin USA (245 rows); test: Europe and Japan (140).

    Returns ``(train, test)`` with integer columns :data:`AUTO_MPG_FEATURES` and ``y``.
    """
    try:
        from vega_datasets import data
    except ImportError as exc:
        raise ImportError(
            "load_auto_mpg needs the 'vega_datasets' package: pip install 'wordexperts[data]'"
        ) from exc
    with warnings.catch_warnings():  # vega_datasets' own use of a deprecated pandas keyword
        warnings.filterwarnings("ignore", message=".*convert_dates")
        cars = data.cars()
    cars = cars.dropna(subset=["Miles_per_Gallon", "Horsepower"])
    cars = cars[cars["Cylinders"].isin([4, 6, 8])].reset_index(drop=True)
    table = pd.DataFrame(
        {
            "cylinders": cars["Cylinders"].map({4: 0, 6: 1, 8: 2}),
            "displacement": cars["Displacement"],
            "horsepower": cars["Horsepower"],
            "weight": cars["Weight_in_lbs"],
            "acceleration": cars["Acceleration"],
            "model_year": pd.to_datetime(cars["Year"]).dt.year,
            "y": cars["Miles_per_Gallon"],
        }
    )
    for column in ("displacement", "horsepower", "weight", "acceleration", "model_year", "y"):
        table[column] = pd.qcut(table[column], 3, labels=False)
    table = table.astype(np.int64)
    usa = (cars["Origin"] == "USA").to_numpy()
    return table[usa].reset_index(drop=True), table[~usa].reset_index(drop=True)
