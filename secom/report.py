"""Text renderings of the evaluation recorded in a model's metadata."""

from __future__ import annotations

from typing import Any

METRIC_ROWS = (
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC", "pr_auc"),
    ("failure base rate", "failure_rate"),
    ("accuracy", "accuracy"),
    ("balanced accuracy", "balanced_accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
)
COUNT_ROWS = (
    ("windows", "n_windows"),
    ("failures", "n_failures"),
    ("true positives", "true_positives"),
    ("false positives", "false_positives"),
    ("true negatives", "true_negatives"),
    ("false negatives", "false_negatives"),
)


def format_metrics_table(metadata: dict[str, Any]) -> str:
    """Render validation and test metrics as a Markdown table, values to 4 decimals."""
    validation = metadata["metrics"]["validation"]
    test = metadata["metrics"]["test"]
    periods = metadata["periods"]
    lines = [
        f"Threshold {metadata['threshold']:.4f} ({metadata['threshold_rule']})",
        "",
        "| metric | validation | test |",
        "|---|---|---|",
        f"| period | {periods['validation']['first_timestamp'][:10]} to {periods['validation']['last_timestamp'][:10]} "
        f"| {periods['test']['first_timestamp'][:10]} to {periods['test']['last_timestamp'][:10]} |",
    ]
    for label, key in METRIC_ROWS:
        lines.append(f"| {label} | {validation[key]:.4f} | {test[key]:.4f} |")
    for label, key in COUNT_ROWS:
        lines.append(f"| {label} | {validation[key]} | {test[key]} |")
    return "\n".join(lines)
