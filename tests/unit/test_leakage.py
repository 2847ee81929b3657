"""Leakage checks: nothing is fitted on test-period rows, windows keep their labels in their period, and
shuffled labels score at chance.

The data are generated: 590 readings per lot with gaps, 40 of them varying
and a few of those carrying the failure signal, and lots in time order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from secom.baselines import fit_logistic_regression, last_rows
from secom.data import N_READINGS, SecomData
from secom.evaluation import chronological_split, f1_optimal_threshold
from secom.preprocessing import SecomPreprocessor
from secom.selection import _fold_windows, default_folds
from secom.training import split_windows

N_ROWS = 600
WINDOW_LENGTH = 10
SIGNAL_READINGS = (3, 17, 31)
N_VARYING_READINGS = 40


def _generated(seed: int = 0, failure_rate: float = 0.15) -> SecomData:
    rng = np.random.default_rng(seed)
    labels = (rng.random(N_ROWS) < failure_rate).astype(np.int64)
    readings = rng.normal(size=(N_ROWS, N_READINGS))
    # Like the real sensors, many readings are constant; the preprocessor
    # drops them, which keeps the baselines fast.
    readings[:, N_VARYING_READINGS:] = 1.0
    readings[:, list(SIGNAL_READINGS)] += 1.5 * labels[:, None]
    readings[rng.random(readings.shape) < 0.05] = np.nan
    timestamps = pd.date_range("2008-07-19", periods=N_ROWS, freq="h")
    return SecomData(readings=readings, labels=labels, timestamps=timestamps, sha256="generated")


def _fit_and_threshold(data: SecomData) -> tuple[SecomPreprocessor, float, np.ndarray]:
    """Run the training protocol with the cheap baseline: preprocessor on train, threshold on validation."""
    train, validation, test = chronological_split(data.n_rows)
    preprocessor = SecomPreprocessor(window_length=WINDOW_LENGTH).fit(data.readings[train.start : train.stop])
    windows = split_windows(data, preprocessor, (train, validation, test))
    x_train, y_train, _ = windows["train"]
    x_val, y_val, _ = windows["validation"]
    x_test, _, _ = windows["test"]
    baseline = fit_logistic_regression(last_rows(x_train), y_train, last_rows(x_val), y_val, seed=0)
    threshold = f1_optimal_threshold(y_val, baseline.score(last_rows(x_val)))
    return preprocessor, threshold, baseline.score(last_rows(x_test))


def test_test_rows_change_neither_preprocessor_nor_threshold():
    original = _generated()
    _, _, test = chronological_split(original.n_rows)
    changed_readings = original.readings.copy()
    rng = np.random.default_rng(99)
    changed_readings[test.start :] = rng.normal(loc=5.0, scale=3.0, size=changed_readings[test.start :].shape)
    changed_readings[test.start :, :20] = np.nan
    changed_labels = original.labels.copy()
    changed_labels[test.start :] = 1 - changed_labels[test.start :]
    changed = SecomData(changed_readings, changed_labels, original.timestamps, original.sha256)

    preprocessor, threshold, test_scores = _fit_and_threshold(original)
    changed_preprocessor, changed_threshold, changed_test_scores = _fit_and_threshold(changed)

    assert changed_preprocessor.to_dict() == preprocessor.to_dict()
    assert changed_threshold == threshold
    # The change reached the test period, so the comparison above is not vacuous.
    assert not np.allclose(changed_test_scores, test_scores)


def test_window_label_rows_stay_in_period():
    data = _generated()
    periods = chronological_split(data.n_rows)
    preprocessor = SecomPreprocessor(window_length=WINDOW_LENGTH).fit(data.readings[: periods[0].stop])
    features = preprocessor.transform(data.readings)
    windows = split_windows(data, preprocessor, periods)
    for period in periods:
        x, y, end_rows = windows[period.name]
        assert end_rows.min() >= period.start, period.name
        assert end_rows.max() < period.stop, period.name
        np.testing.assert_array_equal(y, data.labels[end_rows])
        # The last row of each window is the row whose label it carries.
        np.testing.assert_array_equal(x[:, -1, :], features[end_rows])


def test_selection_folds_never_reach_test_period():
    n_rows = 1567
    _, validation, test = chronological_split(n_rows)
    folds = default_folds(n_rows)
    assert folds[-1].origin == validation.start
    assert folds[-1].stop == validation.stop
    for fold in folds:
        assert fold.stop <= test.start
        assert fold.origin < fold.stop


def test_selection_fold_windows_split_at_origin():
    data = _generated()
    folds = default_folds(data.n_rows)
    for fold in folds:
        x_fit, y_fit, x_score, y_score, _ = _fold_windows(data, fold, {}, WINDOW_LENGTH)
        # Fit windows end at rows WINDOW_LENGTH - 1 .. origin - 1; scoring windows at origin .. stop - 1.
        assert len(y_fit) == fold.origin - (WINDOW_LENGTH - 1)
        assert len(y_score) == fold.stop - fold.origin
        np.testing.assert_array_equal(y_score, data.labels[fold.origin : fold.stop])


def _shuffled_test_roc_auc(seed: int) -> float:
    from sklearn.metrics import roc_auc_score

    data = _generated(seed=seed)
    rng = np.random.default_rng(1000 + seed)
    shuffled = SecomData(data.readings, rng.permutation(data.labels), data.timestamps, data.sha256)
    _, _, test = chronological_split(shuffled.n_rows)
    _, _, test_scores = _fit_and_threshold(shuffled)
    return float(roc_auc_score(shuffled.labels[test.start :], test_scores))


def test_shuffled_labels_score_at_chance():
    seeds = range(5)
    aucs = [_shuffled_test_roc_auc(seed) for seed in seeds]
    # Without signal, the ROC-AUC of n1 failures and n0 passes has standard
    # deviation sqrt((n1 + n0 + 1) / (12 * n1 * n0)). That is about 0.074 for
    # the ~18 failures in 120 test windows here, and 0.033 for the mean of 5
    # seeds. A leak-free pipeline exceeds 4 of those with probability < 1e-4.
    n_test = N_ROWS - chronological_split(N_ROWS)[2].start
    n_failures = 0.15 * n_test
    sigma = np.sqrt((n_test + 1) / (12 * n_failures * (n_test - n_failures))) / np.sqrt(len(aucs))
    assert abs(np.mean(aucs) - 0.5) < 4 * sigma


def test_unshuffled_labels_score_well_above_chance():
    # The same pipeline on the real labels finds the planted signal, so the
    # chance-level result above comes from the shuffle.
    from sklearn.metrics import roc_auc_score

    data = _generated(seed=0)
    _, _, test = chronological_split(data.n_rows)
    _, _, test_scores = _fit_and_threshold(data)
    assert roc_auc_score(data.labels[test.start :], test_scores) > 0.8


def test_training_pipeline_ignores_test_rows():
    from secom.model import LSTMConfig
    from secom.training import train_and_evaluate

    original = _generated(seed=5)
    _, _, test = chronological_split(original.n_rows)
    changed_readings = original.readings.copy()
    changed_readings[test.start :] = np.random.default_rng(6).normal(loc=4.0, size=changed_readings[test.start :].shape)
    changed = SecomData(changed_readings, original.labels, original.timestamps, original.sha256)
    selected = {"preprocessor": {}, "lstm": LSTMConfig(units=4, n_seeds=1), "epochs": 1}

    runs = [
        train_and_evaluate(data, seed=3, selected=selected, n_resamples=20, verbose=0) for data in (original, changed)
    ]

    assert runs[0].preprocessor.to_dict() == runs[1].preprocessor.to_dict()
    assert runs[1].threshold == pytest.approx(runs[0].threshold, rel=1e-6)
    for before, after in zip(runs[0].scored, runs[1].scored):
        assert after.name == before.name
        assert after.threshold == pytest.approx(before.threshold, rel=1e-6), before.name
        np.testing.assert_allclose(after.validation_scores, before.validation_scores, rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs[1].scored[0].test_scores, runs[0].scored[0].test_scores)
