"""Train the SECOM LSTM on a time-ordered split, evaluate it, and register it in the BentoML model store.

    python import_model.py --data ../shared/data/secom.zip

Prints the new model tag and the test-period metrics.
"""

from __future__ import annotations

import argparse
import logging
import sys

from secom.data import DATA_ENV_VAR, load_secom
from secom.errors import DataError
from secom.model import DEFAULT_EPOCHS
from secom.report import format_metrics_table
from secom.store import MODEL_NAME, save_to_store
from secom.training import train_and_evaluate

logger = logging.getLogger("import_model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        help=f"path of the UCI secom.zip archive (default: ${DATA_ENV_VAR}, then the local cache, then a download from UCI)",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"maximum training epochs (default {DEFAULT_EPOCHS}; early stopping ends sooner)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for weight initialisation and shuffling (default 42)")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help=f"do nothing when the model store already has a {MODEL_NAME} model",
    )
    parser.add_argument("--quiet", action="store_true", help="do not show per-epoch training progress")
    return parser.parse_args(argv)


def model_in_store() -> str | None:
    import bentoml

    models = bentoml.models.list(MODEL_NAME)
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

    result = train_and_evaluate(data, seed=args.seed, epochs=args.epochs, verbose=0 if args.quiet else 2)
    tag = save_to_store(result.model, result.preprocessor, result.metadata)

    print()
    print(format_metrics_table(result.metadata))
    print()
    print(f"Model tag: {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
