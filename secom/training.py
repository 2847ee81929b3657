"""Fit the preprocessor and the LSTM on a time-ordered split and evaluate on the test period."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import keras
import numpy as np

from secom.data import FEATURE_NAMES, N_READINGS, SecomData
from secom.evaluation import (
    DEFAULT_FRACTIONS,
    chronological_split,
    classification_metrics,
    f1_optimal_threshold,
    windows_ending_at,
)
from secom.model import DEFAULT_EPOCHS, DEFAULT_UNITS, WindowScorer, train_lstm
from secom.preprocessing import DEFAULT_WINDOW_LENGTH, SecomPreprocessor, make_windows

logger = logging.getLogger(__name__)

LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "bentoml", "numpy", "pandas", "scikit-learn", "pydantic")


@dataclass
class TrainingResult:
    """A fitted preprocessor and LSTM with everything recorded about how they were made."""

    model: keras.Model
    preprocessor: SecomPreprocessor
    threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - a library not installed is simply not listed
            continue
    return versions


def train_and_evaluate(
    data: SecomData,
    *,
    seed: int = 42,
    epochs: int = DEFAULT_EPOCHS,
    units: int = DEFAULT_UNITS,
    window_length: int = DEFAULT_WINDOW_LENGTH,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    verbose: int = 2,
) -> TrainingResult:
    """Fit on the train period, choose the threshold on validation, score the test period once.

    Everything fitted (preprocessor, network weights, early stopping, threshold)
    sees only rows earlier than those it is scored on.
    """
    train, validation, test = chronological_split(data.n_rows, fractions)
    preprocessor = SecomPreprocessor(window_length=window_length).fit(data.readings[train.start : train.stop])
    logger.info(
        "Preprocessor fitted on rows %d-%d: %d of %d readings kept (dropped %s)",
        train.start,
        train.stop - 1,
        preprocessor.n_features_out,
        N_READINGS,
        preprocessor.n_dropped_,
    )

    # The transform is causal (forward fill uses only earlier rows; scaling is
    # per row), so transforming the whole sequence once lets validation and
    # test windows take their first rows from the previous period.
    all_windows = make_windows(preprocessor.transform(data.readings), window_length)
    split_windows = {}
    for period in (train, validation, test):
        end_rows = period.window_end_rows(window_length)
        split_windows[period.name] = (windows_ending_at(all_windows, end_rows, window_length), data.labels[end_rows])

    x_train, y_train = split_windows["train"]
    x_val, y_val = split_windows["validation"]
    model, training_record = train_lstm(x_train, y_train, x_val, y_val, seed=seed, epochs=epochs, units=units, verbose=verbose)
    scorer = WindowScorer(model)

    val_probabilities = scorer(x_val)
    threshold = f1_optimal_threshold(y_val, val_probabilities)

    # The test period is scored once, after every choice above is fixed.
    x_test, y_test = split_windows["test"]
    metrics = {
        "validation": classification_metrics(y_val, val_probabilities, threshold),
        "test": classification_metrics(y_test, scorer(x_test), threshold),
    }

    periods = {
        period.name: {
            "first_row": period.start,
            "last_row": period.stop - 1,
            "first_timestamp": data.timestamps[period.start].isoformat(),
            "last_timestamp": data.timestamps[period.stop - 1].isoformat(),
            "n_windows": int(len(split_windows[period.name][1])),
            "n_failures": int(split_windows[period.name][1].sum()),
        }
        for period in (train, validation, test)
    }
    metadata = {
        "model_name": "secom-lstm",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "window_length": window_length,
        "n_readings": N_READINGS,
        "feature_names": list(FEATURE_NAMES),
        "selected_features": preprocessor.get_feature_names_out().tolist(),
        "threshold": threshold,
        "threshold_rule": "F1-optimal on the validation period",
        "metrics": metrics,
        "protocol": (
            "Chronological split by row order "
            f"{'/'.join(str(round(f * 100)) for f in fractions)} (train/validation/test). "
            "A window belongs to the period of its last row. The preprocessor is fitted on the "
            "train period; early stopping and the threshold use the validation period; the test "
            "period is scored once at the end."
        ),
        "periods": periods,
        "preprocessor": {"params": preprocessor.get_params(), "n_dropped": preprocessor.n_dropped_},
        "training": training_record,
        "data": {"archive_sha256": data.sha256, "n_rows": data.n_rows, "n_failures": int(data.labels.sum())},
        "libraries": library_versions(),
    }
    return TrainingResult(model=model, preprocessor=preprocessor, threshold=threshold, metadata=metadata)
