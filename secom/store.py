"""Save and load the LSTM, the preprocessor and the metadata as one BentoML model."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import bentoml
import numpy as np

from secom.errors import ModelLoadError
from secom.preprocessing import SecomPreprocessor

if TYPE_CHECKING:
    import keras

    from secom.model import WindowScorer

logger = logging.getLogger(__name__)

MODEL_NAME = "secom-lstm"
MODEL_TAG_ENV_VAR = "SECOM_MODEL_TAG"
DEFAULT_MODEL_TAG = f"{MODEL_NAME}:latest"
MODEL_FILE = "model.keras"
PREPROCESSOR_FILE = "preprocessor.json"
METADATA_FILE = "metadata.json"
REPORT_DIR = "report"


def configured_model_tag() -> str:
    return os.environ.get(MODEL_TAG_ENV_VAR) or DEFAULT_MODEL_TAG


def save_to_store(
    model: "keras.Model",
    preprocessor: SecomPreprocessor,
    metadata: dict[str, Any],
    *,
    report_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Register the model, the fitted preprocessor and the metadata under one new tag.

    ``report_dir``, when given, is copied into the model directory as ``report/``.

    Returns:
        The new model tag, for example ``secom-lstm:abc123``.
    """
    test = metadata["metrics"]["test"]
    summary = {
        "threshold": float(metadata["threshold"]),
        "window_length": int(metadata["window_length"]),
        "n_features": preprocessor.n_features_out,
        "test_roc_auc": float(test["roc_auc"]),
        "test_pr_auc": float(test["pr_auc"]),
        "test_failures": int(test["n_failures"]),
        "archive_sha256": metadata["data"]["archive_sha256"],
    }
    with bentoml.models.create(
        MODEL_NAME,
        labels={"framework": "keras", "task": "binary-classification", "data": "uci-secom"},
        metadata=summary,
    ) as bento_model:
        tag = str(bento_model.tag)
        model.save(bento_model.path_of(MODEL_FILE))
        preprocessor.save(bento_model.path_of(PREPROCESSOR_FILE))
        stored = {**metadata, "model_tag": tag}
        Path(bento_model.path_of(METADATA_FILE)).write_text(json.dumps(stored, indent=1))
        if report_dir is not None:
            shutil.copytree(report_dir, bento_model.path_of(REPORT_DIR))
    logger.info("Saved model %s to the BentoML model store", tag)
    return tag


@dataclass
class ServingBundle:
    """Everything needed to score raw rows: the fitted preprocessor, the compiled LSTM and the metadata.

    ``scorer`` is None in a bundle loaded without the network, as the API
    process loads it: that process then never imports TensorFlow.
    """

    tag: str
    preprocessor: SecomPreprocessor
    scorer: WindowScorer | None
    metadata: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def window_length(self) -> int:
        return int(self.metadata["window_length"])

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Score raw rows (n_rows, 590) offline: one probability per window ending at rows window_length-1 .. n_rows-1."""
        if self.scorer is None:
            raise ModelLoadError(f"Model {self.tag} was loaded without its network; load it with with_network=True to score.")
        return self.scorer(self.preprocessor.transform_windows(rows))


def load_from_directory(model_dir: str | os.PathLike[str], tag: str, *, with_network: bool = True) -> ServingBundle:
    """Load a stored model directory, failing with the name of any missing or invalid piece.

    Raises:
        ModelLoadError: a file is missing, unreadable or inconsistent with the others.
    """
    model_dir = Path(model_dir)
    for name in (MODEL_FILE, PREPROCESSOR_FILE, METADATA_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(
                f"Model {tag} at {model_dir} has no {name}; import it again with `python import_model.py`."
            )
    try:
        metadata = json.loads((model_dir / METADATA_FILE).read_text())
        preprocessor = SecomPreprocessor.load(model_dir / PREPROCESSOR_FILE)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"Model {tag} at {model_dir} could not be loaded: {exc}") from exc
    for key in ("threshold", "window_length", "feature_names", "metrics"):
        if key not in metadata:
            raise ModelLoadError(f"Model {tag}: {METADATA_FILE} has no {key!r}; import it again with `python import_model.py`.")
    if metadata["window_length"] != preprocessor.window_length:
        raise ModelLoadError(
            f"Model {tag}: metadata window_length {metadata['window_length']} differs from the "
            f"preprocessor's {preprocessor.window_length}."
        )

    scorer = None
    if with_network:
        scorer = _load_scorer(model_dir / MODEL_FILE, tag)
        expected = (preprocessor.window_length, preprocessor.n_features_out)
        if (scorer.window_length, scorer.n_features) != expected:
            raise ModelLoadError(
                f"Model {tag}: the network takes windows of shape {(scorer.window_length, scorer.n_features)} "
                f"but the preprocessor produces {expected}."
            )
    return ServingBundle(tag=tag, preprocessor=preprocessor, scorer=scorer, metadata=metadata)


def _load_scorer(path: Path, tag: str) -> WindowScorer:
    import keras

    from secom.model import WindowScorer

    try:
        # safe_mode rejects lambda layers and other arbitrary code in the archive.
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"Model {tag}: the network in {path} could not be loaded: {exc}") from exc
    return WindowScorer(model)


def load_from_store(tag: str | None = None, *, with_network: bool = True) -> ServingBundle:
    """Load a model from the local BentoML model store by tag (default ``SECOM_MODEL_TAG`` or secom-lstm:latest)."""
    tag = tag or configured_model_tag()
    try:
        bento_model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise ModelLoadError(
            f"Model {tag} is not in the BentoML model store; create it with `python import_model.py`."
        ) from exc
    return load_from_directory(bento_model.path, str(bento_model.tag), with_network=with_network)
