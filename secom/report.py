"""Renderings of the evaluation recorded in a model's metadata: tables, the HTML report and the model card.

Every number comes from the metadata that ``train_and_evaluate`` wrote and
from the selection record that ``secom.selection`` wrote; nothing is typed in.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secom.training import TrainingResult

logger = logging.getLogger(__name__)

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
COMPARISON_COLUMNS = (
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC", "pr_auc"),
    ("balanced accuracy", "balanced_accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
)
GOAL_ROC_AUC = 0.80
PLOTS = (
    ("roc.png", "ROC curves of the LSTM and the baselines, test period"),
    ("precision_recall.png", "Precision-recall curves, test period, with the failure base rate"),
    ("calibration.png", "Calibration curves, test period"),
    ("probabilities_over_time.png", "LSTM probabilities over the test period, failures marked"),
    ("confusion_matrix.png", "LSTM confusion matrix at the threshold, test period"),
)


def format_metrics_table(metadata: dict[str, Any]) -> str:
    """Render the LSTM's validation and test metrics as a Markdown table, values to 4 decimals.

    Test values are followed by their bootstrap interval ``[low, high]`` where recorded.
    """
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
    intervals = test.get("intervals", {})
    for label, key in METRIC_ROWS:
        interval = f" [{intervals[key][0]:.4f}, {intervals[key][1]:.4f}]" if key in intervals else ""
        lines.append(f"| {label} | {validation[key]:.4f} | {test[key]:.4f}{interval} |")
    for label, key in COUNT_ROWS:
        lines.append(f"| {label} | {validation[key]} | {test[key]} |")
    return "\n".join(lines)


def model_evaluations(metadata: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Return (name, description, {"validation", "test"} metrics) for the LSTM, then each baseline."""
    rows = [("lstm", metadata.get("training_description", "served LSTM"), metadata["metrics"])]
    for name, baseline in metadata.get("baselines", {}).items():
        rows.append((name, baseline["description"], baseline["metrics"]))
    return rows


def _with_interval(metrics: dict[str, Any], key: str) -> str:
    value = f"{metrics[key]:.3f}"
    interval = metrics.get("intervals", {}).get(key)
    return value if interval is None else f"{value} [{interval[0]:.3f}, {interval[1]:.3f}]"


def format_comparison_table(metadata: dict[str, Any], period: str = "test") -> str:
    """Render every model's metrics on ``period`` as a Markdown table, with intervals where recorded."""
    header = ["model", *(label for label, _ in COMPARISON_COLUMNS), "failure base rate", "threshold", "TP / failures", "FP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, _, metrics in model_evaluations(metadata):
        scores = metrics[period]
        cells = [name, *(_with_interval(scores, key) for _, key in COMPARISON_COLUMNS)]
        cells += [
            f"{scores['failure_rate']:.3f}",
            f"{scores['threshold']:.4g}",
            f"{scores['true_positives']} / {scores['n_failures']}",
            str(scores["false_positives"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_bootstrap(metadata: dict[str, Any]) -> str:
    """Describe the interval method recorded with the LSTM's test metrics."""
    bootstrap = metadata["metrics"]["test"]["bootstrap"]
    return (
        f"Intervals: {bootstrap['confidence']:.0%} percentile intervals from a {bootstrap['method']}, "
        f"block length {bootstrap['block_length']} windows, {bootstrap['n_resamples']} resamples "
        f"({bootstrap['n_resamples_with_failures']} contained a failure and give the ROC-AUC and PR-AUC intervals)."
    )


def goal_statement(metadata: dict[str, Any]) -> str:
    """State whether the LSTM's test ROC-AUC reaches ``GOAL_ROC_AUC`` and every baseline's."""
    lstm_auc = metadata["metrics"]["test"]["roc_auc"]
    baseline_aucs = {name: b["metrics"]["test"]["roc_auc"] for name, b in metadata.get("baselines", {}).items()}
    best_name = max(baseline_aucs, key=baseline_aucs.get) if baseline_aucs else None
    reached_goal = lstm_auc >= GOAL_ROC_AUC
    beats_baselines = all(lstm_auc >= auc for auc in baseline_aucs.values())
    parts = [
        f"Test ROC-AUC of the served LSTM: {lstm_auc:.3f}; the goal of {GOAL_ROC_AUC:.2f} is "
        + ("reached." if reached_goal else "not reached.")
    ]
    if best_name is not None:
        parts.append(
            f"Best baseline: {best_name} at {baseline_aucs[best_name]:.3f}; the LSTM is "
            + ("at or above every baseline." if beats_baselines else "below it.")
        )
    return " ".join(parts)


def _selection_rows(selection_record: dict[str, Any]) -> list[str]:
    lines = [
        "| stage | variant | mean ROC-AUC, single network | mean ROC-AUC, seed ensemble | best epochs | best kind |",
        "|---|---|---|---|---|---|",
    ]
    for variant in selection_record["variants"]:
        best = variant["best"]
        by_epochs = variant["by_epochs"][str(best["epochs"])]
        lines.append(
            f"| {variant.get('stage', '')} | {variant['name']} | {by_epochs['single_roc_auc']:.3f} "
            f"| {by_epochs['ensemble_roc_auc']:.3f} | {best['epochs']} | {best['kind']} |"
        )
    return lines


def write_report(result: TrainingResult, directory: Path) -> Path:
    """Write the PNG plots and ``index.html`` of the test-period evaluation into ``directory``.

    Returns:
        The path of ``index.html``.
    """
    from secom.plots import (
        plot_calibration,
        plot_confusion_matrix,
        plot_precision_recall_curves,
        plot_probabilities_over_time,
        plot_roc_curves,
    )

    directory.mkdir(parents=True, exist_ok=True)
    labels = result.test_labels
    lstm = result.scored[0]
    plot_roc_curves(result.scored, labels, directory / "roc.png")
    plot_precision_recall_curves(result.scored, labels, directory / "precision_recall.png")
    plot_calibration(result.scored, labels, directory / "calibration.png")
    plot_probabilities_over_time(
        result.test_timestamps, lstm.test_scores, labels, lstm.threshold, directory / "probabilities_over_time.png"
    )
    plot_confusion_matrix(labels, lstm.test_scores, lstm.threshold, directory / "confusion_matrix.png")

    metadata = result.metadata
    index = directory / "index.html"
    index.write_text(_render_html(metadata))
    logger.info("Wrote the model report %s", index)
    return index


def _markdown_table_to_html(table: str) -> str:
    rows = [line.strip("|").split(" | ") for line in table.splitlines() if not line.startswith("|---")]
    header, body = rows[0], rows[1:]
    cells = ["<tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in header) + "</tr>"]
    for row in body:
        cells.append("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>")
    return "<table>\n" + "\n".join(cells) + "\n</table>"


def _render_html(metadata: dict[str, Any]) -> str:
    periods = metadata["periods"]
    period_lines = "".join(
        f"<li>{name}: rows {p['first_row']}-{p['last_row']}, {p['first_timestamp'][:10]} to "
        f"{p['last_timestamp'][:10]}, {p['n_windows']} windows, {p['n_failures']} failures</li>"
        for name, p in periods.items()
    )
    descriptions = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(description)}</li>"
        for name, description, _ in model_evaluations(metadata)
    )
    figures = "".join(
        f'<figure><img src="{name}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for name, caption in PLOTS
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>secom-lstm evaluation report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>secom-lstm evaluation report</h1>
<p>Created {html.escape(metadata['created_at'])}; archive sha256 {html.escape(metadata['data']['archive_sha256'])}.</p>
<h2>Protocol</h2>
<p>{html.escape(metadata['protocol'])}</p>
<ul>{period_lines}</ul>
<h2>Models</h2>
<ul>{descriptions}</ul>
<h2>Test period</h2>
<p>{html.escape(goal_statement(metadata))}</p>
{_markdown_table_to_html(format_comparison_table(metadata, "test"))}
<p>{html.escape(describe_bootstrap(metadata))}</p>
<h2>Validation period (thresholds chosen here)</h2>
{_markdown_table_to_html(format_comparison_table(metadata, "validation"))}
<h2>Plots</h2>
{figures}
</body>
</html>
"""


def format_model_card(metadata: dict[str, Any], selection_record: dict[str, Any] | None) -> str:
    """Render the model card (Markdown) from a run's metadata and the selection record."""
    lines = [
        "# Model card: secom-lstm",
        "",
        f"Generated by `python import_model.py --model-card` from the run that created model "
        f"`{metadata.get('model_tag', 'not stored')}` on {metadata['created_at']}. Do not edit the numbers by hand; "
        "run the command again.",
        "",
        "## Model",
        "",
        f"{metadata.get('training_description', '')}. Input: windows of {metadata['window_length']} consecutive "
        f"lots of the {metadata['n_readings']} raw readings; the preprocessor keeps {len(metadata['selected_features'])} "
        f"readings (parameters {metadata['preprocessor']['params']}). Output: the probability that the window's "
        f"last lot fails; a lot is flagged at probability >= {metadata['threshold']:.4f} "
        f"({metadata['threshold_rule']}).",
        "",
    ]
    lines += _card_data(metadata)
    lines += _card_metrics(metadata)
    if selection_record is not None:
        lines += _card_selection(selection_record)
    lines += _card_limits(metadata)
    return "\n".join(lines)


def _card_data(metadata: dict[str, Any]) -> list[str]:
    data = metadata["data"]
    lines = [
        "## Data",
        "",
        f"UCI SECOM (McCann and Johnston, 2008, CC BY 4.0): {data['n_rows']} lots in time order, "
        f"{data['n_failures']} failures; archive sha256 `{data['archive_sha256']}`.",
        "",
        "| period | rows | dates | windows | failures | failure rate |",
        "|---|---|---|---|---|---|",
    ]
    for name, period in metadata["periods"].items():
        rate = period["n_failures"] / period["n_windows"]
        lines.append(
            f"| {name} | {period['first_row']}-{period['last_row']} | {period['first_timestamp'][:10]} to "
            f"{period['last_timestamp'][:10]} | {period['n_windows']} | {period['n_failures']} | {rate:.3f} |"
        )
    by_month = data.get("by_month")
    if by_month:
        lines += ["", "Failures by calendar month (all lots):", "", "| month | lots | failures | failure rate |", "|---|---|---|---|"]
        for month, counts in by_month.items():
            rate = counts["n_failures"] / counts["n_rows"]
            lines.append(f"| {month} | {counts['n_rows']} | {counts['n_failures']} | {rate:.3f} |")
    return lines


def _card_metrics(metadata: dict[str, Any]) -> list[str]:
    test = metadata["metrics"]["test"]
    lines = [
        "",
        "## Protocol",
        "",
        metadata["protocol"],
        "",
        "## Test metrics with intervals",
        "",
        goal_statement(metadata),
        "",
        format_comparison_table(metadata, "test"),
        "",
        describe_bootstrap(metadata)
        + f" The test period has {test['n_failures']} failing windows, so one more or one fewer detected failure "
        f"moves recall by {1 / max(test['n_failures'], 1):.3f}.",
        "",
        "Baselines use the same split and the same fitted preprocessor, and see the window's last row:",
        "",
    ]
    for name, description, _ in model_evaluations(metadata)[1:]:
        lines.append(f"- `{name}`: {description}.")
    lines += [
        "",
        "## Validation metrics (thresholds were chosen on these windows)",
        "",
        format_comparison_table(metadata, "validation"),
    ]
    return lines


def _card_selection(selection_record: dict[str, Any]) -> list[str]:
    selected = selection_record["selected"]
    folds = ", ".join(f"rows {f['origin']}-{f['stop'] - 1}" for f in selection_record["folds"])
    return [
        "",
        "## Model selection",
        "",
        f"`{selection_record['command']}` ({selection_record['created_at']}) scored every variant by the "
        f"{selection_record['selection_metric']}. Each fold fits on all rows before its scoring block ({folds}); "
        f"the test period is never read. Seeds {selection_record['seeds']}; probabilities recorded after "
        f"{selection_record['epoch_checkpoints']} epochs. Each stage starts from the best variant so far. "
        "The table gives each variant's scores at its best epoch count.",
        "",
        *_selection_rows(selection_record),
        "",
        f"Chosen: {selected['variant']}, {selected['epochs']} epochs, "
        f"{selected['lstm']['n_seeds']} seed(s), mean rolling-origin ROC-AUC {selected['validation_roc_auc']:.3f}. "
        f"The search trained for {sum(v['seconds'] for v in selection_record['variants']) / 60:.0f} minutes.",
    ]


def _card_limits(metadata: dict[str, Any]) -> list[str]:
    test = metadata["metrics"]["test"]
    low, high = test["intervals"]["roc_auc"]
    by_month = metadata["data"].get("by_month") or {}
    rates = {month: c["n_failures"] / c["n_rows"] for month, c in by_month.items()}
    periods = metadata["periods"]
    lines = [
        "",
        "## Limits",
        "",
        f"- Few failures: the test period has {test['n_failures']} failing windows, and neighbouring windows share "
        f"rows, so the LSTM's test ROC-AUC interval is {high - low:.2f} wide ({low:.3f} to {high:.3f}). Models whose "
        "point estimates differ by less than that are not distinguished by this test period.",
    ]
    if rates:
        lowest, highest = min(rates, key=rates.get), max(rates, key=rates.get)
        lines.append(
            f"- Drift: the monthly failure rate ranges from {rates[lowest]:.3f} ({lowest}) to {rates[highest]:.3f} "
            f"({highest}). The validation period has {periods['validation']['n_failures']} failures in "
            f"{periods['validation']['n_windows']} windows and the test period {periods['test']['n_failures']} in "
            f"{periods['test']['n_windows']}, so a threshold tuned on one period flags a different share of lots in "
            "the next. Retrain and re-choose the threshold on recent lots before relying on the flags."
        )
    lines += [
        f"- Calibration: the LSTM's mean test probability is {test['mean_score']:.3f} against a failure rate of "
        f"{test['failure_rate']:.3f}. The probabilities are not calibrated (see the report's calibration curve), "
        "so read them as scores for ranking and thresholding, not as failure frequencies.",
        "- The windows are in row order of the archive's timestamps; gaps in time between lots are not modelled.",
        f"- Precision at the threshold on the test period is {test['precision']:.3f}: {test['false_positives']} of "
        f"{test['true_positives'] + test['false_positives']} flagged windows end at a lot that passed. Use the "
        "probability to rank lots for inspection rather than to stop the line on its own.",
        f"- Library versions of the run: {', '.join(f'{k} {v}' for k, v in metadata['libraries'].items())}.",
        "",
    ]
    return lines
