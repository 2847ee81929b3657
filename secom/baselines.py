"""Baselines scored on the same split and the same fitted preprocessor as the LSTM.

Each baseline is given the last row of a window, as the preprocessor
transforms it. That row is the lot whose label the window carries. Supervised baselines are
fitted on the train period; the unsupervised one ignores the labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

logger = logging.getLogger(__name__)

# Inverse L2 strengths tried for the logistic regression, chosen by validation ROC-AUC.
LOGISTIC_C_GRID = (0.001, 0.01, 0.1, 1.0)


@dataclass
class FittedBaseline:
    """A fitted baseline: ``score`` maps last rows (n, n_features) to failure scores (n,), higher meaning likelier to fail.

    ``is_probability`` is false for scores that are not probabilities (the
    isolation forest's anomaly score), which are left out of calibration plots.
    """

    name: str
    description: str
    score: Callable[[np.ndarray], np.ndarray]
    is_probability: bool
    params: dict[str, object]


def last_rows(windows: np.ndarray) -> np.ndarray:
    """Return the last row of each window: (n, window_length, n_features) to (n, n_features)."""
    if windows.ndim != 3:
        raise ValueError(f"expected windows of shape (n, window_length, n_features), got {windows.shape}")
    return windows[:, -1, :]


def fit_logistic_regression(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, seed: int
) -> FittedBaseline:
    """Fit an L2-regularized, class-balanced logistic regression, choosing C by validation ROC-AUC."""
    best_model, best_auc, best_c = None, -np.inf, None
    for c in LOGISTIC_C_GRID:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed).fit(x_train, y_train)
        auc = roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])
        logger.info("Logistic regression C=%g: validation ROC-AUC %.4f", c, auc)
        if auc > best_auc:
            best_model, best_auc, best_c = model, auc, c
    assert best_model is not None
    return FittedBaseline(
        name="logistic_regression",
        description=f"L2 logistic regression on the last row, balanced class weights, C={best_c:g} chosen on validation",
        score=lambda x: best_model.predict_proba(x)[:, 1],
        is_probability=True,
        params={"C": best_c, "C_grid": list(LOGISTIC_C_GRID), "class_weight": "balanced"},
    )


def fit_gradient_boosting(x_train: np.ndarray, y_train: np.ndarray, *, seed: int) -> FittedBaseline:
    """Fit a shallow, class-balanced HistGradientBoostingClassifier.

    Its built-in early stopping is off because it holds out a random, not a
    time-ordered, part of the training rows.
    """
    # NOTE: with class weights, scikit-learn 1.9 bins each feature by one
    # weighted percentile per bin edge, about 60 ms per feature on 2 shared
    # cores, so this fit takes most of the baselines' time.
    params = {
        "max_iter": 100,
        "learning_rate": 0.05,
        "max_depth": 3,
        "l2_regularization": 1.0,
        "class_weight": "balanced",
        "early_stopping": False,
    }
    model = HistGradientBoostingClassifier(random_state=seed, **params).fit(x_train, y_train)
    return FittedBaseline(
        name="gradient_boosting",
        description="HistGradientBoostingClassifier on the last row, depth 3, 100 iterations, balanced class weights",
        score=lambda x: model.predict_proba(x)[:, 1],
        is_probability=True,
        params=params,
    )


def fit_isolation_forest(x_train: np.ndarray, *, seed: int) -> FittedBaseline:
    """Fit an IsolationForest on the training rows without labels; the score is the negated ``score_samples``."""
    params = {"n_estimators": 300}
    model = IsolationForest(random_state=seed, **params).fit(x_train)
    return FittedBaseline(
        name="isolation_forest",
        description="IsolationForest on the last row, unsupervised, 300 trees; score is the anomaly score",
        score=lambda x: -model.score_samples(x),
        is_probability=False,
        params=params,
    )


def fit_baselines(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, seed: int
) -> list[FittedBaseline]:
    """Fit every baseline on windows of the train period (validation only chooses the logistic C)."""
    train_rows, val_rows = last_rows(x_train), last_rows(x_val)
    return [
        fit_logistic_regression(train_rows, y_train, val_rows, y_val, seed=seed),
        fit_gradient_boosting(train_rows, y_train, seed=seed),
        fit_isolation_forest(train_rows, seed=seed),
    ]
