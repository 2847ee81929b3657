"""Serving helpers shared by the BentoML service and the offline pipeline."""

from __future__ import annotations

import logging
import os
from datetime import datetime

import numpy as np

from secom.schemas import PredictResponse, WindowPrediction
from secom.store import ServingBundle

logger = logging.getLogger(__name__)

THRESHOLD_ENV_VAR = "SECOM_THRESHOLD"


def threshold_override() -> float | None:
    """Return ``SECOM_THRESHOLD`` as a number, or None when it is unset.

    Raises:
        ValueError: ``SECOM_THRESHOLD`` is not a number in [0, 1].
    """
    raw = os.environ.get(THRESHOLD_ENV_VAR)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{THRESHOLD_ENV_VAR} must be a number in [0, 1], got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{THRESHOLD_ENV_VAR} must be in [0, 1], got {value}")
    return value


def configured_threshold(bundle: ServingBundle) -> float:
    """Return the default decision threshold: ``SECOM_THRESHOLD`` if set, else the model's.

    Raises:
        ValueError: ``SECOM_THRESHOLD`` is not a number in [0, 1].
    """
    value = threshold_override()
    if value is None:
        return bundle.threshold
    logger.info("Default threshold %.4f from %s overrides the model's %.4f", value, THRESHOLD_ENV_VAR, bundle.threshold)
    return value


def limit_tensorflow_threads(intra_op: int, inter_op: int) -> None:
    """Set TensorFlow's thread pools; takes effect only before the first TensorFlow operation in the process."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as exc:
        logger.warning("TensorFlow thread pools unchanged (%s): TensorFlow was initialized before this call", exc)
        return
    logger.info("TensorFlow uses %d intra-op and %d inter-op threads", intra_op, inter_op)


def build_response(
    bundle: ServingBundle,
    probabilities: np.ndarray,
    threshold: float,
    timestamps: list[datetime] | None,
) -> PredictResponse:
    """Shape the probabilities of windows ending at rows window_length-1 .. n-1 as the API response.

    Values are converted to plain Python types: a numpy scalar in a BentoML
    1.4 response fails serialization with HTTP 500.
    """
    first_end = bundle.window_length - 1
    predictions = [
        WindowPrediction(
            window_end_index=first_end + offset,
            timestamp=None if timestamps is None else timestamps[first_end + offset].isoformat(),
            probability=float(probability),
            is_anomaly=bool(probability >= threshold),
        )
        for offset, probability in enumerate(probabilities.tolist())
    ]
    return PredictResponse(
        model_tag=bundle.tag,
        threshold=float(threshold),
        feature_names=list(bundle.metadata["feature_names"]),
        predictions=predictions,
    )
