"""Block bootstrap intervals and metric evaluation on generated scores."""

from __future__ import annotations

import numpy as np
import pytest

from secom.evaluation import (
    INTERVAL_METRICS,
    bootstrap_intervals,
    circular_block_bootstrap_indices,
    evaluate_scores,
)


def _scores(n_windows: int = 300, failure_rate: float = 0.08, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_windows) < failure_rate).astype(int)
    scores = rng.random(n_windows) + 0.5 * labels
    return labels, scores


def test_block_indices_are_consecutive_blocks():
    rng = np.random.default_rng(1)
    indices = circular_block_bootstrap_indices(50, 7, 20, rng)
    assert indices.shape == (20, 50)
    assert indices.min() >= 0
    assert indices.max() < 50
    for resample in indices:
        for start in range(0, 50, 7):
            block = resample[start : start + 7]
            # Within a block each index follows the previous one, wrapping at the end.
            assert np.all(np.diff(block) % 50 == 1)


def test_block_indices_reject_bad_block_length():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="block_length"):
        circular_block_bootstrap_indices(10, 11, 5, rng)
    with pytest.raises(ValueError, match="block_length"):
        circular_block_bootstrap_indices(10, 0, 5, rng)


def test_intervals_bracket_point_estimates():
    labels, scores = _scores()
    metrics = evaluate_scores(labels, scores, 0.9, with_intervals=True, n_resamples=300, block_length=20)
    assert set(metrics["intervals"]) == set(INTERVAL_METRICS)
    for name in INTERVAL_METRICS:
        low, high = metrics["intervals"][name]
        assert low <= high, name
        # A percentile interval of a roughly symmetric bootstrap distribution
        # contains the full-sample value.
        assert low - 1e-9 <= metrics[name] <= high + 1e-9, name


def test_intervals_narrow_with_more_windows():
    short = bootstrap_intervals(*_scores(200, seed=2), 0.9, n_resamples=300)
    long = bootstrap_intervals(*_scores(2000, seed=2), 0.9, n_resamples=300)
    short_width = np.diff(short["intervals"]["roc_auc"])[0]
    long_width = np.diff(long["intervals"]["roc_auc"])[0]
    assert long_width < short_width


def test_bootstrap_records_settings():
    labels, scores = _scores()
    result = bootstrap_intervals(labels, scores, 0.9, n_resamples=50, block_length=15, seed=3)
    assert result["block_length"] == 15
    assert result["n_resamples"] == 50
    assert 0 < result["n_resamples_with_failures"] <= 50
    assert result["confidence"] == pytest.approx(0.95)


def test_bootstrap_is_reproducible_by_seed():
    labels, scores = _scores()
    first = bootstrap_intervals(labels, scores, 0.9, n_resamples=100, seed=7)
    second = bootstrap_intervals(labels, scores, 0.9, n_resamples=100, seed=7)
    assert first["intervals"] == second["intervals"]


def test_resamples_without_failures_skip_ranking_metrics():
    labels = np.zeros(100, dtype=int)
    labels[50] = 1
    scores = np.linspace(0, 1, 100)
    result = bootstrap_intervals(labels, scores, 0.5, n_resamples=200, block_length=10, seed=0)
    # One failure in 100 windows: many resamples miss it, and those give no ROC-AUC.
    assert result["n_resamples_with_failures"] < 200
    assert np.all(np.isfinite(result["intervals"]["roc_auc"]))


def test_evaluate_without_intervals_has_point_metrics_only():
    labels, scores = _scores()
    metrics = evaluate_scores(labels, scores, 0.9)
    assert "intervals" not in metrics
    assert metrics["n_failures"] == labels.sum()
    assert metrics["true_positives"] + metrics["false_negatives"] == metrics["n_failures"]


def test_bootstrap_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one length"):
        bootstrap_intervals(np.zeros(5, dtype=int), np.zeros(6), 0.5)


def test_resample_metrics_match_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

    from secom.evaluation import _threshold_metrics_by_resample

    rng = np.random.default_rng(4)
    labels = (rng.random((30, 40)) < 0.1).astype(int)
    labels[0] = 0  # a resample without failures
    predicted = rng.random((30, 40)) < 0.2
    predicted[1] = False  # a resample without predicted failures
    values = _threshold_metrics_by_resample(labels, predicted)
    for row in range(30):
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels[row], predicted[row].astype(int), average="binary", zero_division=0
        )
        assert values["precision"][row] == pytest.approx(precision)
        assert values["recall"][row] == pytest.approx(recall)
        assert values["f1"][row] == pytest.approx(f1)
        if labels[row].any():
            expected = balanced_accuracy_score(labels[row], predicted[row].astype(int))
        else:
            expected = np.mean(predicted[row] == labels[row])
        assert values["balanced_accuracy"][row] == pytest.approx(expected)
