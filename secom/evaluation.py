"""Time-ordered split, threshold choice and test metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
PERIOD_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Period:
    """Rows ``start`` .. ``stop - 1`` of the time-ordered data."""

    name: str
    start: int
    stop: int

    def window_end_rows(self, window_length: int) -> np.ndarray:
        """Rows that end a window of this period.

        A window belongs to the period of its last row; its earlier rows may lie
        in the previous period as context, but its label is always in this one.
        """
        return np.arange(max(self.start, window_length - 1), self.stop)


def chronological_split(n_rows: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> tuple[Period, Period, Period]:
    """Split rows in time order into train, validation and test periods by row count."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    train_stop = int(round(n_rows * fractions[0]))
    validation_stop = int(round(n_rows * (fractions[0] + fractions[1])))
    bounds = (0, train_stop, validation_stop, n_rows)
    return tuple(Period(name, bounds[i], bounds[i + 1]) for i, name in enumerate(PERIOD_NAMES))  # type: ignore[return-value]


def windows_ending_at(all_windows: np.ndarray, end_rows: np.ndarray, window_length: int) -> np.ndarray:
    """Select from ``make_windows`` output (window i ends at row i + window_length - 1)."""
    return all_windows[end_rows - (window_length - 1)]


def f1_optimal_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Return the probability threshold with the highest F1 on these windows.

    The threshold is one of the observed probabilities, so ``probability >=
    threshold`` reproduces the F1 found here.
    """
    if labels.sum() == 0:
        raise ValueError("cannot choose a threshold: the windows contain no failures")
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    # The last precision/recall pair has no threshold.
    return float(thresholds[int(np.argmax(f1[:-1]))])


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float | int]:
    """Score probabilities against 0/1 labels: ranking metrics, then metrics at ``threshold``."""
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    has_both = 0 < labels.sum() < len(labels)
    return {
        "n_windows": int(len(labels)),
        "n_failures": int(labels.sum()),
        "failure_rate": float(labels.mean()),
        "roc_auc": float(roc_auc_score(labels, probabilities)) if has_both else float("nan"),
        "pr_auc": float(average_precision_score(labels, probabilities)) if has_both else float("nan"),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "true_positives": int(tp),
        "false_positives": int(fp),
        "true_negatives": int(tn),
        "false_negatives": int(fn),
    }
