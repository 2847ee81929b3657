"""Time-ordered split, threshold choice, test metrics and their block-bootstrap confidence intervals."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

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

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
# Consecutive windows share up to 9 of their 10 rows, and failures come in
# runs, so a resampled block must be longer than a window. A block of 20
# windows is two window lengths, and the 313-window test period holds 16 blocks.
DEFAULT_BLOCK_LENGTH = 20
DEFAULT_N_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
INTERVAL_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "precision", "recall", "f1")
PERIOD_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Period:
    """Rows ``start`` .. ``stop - 1`` of the time-ordered data."""

    name: str
    start: int
    stop: int

    def window_end_rows(self, window_length: int) -> np.ndarray:
        """Return the rows that end a window of this period.

        A window belongs to the period of its last row. Its earlier rows may lie
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


def circular_block_bootstrap_indices(
    n_samples: int, block_length: int, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw circular block bootstrap resamples of ``n_samples`` time-ordered samples.

    Each resample joins blocks of ``block_length`` consecutive indices, each
    block starting at a uniformly drawn index and wrapping from the last
    sample to the first, then cuts the result to ``n_samples``. Keeping blocks
    intact keeps the dependence between neighbouring windows in the resamples.

    Returns:
        Integer indices of shape (n_resamples, n_samples).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 1 <= block_length <= n_samples:
        raise ValueError(f"block_length must be in [1, {n_samples}], got {block_length}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n_blocks = -(-n_samples // block_length)
    starts = rng.integers(0, n_samples, size=(n_resamples, n_blocks, 1))
    indices = (starts + np.arange(block_length)) % n_samples
    return indices.reshape(n_resamples, -1)[:, :n_samples]


def bootstrap_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    block_length: int = DEFAULT_BLOCK_LENGTH,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """Compute percentile confidence intervals of ``INTERVAL_METRICS`` by circular block bootstrap.

    The threshold stays fixed, as it was chosen on earlier data. A resample
    without failures has no ROC-AUC or PR-AUC, so those intervals use only
    the resamples that contain both classes; ``n_resamples_with_failures``
    reports how many did.

    Returns:
        ``{"intervals": {metric: [low, high]}, "method": ..., "block_length": ...,
        "n_resamples": ..., "n_resamples_with_failures": ..., "confidence": ...}``.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of one length, got shapes {labels.shape} and {scores.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    resamples = circular_block_bootstrap_indices(len(labels), min(block_length, len(labels)), n_resamples, rng)
    values = _threshold_metrics_by_resample(labels[resamples], (scores >= threshold)[resamples])
    values["roc_auc"], values["pr_auc"] = [], []
    n_with_failures = 0
    for indices in resamples:
        sample_labels = labels[indices]
        if 0 < sample_labels.sum() < len(sample_labels):
            n_with_failures += 1
            values["roc_auc"].append(float(roc_auc_score(sample_labels, scores[indices])))
            values["pr_auc"].append(float(average_precision_score(sample_labels, scores[indices])))

    tail = (1 - confidence) / 2 * 100
    intervals = {
        name: [float(v) for v in np.percentile(draws, [tail, 100 - tail])] if draws else [float("nan"), float("nan")]
        for name, draws in values.items()
    }
    return {
        "intervals": intervals,
        "method": "circular block bootstrap of consecutive windows",
        "block_length": int(min(block_length, len(labels))),
        "n_resamples": int(n_resamples),
        "n_resamples_with_failures": int(n_with_failures),
        "confidence": float(confidence),
        "seed": int(seed),
    }


def _threshold_metrics_by_resample(labels: np.ndarray, predicted: np.ndarray) -> dict[str, list[float]]:
    """Compute precision, recall, F1 and balanced accuracy of every resample (one per row) from its confusion counts.

    The values match scikit-learn's ``precision_recall_fscore_support`` with
    ``zero_division=0`` and ``balanced_accuracy_score``, which averages over
    the classes present when a resample has no failures. Counting in numpy
    over all resamples at once takes milliseconds, because it avoids the
    input checks of one scikit-learn call per resample (seconds for 1000).
    """
    actual = labels.astype(bool)
    tp = np.sum(actual & predicted, axis=1)
    fp = np.sum(~actual & predicted, axis=1)
    fn = np.sum(actual & ~predicted, axis=1)
    tn = np.sum(~actual & ~predicted, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), 0.0)
    has_failures = tp + fn > 0
    has_passes = tn + fp > 0
    balanced_accuracy = np.where(
        has_failures & has_passes, (recall + specificity) / 2, np.where(has_failures, recall, specificity)
    )
    return {
        "balanced_accuracy": balanced_accuracy.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
    }


def evaluate_scores(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    with_intervals: bool = False,
    **bootstrap_options: Any,
) -> dict[str, Any]:
    """Score one model on one period: ``classification_metrics`` and the mean score, plus bootstrap intervals if requested.

    With ``with_intervals``, the result has ``intervals`` (metric to [low,
    high]) and ``bootstrap`` (the resampling settings).
    """
    metrics: dict[str, Any] = classification_metrics(labels, scores, threshold)
    # Beside failure_rate, the mean score shows how far probabilities are from calibrated.
    metrics["mean_score"] = float(np.mean(scores))
    if with_intervals:
        bootstrap = bootstrap_intervals(labels, scores, threshold, **bootstrap_options)
        metrics["intervals"] = bootstrap.pop("intervals")
        metrics["bootstrap"] = bootstrap
    return metrics
