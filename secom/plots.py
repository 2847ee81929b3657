"""PNG plots of test-period scores for the model report.

Figures are built with ``matplotlib.figure.Figure`` and saved by the Agg
canvas, so no display or pyplot state is involved.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import CalibrationDisplay  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from secom.training import ScoredModel

logger = logging.getLogger(__name__)

DPI = 110
# Quantile bins hold equal numbers of windows; with about 17 test failures,
# five bins keep a few failures in the upper bins.
CALIBRATION_BINS = 5


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    logger.info("Wrote %s", path)
    return path


def plot_roc_curves(scored: list[ScoredModel], labels: np.ndarray, path: Path) -> Path:
    """Plot the test ROC curve of every model, with the chance diagonal."""
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    for item in scored:
        RocCurveDisplay.from_predictions(labels, item.test_scores, name=item.name, ax=axes)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC = 0.5)")
    axes.set_title(f"ROC, test period ({int(labels.sum())} failures in {len(labels)} windows)")
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_precision_recall_curves(scored: list[ScoredModel], labels: np.ndarray, path: Path) -> Path:
    """Plot the test precision-recall curve of every model, with the failure base rate."""
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    for item in scored:
        PrecisionRecallDisplay.from_predictions(labels, item.test_scores, name=item.name, ax=axes)
    base_rate = float(labels.mean())
    axes.axhline(base_rate, linestyle=":", color="grey", label=f"failure base rate ({base_rate:.3f})")
    axes.set_ylim(0, 1.02)
    axes.set_title("Precision-recall, test period")
    axes.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def plot_calibration(scored: list[ScoredModel], labels: np.ndarray, path: Path) -> Path:
    """Plot the test calibration curve of every model whose scores are probabilities."""
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    for item in scored:
        if item.is_probability:
            CalibrationDisplay.from_predictions(
                labels, item.test_scores, n_bins=CALIBRATION_BINS, strategy="quantile", name=item.name, ax=axes
            )
    axes.set_title(f"Calibration, test period ({CALIBRATION_BINS} quantile bins)")
    axes.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def plot_probabilities_over_time(
    timestamps: pd.DatetimeIndex, probabilities: np.ndarray, labels: np.ndarray, threshold: float, path: Path
) -> Path:
    """Plot the model's test probabilities against lot time, failures marked, with the threshold line."""
    figure = Figure(figsize=(11, 4))
    axes = figure.add_subplot()
    times = timestamps.to_numpy()
    failed = labels == 1
    axes.plot(times, probabilities, color="tab:blue", linewidth=0.8, label="failure probability")
    axes.scatter(times[failed], probabilities[failed], color="tab:red", zorder=3, s=25, label="lot failed")
    axes.axhline(threshold, color="black", linestyle="--", linewidth=0.8, label=f"threshold {threshold:.3f}")
    axes.set_xlabel("lot timestamp (window's last row)")
    axes.set_ylabel("probability")
    axes.set_title("LSTM failure probability over the test period")
    # Outside the axes, because failures near both ends sit at high probabilities.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.autofmt_xdate()
    return _save(figure, path)


def plot_confusion_matrix(labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path) -> Path:
    """Plot the test confusion matrix at the threshold (fail when score >= threshold)."""
    figure = Figure(figsize=(4.5, 4))
    axes = figure.add_subplot()
    predicted = (scores >= threshold).astype(int)
    ConfusionMatrixDisplay.from_predictions(
        labels, predicted, labels=[0, 1], display_labels=["pass", "fail"], ax=axes, colorbar=False
    )
    axes.set_title(f"Test period at threshold {threshold:.3f}")
    return _save(figure, path)
