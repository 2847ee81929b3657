"""BentoML service that scores SECOM wafer lots with the registered LSTM.

Two services: ``SecomLSTM`` (HTTP API: validation, preprocessing, response)
and ``LSTMRunner`` (the network behind BentoML's adaptive batching). Windows
from concurrent requests are merged into one call of the compiled network.

    bentoml serve            # http://127.0.0.1:3000, model from $SECOM_MODEL_TAG or secom-lstm:latest
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from secom.errors import ModelLoadError
from secom.limits import BodySizeLimitMiddleware, configured_max_body_bytes
from secom.preprocessing import DEFAULT_WINDOW_LENGTH
from secom.schemas import PredictRequest, PredictResponse
from secom.serving import build_response, configured_threshold, warm_up_windows
from secom.store import ServingBundle, configured_model_tag, load_from_directory

logger = logging.getLogger("secom.service")
# BentoML's server logging passes only WARNING and above from loggers other
# than its own; model loading and shutdown lines are INFO.
logging.getLogger("secom").setLevel(logging.INFO)

MODEL_TAG = configured_model_tag()
# Largest number of windows in one call of the network. A bulk request with
# more windows is split across calls by BentoML's dispatcher.
MAX_BATCH_WINDOWS = 1024
# The dispatcher answers 503 when it predicts a request will wait longer than
# this; bulk requests of ~1000 windows take tens of milliseconds, so 10 s only
# sheds under real overload.
MAX_LATENCY_MS = 10_000
REQUEST_TIMEOUT_SECONDS = 60


def _load(bento_model: bentoml.Model, *, with_network: bool) -> ServingBundle:
    try:
        bundle = load_from_directory(bento_model.path, str(bento_model.tag), with_network=with_network)
    except ModelLoadError:
        logger.exception("Failed to load model %s", bento_model.tag)
        raise
    return bundle


@bentoml.service(
    name="secom-lstm-runner",
    workers=1,
    traffic={"timeout": REQUEST_TIMEOUT_SECONDS},
)
class LSTMRunner:
    """The LSTM behind adaptive batching: windows (N, 10, n_features) in, probabilities (N,) out."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.bundle = _load(self.bento_model, with_network=True)
        assert self.bundle.scorer is not None
        # Trace the compiled call before reporting ready, so the first real
        # requests are not slowed or shed while TensorFlow builds the graph.
        for batch_size in (1, MAX_BATCH_WINDOWS):
            self.bundle.scorer(warm_up_windows(self.bundle, batch_size))
        logger.info(
            "Runner loaded model %s: %d features, window length %d",
            self.bundle.tag,
            self.bundle.preprocessor.n_features_out,
            self.bundle.window_length,
        )

    @bentoml.api(batchable=True, batch_dim=(0, 0), max_batch_size=MAX_BATCH_WINDOWS, max_latency_ms=MAX_LATENCY_MS)
    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Score a batch of preprocessed windows, one probability per window."""
        assert self.bundle.scorer is not None
        return self.bundle.scorer(windows)


@bentoml.service(
    name="secom-lstm",
    workers=1,
    traffic={"timeout": REQUEST_TIMEOUT_SECONDS},
    labels={"owner": "secom", "task": "wafer-lot-failure-prediction"},
)
class SecomLSTM:
    """Failure probabilities for windows of 10 consecutive SECOM wafer lots."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)
    runner = bentoml.depends(LSTMRunner)

    def __init__(self) -> None:
        self.bundle = _load(self.bento_model, with_network=False)
        if self.bundle.window_length != DEFAULT_WINDOW_LENGTH:
            raise ModelLoadError(
                f"Model {self.bundle.tag} uses windows of {self.bundle.window_length} rows, but this service "
                f"accepts windows of {DEFAULT_WINDOW_LENGTH}; import a model with window length {DEFAULT_WINDOW_LENGTH}."
            )
        self.threshold = configured_threshold(self.bundle)
        logger.info(
            "Service loaded model %s: threshold %.4f, %d features, body limit %d bytes",
            self.bundle.tag,
            self.threshold,
            self.bundle.preprocessor.n_features_out,
            configured_max_body_bytes(),
        )

    @bentoml.api(route="/predict", input_spec=PredictRequest)
    async def predict(
        self,
        instances: list[list[float | None]],
        threshold: float | None = None,
        timestamps: list[datetime] | None = None,
    ) -> PredictResponse:
        """Failure probability of every window of 10 consecutive rows, ending at rows 9 .. n-1.

        ``PredictRequest`` has validated every argument before this runs.
        """
        # None becomes NaN, the preprocessor's marker for a missing reading.
        rows = np.asarray(instances, dtype=np.float64)
        windows = self.bundle.preprocessor.transform_windows(rows)
        probabilities = await self._score(windows)
        applied = self.threshold if threshold is None else threshold
        return build_response(self.bundle, probabilities, applied, timestamps)

    async def _score(self, windows: np.ndarray) -> np.ndarray:
        # In `bentoml serve` the runner is a remote proxy and `to_async` keeps the
        # event loop free; in-process (tests calling the class) it is the instance.
        runner = self.runner
        if hasattr(runner, "to_async"):
            return np.asarray(await runner.to_async.score_windows(windows))
        return runner.score_windows(windows)

    @bentoml.api(route="/metadata")
    def metadata(self) -> dict[str, Any]:
        """What import_model.py recorded: metrics, threshold, periods, features, library versions."""
        return self.metadata_document()

    def metadata_document(self) -> dict[str, Any]:
        return {**self.bundle.metadata, "model_tag": self.bundle.tag, "threshold_in_use": self.threshold}

    @bentoml.on_shutdown
    def _log_shutdown(self) -> None:
        logger.info("Service stopping; model %s", self.bundle.tag)


def _health(request: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    return JSONResponse({"status": "ok", "model_tag": service.bundle.tag, "threshold": service.threshold})


async def _get_metadata(request: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    return JSONResponse(service.metadata_document())


# GET routes beside BentoML's POST APIs; the new SDK's @bentoml.api serves POST only.
_get_routes = Starlette(routes=[Route("/health", _health), Route("/metadata", _get_metadata, methods=["GET"])])
SecomLSTM.mount_asgi_app(_get_routes, path="/")
SecomLSTM.add_asgi_middleware(BodySizeLimitMiddleware)
