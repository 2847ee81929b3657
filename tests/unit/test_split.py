"""Chronological split: periods in order, no label crossing a period boundary."""

from __future__ import annotations

import numpy as np
import pytest

from secom.evaluation import chronological_split, f1_optimal_threshold, windows_ending_at
from secom.preprocessing import make_windows


def test_periods_cover_rows_in_order():
    train, validation, test = chronological_split(1567)
    assert train.start == 0
    assert train.stop == validation.start
    assert validation.stop == test.start
    assert test.stop == 1567
    assert train.stop == 940
    assert validation.stop == 1254


def test_window_labels_stay_in_period():
    n_rows, window_length = 200, 10
    periods = chronological_split(n_rows)
    seen: list[int] = []
    for period in periods:
        end_rows = period.window_end_rows(window_length)
        assert end_rows.min() >= period.start
        assert end_rows.max() < period.stop
        seen.extend(end_rows.tolist())
    # Every row that can end a window ends exactly one, in exactly one period.
    assert seen == list(range(window_length - 1, n_rows))


def test_validation_windows_use_previous_rows_as_context():
    features = np.arange(100, dtype=np.float32)[:, None]
    windows = make_windows(features, 10)
    _, validation, _ = chronological_split(100)
    end_rows = validation.window_end_rows(10)
    selected = windows_ending_at(windows, end_rows, 10)
    assert selected[0, -1, 0] == validation.start
    assert selected[0, 0, 0] == validation.start - 9


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.6, 0.3, 0.3), (0.0, 0.5, 0.5)])
def test_bad_fractions_rejected(fractions):
    with pytest.raises(ValueError, match="fractions"):
        chronological_split(100, fractions)


def test_f1_threshold_reproduces_best_split():
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9])
    threshold = f1_optimal_threshold(labels, probabilities)
    # Flagging >= 0.4 catches all 3 failures with 1 false positive (F1 0.857),
    # better than >= 0.8 (F1 0.8).
    assert threshold == pytest.approx(0.4)


def test_f1_threshold_needs_failures():
    with pytest.raises(ValueError, match="no failures"):
        f1_optimal_threshold(np.zeros(5, dtype=int), np.linspace(0, 1, 5))
