"""Report, tables and model card rendered from generated scores through the real evaluation code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from secom.evaluation import evaluate_scores
from secom.report import (
    PLOTS,
    format_comparison_table,
    format_metrics_table,
    format_model_card,
    goal_statement,
    write_report,
)
from secom.training import ScoredModel, TrainingResult

N_WINDOWS = 120


def _scored(name: str, labels: np.ndarray, strength: float, seed: int, *, is_probability: bool = True) -> ScoredModel:
    rng = np.random.default_rng(seed)
    validation = np.clip(rng.random(N_WINDOWS) * 0.8 + strength * labels, 0, 1)
    test = np.clip(rng.random(N_WINDOWS) * 0.8 + strength * labels, 0, 1)
    return ScoredModel(name, f"{name} for the test", 0.6, validation, test, is_probability)


def _result() -> TrainingResult:
    rng = np.random.default_rng(0)
    labels = (rng.random(N_WINDOWS) < 0.1).astype(int)
    labels[:3] = 1
    scored = [
        _scored("lstm", labels, 0.3, 1),
        _scored("logistic_regression", labels, 0.1, 2),
        _scored("isolation_forest", labels, 0.0, 3, is_probability=False),
    ]
    evaluations = {
        item.name: {
            "validation": evaluate_scores(labels, item.validation_scores, item.threshold),
            "test": evaluate_scores(labels, item.test_scores, item.threshold, with_intervals=True, n_resamples=50),
        }
        for item in scored
    }
    period = {"first_row": 0, "last_row": 9, "first_timestamp": "2008-07-19T00:00:00", "last_timestamp": "2008-07-20T00:00:00",
              "n_windows": N_WINDOWS, "n_failures": int(labels.sum())}
    metadata = {
        "created_at": "2026-01-01T00:00:00+00:00",
        "model_tag": "secom-lstm:test",
        "window_length": 10,
        "n_readings": 590,
        "selected_features": ["1", "2"],
        "threshold": 0.6,
        "threshold_rule": "F1-optimal on the validation period",
        "training_description": "LSTM 4 units",
        "metrics": evaluations["lstm"],
        "baselines": {
            item.name: {"description": item.description, "threshold": item.threshold, "metrics": evaluations[item.name]}
            for item in scored[1:]
        },
        "protocol": "generated",
        "periods": {"train": period, "validation": period, "test": period},
        "preprocessor": {"params": {}},
        "data": {"archive_sha256": "generated", "n_rows": 130, "n_failures": 13,
                 "by_month": {"2008-07": {"n_rows": 130, "n_failures": 13}}},
        "libraries": {"python": "3.11"},
    }
    return TrainingResult(
        model=None,
        preprocessor=None,
        threshold=0.6,
        metadata=metadata,
        scored=scored,
        validation_labels=labels,
        test_labels=labels,
        test_timestamps=pd.date_range("2008-07-19", periods=N_WINDOWS, freq="h"),
    )


def test_report_writes_every_plot(tmp_path):
    index = write_report(_result(), tmp_path)
    page = index.read_text()
    for name, _ in PLOTS:
        path = tmp_path / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f'src="{name}"' in page, name


def test_comparison_table_lists_models_with_intervals():
    metadata = _result().metadata
    table = format_comparison_table(metadata, "test")
    rows = table.splitlines()
    assert len(rows) == 2 + 3
    low, high = metadata["metrics"]["test"]["intervals"]["roc_auc"]
    assert f"{metadata['metrics']['test']['roc_auc']:.3f} [{low:.3f}, {high:.3f}]" in rows[2]
    assert rows[3].startswith("| logistic_regression |")


def test_metrics_table_keeps_test_value_first():
    metadata = _result().metadata
    line = next(row for row in format_metrics_table(metadata).splitlines() if row.startswith("| ROC-AUC |"))
    test_cell = line.split(" | ")[2]
    assert float(test_cell.split()[0]) == pytest.approx(metadata["metrics"]["test"]["roc_auc"], abs=5e-5)


def test_goal_statement_compares_with_best_baseline():
    metadata = _result().metadata
    statement = goal_statement(metadata)
    assert f"{metadata['metrics']['test']['roc_auc']:.3f}" in statement
    assert "Best baseline" in statement


def test_model_card_states_failures_and_drift():
    metadata = _result().metadata
    card = format_model_card(metadata, None)
    assert "## Limits" in card
    assert "| 2008-07 | 130 | 13 |" in card
    assert f"{metadata['metrics']['test']['n_failures']} failing windows" in card
