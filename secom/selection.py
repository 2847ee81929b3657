"""Choose the LSTM variant by rolling-origin validation over the train and validation periods.

    python -m secom.selection --data /path/to/secom.zip

Each fold fits the preprocessor and the networks on rows before its origin and
scores the block of rows after it. No fold reads the test period. Every
variant is trained with several seeds, and its probabilities are recorded at a
few epoch counts, so one run scores each variant as a single network (mean
over seeds) and as a seed ensemble (mean of the seeds' probabilities), at each
epoch count. The search is greedy in stages: network regularization and size,
then the preprocessor's feature filters, then the loss, then the learning
rate. Each stage starts from the best variant so far. The chosen variant is written to
``secom/selected_config.json``, which ``import_model.py`` reads, and every
variant tried is written to ``docs/model-selection.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from secom.data import DATA_ENV_VAR, SecomData, load_secom
from secom.errors import DataError
from secom.evaluation import DEFAULT_FRACTIONS, chronological_split
from secom.model import DEFAULT_BATCH_SIZE, LSTMConfig, balanced_class_weight, build_lstm
from secom.preprocessing import DEFAULT_WINDOW_LENGTH, SecomPreprocessor, make_windows

logger = logging.getLogger(__name__)

SELECTED_CONFIG_PATH = Path(__file__).with_name("selected_config.json")
SELECTION_RECORD_PATH = Path(__file__).resolve().parent.parent / "docs" / "model-selection.json"
# With checkpoints at 2 to 20 epochs, the first two variants tried scored
# best at 2 epochs, the earliest checkpoint, so probabilities are recorded
# from the first epoch up to 12.
EPOCH_CHECKPOINTS = (1, 2, 3, 5, 8, 12)
DEFAULT_SEEDS = (101, 202, 303)
DEFAULT_N_FOLDS = 4
SELECTION_METRIC = "mean over folds of the ROC-AUC on the fold's scoring block"


@dataclass(frozen=True)
class Fold:
    """Fit on rows 0 .. origin - 1; score the windows ending at rows origin .. stop - 1."""

    origin: int
    stop: int


@dataclass(frozen=True)
class Variant:
    """One candidate: preprocessor parameters and an LSTM config (its ``n_seeds`` is unused here)."""

    name: str
    preprocessor: dict[str, Any] = field(default_factory=dict)
    lstm: LSTMConfig = field(default_factory=LSTMConfig)


def rolling_origin_folds(development_stop: int, horizon: int, step: int, n_folds: int) -> list[Fold]:
    """Build expanding-window folds whose scoring blocks end at ``development_stop``.

    The last fold scores rows ``development_stop - horizon`` .. ``development_stop - 1``;
    each earlier fold moves the origin back by ``step`` rows, so the blocks
    overlap when ``step < horizon``.
    """
    folds = []
    for k in range(n_folds - 1, -1, -1):
        origin = development_stop - horizon - k * step
        if origin <= DEFAULT_WINDOW_LENGTH:
            raise ValueError(f"fold {n_folds - k} would have origin {origin}; use fewer folds or a smaller step")
        folds.append(Fold(origin=origin, stop=origin + horizon))
    return folds


def default_folds(n_rows: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> list[Fold]:
    """Four folds over the train and validation periods, each scoring a validation-length block.

    The origin moves by half a block, so the last fold is exactly the
    train/validation split that ``import_model.py`` uses.
    """
    _, validation, _ = chronological_split(n_rows, fractions)
    horizon = validation.stop - validation.start
    return rolling_origin_folds(validation.stop, horizon, horizon // 2, DEFAULT_N_FOLDS)


class _ProbabilityRecorder(keras.callbacks.Callback):
    """Store the model's probabilities on fixed windows at chosen epochs, without changing training."""

    def __init__(self, windows: np.ndarray, epochs: tuple[int, ...]):
        super().__init__()
        self.windows = windows
        self.epochs = set(epochs)
        self.probabilities: dict[int, np.ndarray] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 in self.epochs:
            self.probabilities[epoch + 1] = np.asarray(self.model(self.windows, training=False)).reshape(-1)


def _fold_windows(data: SecomData, fold: Fold, preprocessor_params: dict[str, Any], window_length: int):
    rows = data.readings[: fold.stop]
    preprocessor = SecomPreprocessor(window_length=window_length, **preprocessor_params).fit(rows[: fold.origin])
    windows = make_windows(preprocessor.transform(rows), window_length)
    labels = data.labels[window_length - 1 : fold.stop]
    split = fold.origin - (window_length - 1)
    return windows[:split], labels[:split], windows[split:], labels[split:], preprocessor.n_features_out


def score_variant(
    data: SecomData,
    variant: Variant,
    folds: list[Fold],
    *,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
    window_length: int = DEFAULT_WINDOW_LENGTH,
) -> dict[str, Any]:
    """Train ``variant`` on every fold with every seed and score it at each checkpoint epoch.

    Returns:
        A record with per-fold ROC-AUC and PR-AUC for the single network
        (mean over seeds) and for the seed ensemble, at each epoch in
        ``EPOCH_CHECKPOINTS``, and their means over folds.
    """
    started = time.monotonic()
    per_fold = []
    for fold in folds:
        x_fit, y_fit, x_score, y_score, n_features = _fold_windows(data, fold, variant.preprocessor, window_length)
        by_seed = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = build_lstm(window_length, n_features, config=variant.lstm)
            recorder = _ProbabilityRecorder(x_score, EPOCH_CHECKPOINTS)
            class_weight = balanced_class_weight(y_fit) if variant.lstm.loss == "class_weight" else None
            model.fit(
                x_fit,
                y_fit,
                epochs=max(EPOCH_CHECKPOINTS),
                batch_size=DEFAULT_BATCH_SIZE,
                class_weight=class_weight,
                callbacks=[recorder],
                shuffle=True,
                verbose=0,
            )
            by_seed.append(recorder.probabilities)
        fold_record: dict[str, Any] = {
            "origin": fold.origin,
            "stop": fold.stop,
            "n_features": n_features,
            "n_score_windows": int(len(y_score)),
            "n_score_failures": int(y_score.sum()),
        }
        for epochs in EPOCH_CHECKPOINTS:
            singles = [probabilities[epochs] for probabilities in by_seed]
            ensemble = np.mean(singles, axis=0)
            fold_record[str(epochs)] = {
                "single_roc_auc": float(np.mean([roc_auc_score(y_score, p) for p in singles])),
                "single_pr_auc": float(np.mean([average_precision_score(y_score, p) for p in singles])),
                "ensemble_roc_auc": float(roc_auc_score(y_score, ensemble)),
                "ensemble_pr_auc": float(average_precision_score(y_score, ensemble)),
            }
        per_fold.append(fold_record)

    summary = {}
    for epochs in EPOCH_CHECKPOINTS:
        summary[str(epochs)] = {
            key: float(np.mean([fold_record[str(epochs)][key] for fold_record in per_fold]))
            for key in ("single_roc_auc", "single_pr_auc", "ensemble_roc_auc", "ensemble_pr_auc")
        }
    best_epochs, best_kind, best_score = _best_choice(summary)
    record = {
        "name": variant.name,
        "preprocessor": variant.preprocessor,
        "lstm": asdict(variant.lstm),
        "seeds": list(seeds),
        "by_epochs": summary,
        "folds": per_fold,
        "best": {"epochs": best_epochs, "kind": best_kind, "roc_auc": best_score},
        "seconds": round(time.monotonic() - started, 1),
    }
    logger.info(
        "Variant %s: best mean ROC-AUC %.4f (%s, %d epochs) in %.0f s",
        variant.name,
        best_score,
        best_kind,
        best_epochs,
        record["seconds"],
    )
    return record


def _best_choice(summary: dict[str, dict[str, float]]) -> tuple[int, str, float]:
    choices = [
        (values[f"{kind}_roc_auc"], int(epochs), kind)
        for epochs, values in summary.items()
        for kind in ("single", "ensemble")
    ]
    score, epochs, kind = max(choices)
    return epochs, kind, score


def staged_variants(best: Variant, stage: str) -> list[Variant]:
    """Return the candidates of one search stage, each a change of ``best``.

    NOTE: one change at a time from the best so far, so interactions (for
    example dropout with a smaller network) are tried only along that path.
    """
    if stage == "network":
        return [
            replace(best, name="dropout 0.2, recurrent dropout 0.2", lstm=replace(best.lstm, dropout=0.2, recurrent_dropout=0.2)),
            replace(best, name="dropout 0.4", lstm=replace(best.lstm, dropout=0.4)),
            replace(best, name="L2 1e-3", lstm=replace(best.lstm, l2=1e-3)),
            replace(best, name="16 units", lstm=replace(best.lstm, units=16)),
        ]
    if stage == "preprocessor":
        return [
            replace(best, name=f"{best.name}; correlation threshold 0.8", preprocessor={**best.preprocessor, "correlation_threshold": 0.8}),
            replace(best, name=f"{best.name}; correlation threshold 0.7", preprocessor={**best.preprocessor, "correlation_threshold": 0.7}),
            replace(best, name=f"{best.name}; variance threshold 1e-3", preprocessor={**best.preprocessor, "variance_threshold": 1e-3}),
            replace(best, name=f"{best.name}; max missing fraction 0.2", preprocessor={**best.preprocessor, "max_missing_fraction": 0.2}),
        ]
    if stage == "loss":
        return [
            replace(best, name=f"{best.name}; focal loss gamma 2", lstm=replace(best.lstm, loss="focal", focal_gamma=2.0)),
        ]
    if stage == "optimizer":
        return [
            replace(best, name=f"{best.name}; learning rate 3e-4", lstm=replace(best.lstm, learning_rate=3e-4)),
        ]
    raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


STAGES = ("network", "preprocessor", "loss", "optimizer")


def run_selection(data: SecomData, *, seeds: tuple[int, ...] = DEFAULT_SEEDS) -> dict[str, Any]:
    """Run the staged search and return the record of every variant and the chosen one."""
    folds = default_folds(data.n_rows)
    logger.info("Rolling-origin folds (origin, stop): %s", [(f.origin, f.stop) for f in folds])
    records = []
    best = Variant(name="50 units, no dropout, class weights")
    best_record = score_variant(data, best, folds, seeds=seeds)
    best_record["stage"] = "start"
    records.append(best_record)
    for stage in STAGES:
        for candidate in staged_variants(best, stage):
            record = score_variant(data, candidate, folds, seeds=seeds)
            record["stage"] = stage
            records.append(record)
            if record["best"]["roc_auc"] > best_record["best"]["roc_auc"]:
                best, best_record = candidate, record
        logger.info("After stage %s the best variant is %s", stage, best.name)

    choice = best_record["best"]
    n_seeds = len(seeds) if choice["kind"] == "ensemble" else 1
    selected = {
        "variant": best.name,
        "preprocessor": best.preprocessor,
        "lstm": asdict(replace(best.lstm, n_seeds=n_seeds)),
        "epochs": choice["epochs"],
        "validation_roc_auc": choice["roc_auc"],
        "selection_metric": SELECTION_METRIC,
    }
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m secom.selection",
        "archive_sha256": data.sha256,
        "folds": [asdict(f) for f in folds],
        "seeds": list(seeds),
        "epoch_checkpoints": list(EPOCH_CHECKPOINTS),
        "selection_metric": SELECTION_METRIC,
        "variants": records,
        "selected": selected,
    }


def load_selected_config(path: Path = SELECTED_CONFIG_PATH) -> dict[str, Any] | None:
    """Read the chosen variant written by ``run_selection``, or None when there is no such file.

    Raises:
        ValueError: the file exists but lacks a key or has an invalid LSTM config.
    """
    if not path.is_file():
        return None
    selected = json.loads(path.read_text())
    for key in ("preprocessor", "lstm", "epochs"):
        if key not in selected:
            raise ValueError(f"{path} has no {key!r}; run `python -m secom.selection` to write it again")
    selected["lstm"] = LSTMConfig.from_dict(selected["lstm"])
    return selected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Choose the LSTM variant by rolling-origin validation (test period unread).")
    parser.add_argument("--data", help=f"path of the UCI secom.zip archive (default: ${DATA_ENV_VAR}, then the cache)")
    parser.add_argument("--record", type=Path, default=SELECTION_RECORD_PATH, help="where to write every variant's scores (JSON)")
    parser.add_argument("--output", type=Path, default=SELECTED_CONFIG_PATH, help="where to write the chosen variant (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        data = load_secom(args.data)
    except DataError as exc:
        logger.error("%s", exc)
        return 2

    record = run_selection(data)
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(record, indent=1) + "\n")
    args.output.write_text(json.dumps(record["selected"], indent=1) + "\n")
    print(f"{'variant':<70} {'best mean ROC-AUC':>18}  choice")
    for variant in record["variants"]:
        best = variant["best"]
        print(f"{variant['name']:<70} {best['roc_auc']:>18.4f}  {best['kind']}, {best['epochs']} epochs")
    print(f"Chosen: {record['selected']['variant']} -> {args.output}; all variants -> {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
