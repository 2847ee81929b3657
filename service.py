"""BentoML service that scores SECOM wafer lots with the registered LSTM.

One service, ``SecomLSTM``: each worker validates a request, preprocesses its
rows into windows and merges the windows of concurrent requests into one call
of the compiled network (``secom.batching.WindowBatcher``). ``POST /predict``
takes JSON rows; ``POST /predict_array`` takes the same rows as a .npy
upload, which skips JSON decoding for bulk scoring.

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

from secom.batching import WindowBatcher
from secom.errors import ModelLoadError
from secom.limits import BodySizeLimitMiddleware, configured_max_body_bytes
from secom.preprocessing import DEFAULT_WINDOW_LENGTH
from secom.schemas import PredictArrayRequest, PredictRequest, PredictResponse
from secom.serving import build_response, configured_threshold, limit_tensorflow_threads, threshold_override
from secom.store import ServingBundle, configured_model_tag, load_from_directory

logger = logging.getLogger("secom.service")
# BentoML's server logging passes only WARNING and above from loggers other
# than its own; model loading and shutdown lines are INFO.
logging.getLogger("secom").setLevel(logging.INFO)

MODEL_TAG = configured_model_tag()
# Checked here, at import, so that `bentoml serve` stops at once with the
# message; a worker failing in __init__ is restarted over and over instead.
threshold_override()
configured_max_body_bytes()
# Worker processes, each with its own copy of TensorFlow and the network
# (about 800 MB resident, shared libraries included) and one TensorFlow
# thread. Two match the deployment's 2-CPU limit; for another CPU count set
# BENTOML_CONFIG_OVERRIDES='{"services": {"secom-lstm": {"workers": N}}}'.
WORKERS = 2
# One intra-op thread per worker: the batcher runs one network call at a
# time per worker, and more threads than CPUs across workers only contend.
TENSORFLOW_THREADS = 1
# A request still queued for the network after this many seconds gets HTTP
# 503. bench/run.py measured a p99 below 2 s for one-window requests from 64
# concurrent clients on 2 shared CPUs, so 10 s sheds only under real overload.
MAX_QUEUE_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 60


def _load(bento_model: bentoml.Model) -> ServingBundle:
    try:
        bundle = load_from_directory(bento_model.path, str(bento_model.tag), with_network=True)
    except ModelLoadError:
        logger.exception("Failed to load model %s", bento_model.tag)
        raise
    return bundle


@bentoml.service(
    name="secom-lstm",
    workers=WORKERS,
    traffic={"timeout": REQUEST_TIMEOUT_SECONDS},
    labels={"owner": "secom", "task": "wafer-lot-failure-prediction"},
)
class SecomLSTM:
    """Failure probabilities for windows of 10 consecutive SECOM wafer lots."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        # Created here, not at import: BentoML sets the Prometheus multiprocess
        # directory in the worker after importing this module.
        import prometheus_client

        self.windows_per_call = prometheus_client.Histogram(
            "secom_batch_windows",
            "Windows scored per call of the LSTM; more than one request's windows means requests were batched.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        limit_tensorflow_threads(TENSORFLOW_THREADS, TENSORFLOW_THREADS)
        self.bundle = _load(self.bento_model)
        if self.bundle.window_length != DEFAULT_WINDOW_LENGTH:
            raise ModelLoadError(
                f"Model {self.bundle.tag} uses windows of {self.bundle.window_length} rows, but this service "
                f"accepts windows of {DEFAULT_WINDOW_LENGTH}; import a model with window length {DEFAULT_WINDOW_LENGTH}."
            )
        self.threshold = configured_threshold(self.bundle)
        scorer = self.bundle.scorer
        assert scorer is not None
        # Compile every batch size before reporting ready, so the first real
        # requests are not slowed or shed while XLA builds its programs.
        scorer.warm_up()
        self.batcher = WindowBatcher(
            scorer,
            max_batch_windows=scorer.max_batch_windows,
            max_queue_seconds=MAX_QUEUE_SECONDS,
            observe_batch=self.windows_per_call.observe,
        )
        logger.info(
            "Service loaded model %s: threshold %.4f, %d features, window length %d, body limit %d bytes",
            self.bundle.tag,
            self.threshold,
            self.bundle.preprocessor.n_features_out,
            self.bundle.window_length,
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
        return await self._predict_rows(rows, threshold, timestamps)

    @bentoml.api(route="/predict_array", input_spec=PredictArrayRequest)
    async def predict_array(
        self,
        readings: np.ndarray,
        threshold: float | None = None,
        timestamps: list[datetime] | None = None,
    ) -> PredictResponse:
        """Like /predict, with the rows uploaded as a .npy file of shape (n_rows, 590), NaN for a missing reading.

        ``PredictArrayRequest`` has read and validated the file into float64 rows before this runs.
        """
        return await self._predict_rows(readings, threshold, timestamps)

    async def _predict_rows(
        self, rows: np.ndarray, threshold: float | None, timestamps: list[datetime] | None
    ) -> PredictResponse:
        windows = self.bundle.preprocessor.transform_windows(rows)
        probabilities = await self.batcher.score(windows)
        applied = self.threshold if threshold is None else threshold
        return build_response(self.bundle, probabilities, applied, timestamps)

    @bentoml.api(route="/metadata")
    def metadata(self) -> dict[str, Any]:
        """Return what import_model.py recorded: metrics, threshold, periods, features, library versions."""
        return self.metadata_document()

    def metadata_document(self) -> dict[str, Any]:
        return {**self.bundle.metadata, "model_tag": self.bundle.tag, "threshold_in_use": self.threshold}

    @bentoml.on_shutdown
    def _stop(self) -> None:
        logger.info("Service stopping; model %s", self.bundle.tag)
        self.batcher.shutdown()


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
