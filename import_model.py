"""Train the SECOM LSTM on a time-ordered split, evaluate it against baselines, and register it in the BentoML model store.

    python import_model.py --data /path/to/secom.zip
    python import_model.py --data /path/to/secom.zip --model-card docs/model-card.md
    python import_model.py --data /path/to/secom.zip --select

The network is the variant in secom/selected_config.json, chosen by
``--select`` (rolling-origin validation: about 19 minutes on 2 shared cores).
Prints the test metrics of the LSTM and the baselines with confidence
intervals, the report's path and the new model tag.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from secom.data import DATA_ENV_VAR, load_secom
from secom.errors import DataError
from secom.evaluation import DEFAULT_BLOCK_LENGTH, DEFAULT_N_RESAMPLES
from secom.report import (
    describe_bootstrap,
    format_comparison_table,
    format_metrics_table,
    format_model_card,
    goal_statement,
    write_report,
)
from secom.selection import SELECTED_CONFIG_PATH, SELECTION_RECORD_PATH, load_selected_config
from secom.store import MODEL_NAME, REPORT_DIR, save_to_store
from secom.training import train_and_evaluate

logger = logging.getLogger("import_model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        help=f"path of the UCI secom.zip archive (default: ${DATA_ENV_VAR}, then the local cache, then a download from UCI)",
    )

    parser.add_argument(
        "--epochs",
        type=int,
        help="training epochs (default: the selected variant's fixed count; without a selected variant, "
        "at most 60 with early stopping)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed for weights, shuffling and the bootstrap (default 42)")
    parser.add_argument(
        "--config",
        type=Path,
        default=SELECTED_CONFIG_PATH,
        help=f"selected variant to train (default {SELECTED_CONFIG_PATH.name} in the secom package; "
        "a missing file means the default LSTM)",
    )
    parser.add_argument(
        "--select",
        action="store_true",
        help="first run the model selection (python -m secom.selection), write the chosen variant to --config, then train it",
    )

    parser.add_argument(
        "--n-resamples",
        type=int,
        default=DEFAULT_N_RESAMPLES,
        help=f"bootstrap resamples for the test intervals (default {DEFAULT_N_RESAMPLES})",
    )
    parser.add_argument(
        "--block-length",
        type=int,
        default=DEFAULT_BLOCK_LENGTH,
        help=f"consecutive windows per bootstrap block (default {DEFAULT_BLOCK_LENGTH})",
    )

    parser.add_argument("--model-card", type=Path, help="also write the model card (Markdown) to this path")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help=f"do nothing when the model store already has a {MODEL_NAME} model",
    )
    parser.add_argument("--quiet", action="store_true", help="do not show per-epoch training progress")
    return parser.parse_args(argv)


def model_in_store() -> str | None:
    import bentoml

    try:
        models = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        # bentoml 1.4.40 raises instead of returning [] when no model has this name.
        return None
    return str(max(models, key=lambda m: m.creation_time).tag) if models else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.if_missing and (existing := model_in_store()):
        print(f"Model store already has {existing}; not training (drop --if-missing to train a new one).")
        return 0

    try:
        data = load_secom(args.data)
    except DataError as exc:
        logger.error("%s", exc)
        return 2

    if args.select:
        from secom.selection import run_selection

        record = run_selection(data)
        SELECTION_RECORD_PATH.write_text(json.dumps(record, indent=1) + "\n")
        args.config.write_text(json.dumps(record["selected"], indent=1) + "\n")
        logger.info("Wrote the selection record %s and the chosen variant %s", SELECTION_RECORD_PATH, args.config)

    try:
        selected = load_selected_config(args.config)
    except ValueError as exc:
        logger.error("Invalid selected variant: %s", exc)
        return 2
    if selected is None:
        logger.warning("No selected variant at %s; training the default LSTM with early stopping", args.config)

    result = train_and_evaluate(
        data,
        seed=args.seed,
        epochs=args.epochs,
        selected=selected,
        n_resamples=args.n_resamples,
        block_length=args.block_length,
        verbose=0 if args.quiet else 2,
    )
    with tempfile.TemporaryDirectory(prefix="secom-report-") as scratch:
        write_report(result, Path(scratch))
        tag = save_to_store(result.model, result.preprocessor, result.metadata, report_dir=scratch)
    result.metadata["model_tag"] = tag

    import bentoml

    report_path = Path(bentoml.models.get(tag).path) / REPORT_DIR / "index.html"

    print()
    print("LSTM:")
    print(format_metrics_table(result.metadata))
    print()
    print(f"LSTM and baselines, test period, {result.metadata['metrics']['test']['n_failures']} failing windows:")
    print(format_comparison_table(result.metadata, "test"))
    print(describe_bootstrap(result.metadata))
    print(goal_statement(result.metadata))
    print()
    print(f"Report: {report_path}")
    if args.model_card:
        record = json.loads(SELECTION_RECORD_PATH.read_text()) if SELECTION_RECORD_PATH.is_file() else None
        args.model_card.write_text(format_model_card(result.metadata, record))
        print(f"Model card: {args.model_card}")
    print(f"Model tag: {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
