"""Fit the preprocessor, the LSTM and the baselines on a time-ordered split and evaluate them on the test period."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import keras
import numpy as np
import pandas as pd

from secom.baselines import fit_baselines, last_rows
from secom.data import FEATURE_NAMES, N_READINGS, SecomData
from secom.evaluation import (
    DEFAULT_BLOCK_LENGTH,
    DEFAULT_CONFIDENCE,
    DEFAULT_FRACTIONS,
    DEFAULT_N_RESAMPLES,
    Period,
    chronological_split,
    evaluate_scores,
    f1_optimal_threshold,
    windows_ending_at,
)
from secom.model import DEFAULT_EPOCHS, DEFAULT_PATIENCE, LSTMConfig, WindowScorer, train_ensemble
from secom.preprocessing import DEFAULT_WINDOW_LENGTH, SecomPreprocessor, make_windows

logger = logging.getLogger(__name__)

LSTM_NAME = "lstm"
LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "bentoml", "numpy", "pandas", "scikit-learn", "pydantic", "matplotlib")


@dataclass
class ScoredModel:
    """One model's scores on the validation and test windows and its validation-chosen threshold.

    ``is_probability`` is false for scores that are not probabilities.
    """

    name: str
    description: str
    threshold: float
    validation_scores: np.ndarray
    test_scores: np.ndarray
    is_probability: bool = True


@dataclass
class TrainingResult:
    """A fitted preprocessor and LSTM with everything recorded about how they were made.

    ``scored`` has the LSTM first, then the baselines; with the labels and
    the test timestamps it is what the report plots.
    """

    model: keras.Model
    preprocessor: SecomPreprocessor
    threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)
    scored: list[ScoredModel] = field(default_factory=list)
    validation_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    test_timestamps: pd.DatetimeIndex | None = None


def library_versions() -> dict[str, str]:
    """Return the versions of Python and of the installed libraries in ``LIBRARIES``."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def failures_by_month(data: SecomData) -> dict[str, dict[str, int]]:
    """Count lots and failures per calendar month (``YYYY-MM``) of the lot timestamps."""
    months = data.timestamps.strftime("%Y-%m")
    counts = pd.DataFrame({"month": months, "failed": data.labels}).groupby("month")["failed"].agg(["size", "sum"])
    return {month: {"n_rows": int(row["size"]), "n_failures": int(row["sum"])} for month, row in counts.iterrows()}


def split_windows(
    data: SecomData, preprocessor: SecomPreprocessor, periods: tuple[Period, ...]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Map each period's name to its windows, labels and window end rows.

    The transform is causal (forward fill uses only earlier rows, and scaling
    is per row), so transforming the whole sequence once lets validation and
    test windows take their first rows from the previous period.
    """
    window_length = preprocessor.window_length
    all_windows = make_windows(preprocessor.transform(data.readings), window_length)
    result = {}
    for period in periods:
        end_rows = period.window_end_rows(window_length)
        result[period.name] = (windows_ending_at(all_windows, end_rows, window_length), data.labels[end_rows], end_rows)
    return result


def train_and_evaluate(
    data: SecomData,
    *,
    seed: int = 42,
    epochs: int | None = None,
    units: int | None = None,
    window_length: int = DEFAULT_WINDOW_LENGTH,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    selected: dict[str, Any] | None = None,
    with_baselines: bool = True,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    block_length: int = DEFAULT_BLOCK_LENGTH,
    verbose: int = 2,
) -> TrainingResult:
    """Fit on the train period, choose thresholds on validation, score the test period once.

    Everything fitted (preprocessor, network weights, early stopping, the
    baselines, every threshold) is fitted on rows earlier than those it is
    scored on. ``selected`` is the variant chosen by ``secom.selection``
    (see ``load_selected_config``): its preprocessor parameters, LSTM config
    and fixed epoch count. Without it the network is the default LSTM with
    early stopping on validation, as before model selection existed.
    ``epochs`` and ``units`` override the selected or default values.
    """
    config, preprocessor_params, n_epochs, early_stopping = _training_plan(selected, epochs, units)
    train, validation, test = chronological_split(data.n_rows, fractions)
    preprocessor = SecomPreprocessor(window_length=window_length, **preprocessor_params).fit(
        data.readings[train.start : train.stop]
    )
    logger.info(
        "Preprocessor fitted on rows %d-%d: %d of %d readings kept (dropped %s)",
        train.start,
        train.stop - 1,
        preprocessor.n_features_out,
        N_READINGS,
        preprocessor.n_dropped_,
    )
    windows = split_windows(data, preprocessor, (train, validation, test))
    x_train, y_train, _ = windows["train"]
    x_val, y_val, _ = windows["validation"]
    x_test, y_test, test_end_rows = windows["test"]

    model, training_record = train_ensemble(
        x_train,
        y_train,
        x_val,
        y_val,
        config=config,
        seed=seed,
        epochs=n_epochs,
        patience=DEFAULT_PATIENCE if early_stopping else None,
        verbose=verbose,
    )
    scorer = WindowScorer(model)
    val_probabilities = scorer(x_val)
    threshold = f1_optimal_threshold(y_val, val_probabilities)

    fitted_baselines = fit_baselines(x_train, y_train, x_val, y_val, seed=seed) if with_baselines else []
    baseline_validation = {baseline.name: baseline.score(last_rows(x_val)) for baseline in fitted_baselines}

    # The test period is scored once, after every choice above is fixed.
    scored = [
        ScoredModel(
            name=LSTM_NAME,
            description=_describe(config, n_epochs, early_stopping),
            threshold=threshold,
            validation_scores=val_probabilities,
            test_scores=scorer(x_test),
        )
    ]
    for baseline in fitted_baselines:
        validation_scores = baseline_validation[baseline.name]
        scored.append(
            ScoredModel(
                name=baseline.name,
                description=baseline.description,
                threshold=f1_optimal_threshold(y_val, validation_scores),
                validation_scores=validation_scores,
                test_scores=baseline.score(last_rows(x_test)),
                is_probability=baseline.is_probability,
            )
        )

    bootstrap = {"n_resamples": n_resamples, "block_length": block_length, "seed": seed}
    evaluations = {
        item.name: {
            "validation": evaluate_scores(y_val, item.validation_scores, item.threshold),
            "test": evaluate_scores(y_test, item.test_scores, item.threshold, with_intervals=True, **bootstrap),
        }
        for item in scored
    }

    metadata = _build_metadata(
        data,
        preprocessor,
        windows,
        (train, validation, test),
        fractions=fractions,
        threshold=threshold,
        scored=scored,
        evaluations=evaluations,
        baseline_params=[baseline.params for baseline in fitted_baselines],
        training_record=training_record,
        selected=selected,
        bootstrap=bootstrap,
    )
    return TrainingResult(
        model=model,
        preprocessor=preprocessor,
        threshold=threshold,
        metadata=metadata,
        scored=scored,
        validation_labels=y_val,
        test_labels=y_test,
        test_timestamps=data.timestamps[test_end_rows],
    )


def _build_metadata(
    data: SecomData,
    preprocessor: SecomPreprocessor,
    windows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    periods_in_order: tuple[Period, Period, Period],
    *,
    fractions: tuple[float, float, float],
    threshold: float,
    scored: list[ScoredModel],
    evaluations: dict[str, dict[str, Any]],
    baseline_params: list[dict[str, object]],
    training_record: dict[str, object],
    selected: dict[str, Any] | None,
    bootstrap: dict[str, int],
) -> dict[str, Any]:
    periods = {
        period.name: {
            "first_row": period.start,
            "last_row": period.stop - 1,
            "first_timestamp": data.timestamps[period.start].isoformat(),
            "last_timestamp": data.timestamps[period.stop - 1].isoformat(),
            "n_windows": int(len(windows[period.name][1])),
            "n_failures": int(windows[period.name][1].sum()),
        }
        for period in periods_in_order
    }
    metadata = {
        "model_name": "secom-lstm",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "window_length": preprocessor.window_length,
        "n_readings": N_READINGS,
        "feature_names": list(FEATURE_NAMES),
        "selected_features": preprocessor.get_feature_names_out().tolist(),
        "threshold": threshold,
        "threshold_rule": "F1-optimal on the validation period",
        "metrics": evaluations[LSTM_NAME],
        "baselines": {
            item.name: {
                "description": item.description,
                "threshold": item.threshold,
                "metrics": evaluations[item.name],
                "params": params,
            }
            for item, params in zip(scored[1:], baseline_params)
        },
        "protocol": (
            "Chronological split by row order "
            f"{'/'.join(str(round(f * 100)) for f in fractions)} (train/validation/test). "
            "A window belongs to the period of its last row. The preprocessor, the network and the "
            "baselines are fitted on the train period. Thresholds (F1-optimal) "
            + (
                "use the validation period, and the LSTM variant and its epoch count were chosen by rolling-origin "
                "validation inside the train and validation periods. "
                if selected is not None
                else "and early stopping use the validation period. "
            )
            + "The test period is scored once at the end. "
            f"Test intervals: {DEFAULT_CONFIDENCE:.0%} percentile intervals from a circular block bootstrap "
            f"of {bootstrap['block_length']} consecutive windows, {bootstrap['n_resamples']} resamples."
        ),
        "periods": periods,
        "preprocessor": {"params": preprocessor.get_params(), "n_dropped": preprocessor.n_dropped_},
        "training": training_record,
        "selection": None if selected is None else {k: v for k, v in selected.items() if k != "lstm"},
        "training_description": scored[0].description,
        "data": {
            "archive_sha256": data.sha256,
            "n_rows": data.n_rows,
            "n_failures": int(data.labels.sum()),
            "by_month": failures_by_month(data),
        },
        "libraries": library_versions(),
    }
    return metadata


def _training_plan(
    selected: dict[str, Any] | None, epochs: int | None, units: int | None
) -> tuple[LSTMConfig, dict[str, Any], int, bool]:
    """Return the LSTM config, the preprocessor parameters, the epoch count and whether to stop early.

    A selected variant trains for its fixed epoch count; the default LSTM
    trains for at most ``DEFAULT_EPOCHS`` with early stopping.
    """
    if selected is None:
        config, preprocessor_params, n_epochs, early_stopping = LSTMConfig(), {}, DEFAULT_EPOCHS, True
    else:
        config, preprocessor_params = selected["lstm"], dict(selected["preprocessor"])
        n_epochs, early_stopping = int(selected["epochs"]), False
    if units is not None:
        config = replace(config, units=units)
    if epochs is not None:
        n_epochs = epochs
    return config, preprocessor_params, n_epochs, early_stopping


def _describe(config: LSTMConfig, n_epochs: int, early_stopping: bool) -> str:
    parts = [f"LSTM {config.units} units"]
    if config.dropout or config.recurrent_dropout:
        parts.append(f"dropout {config.dropout:g}, recurrent dropout {config.recurrent_dropout:g}")
    if config.l2:
        parts.append(f"L2 {config.l2:g}")
    parts.append("focal loss" if config.loss == "focal" else "class-weighted cross-entropy")
    parts.append(f"early stopping on validation, at most {n_epochs} epochs" if early_stopping else f"{n_epochs} epochs")
    if config.n_seeds > 1:
        parts.append(f"mean of {config.n_seeds} seeds")
    return ", ".join(parts)
