"""Baselines on generated last rows: each separates a planted signal, and the logistic C is chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from secom.baselines import LOGISTIC_C_GRID, fit_baselines, fit_isolation_forest, fit_logistic_regression, last_rows


def _windows(n_windows: int, seed: int, *, window_length: int = 4, n_features: int = 12):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_windows) < 0.2).astype(int)
    windows = rng.normal(size=(n_windows, window_length, n_features)).astype(np.float32)
    # The signal sits in the last row only, where the baselines look.
    windows[:, -1, 0] += 2.0 * labels
    windows[:, -1, 1] -= 1.5 * labels
    return windows, labels


def test_last_rows_takes_final_row():
    windows = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(last_rows(windows), windows[:, 2, :])


def test_last_rows_rejects_flat_input():
    with pytest.raises(ValueError, match="window_length"):
        last_rows(np.zeros((3, 4)))


def test_supervised_baselines_find_signal():
    x_train, y_train = _windows(400, 0)
    x_val, y_val = _windows(150, 1)
    x_test, y_test = _windows(150, 2)
    baselines = {b.name: b for b in fit_baselines(x_train, y_train, x_val, y_val, seed=0)}
    assert set(baselines) == {"logistic_regression", "gradient_boosting", "isolation_forest"}
    for name in ("logistic_regression", "gradient_boosting"):
        scores = baselines[name].score(last_rows(x_test))
        assert scores.shape == (150,)
        assert baselines[name].is_probability
        assert np.all((scores >= 0) & (scores <= 1)), name
        assert roc_auc_score(y_test, scores) > 0.85, name
    assert baselines["logistic_regression"].params["C"] in LOGISTIC_C_GRID
    assert not baselines["isolation_forest"].is_probability


def test_isolation_forest_ranks_outliers_higher():
    rng = np.random.default_rng(3)
    x_train = rng.normal(size=(300, 8))
    inliers = rng.normal(size=(50, 8))
    outliers = rng.normal(loc=6.0, size=(5, 8))
    baseline = fit_isolation_forest(x_train, seed=0)
    assert baseline.score(outliers).min() > np.median(baseline.score(inliers))


def test_unsupervised_and_linear_baselines_reproducible_by_seed():
    x_train, y_train = _windows(300, 4)
    x_val, y_val = _windows(100, 5)
    rows_train, rows_val = last_rows(x_train), last_rows(x_val)
    for fit in (
        lambda: fit_isolation_forest(rows_train, seed=1),
        lambda: fit_logistic_regression(rows_train, y_train, rows_val, y_val, seed=1),
    ):
        first, second = fit(), fit()
        np.testing.assert_allclose(first.score(rows_val), second.score(rows_val))
