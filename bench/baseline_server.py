"""The design the BentoML service replaces, served for comparison: FastAPI, one
uvicorn worker, and ``keras.Model.predict`` on every request.

It loads the same registered model from the BentoML model store (network,
preprocessor, metadata) and serves the same JSON contract on ``POST /predict``.
Request validation reuses ``secom.schemas.PredictRequest``; FastAPI's 422 is
mapped to the service's 400 error shape.

    python bench/baseline_server.py --port 3100 --model-tag secom-lstm:latest
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bentoml  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from secom.schemas import PredictRequest, PredictResponse  # noqa: E402
from secom.serving import build_response  # noqa: E402
from secom.store import MODEL_FILE, configured_model_tag, load_from_directory  # noqa: E402

logger = logging.getLogger("bench.baseline")


def create_app(model_tag: str) -> FastAPI:
    """Build the FastAPI app around the model stored under ``model_tag``."""
    bento_model = bentoml.models.get(model_tag)
    bundle = load_from_directory(bento_model.path, str(bento_model.tag), with_network=False)
    model = keras.models.load_model(bento_model.path_of(MODEL_FILE), compile=False, safe_mode=True)
    logger.info("Baseline loaded model %s", bundle.tag)

    app = FastAPI(title="secom baseline (keras.Model.predict per request)")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{key: error[key] for key in ("type", "loc", "msg") if key in error} for error in exc.errors()]
        return JSONResponse({"error": f"{len(errors)} validation error for PredictRequest", "detail": errors}, 400)

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ok"}

    # A sync handler: FastAPI runs it in its thread pool, as the replaced service did.
    @app.post("/predict")
    def predict(request: PredictRequest) -> PredictResponse:
        rows = np.asarray(request.instances, dtype=np.float64)
        windows = bundle.preprocessor.transform_windows(rows)
        probabilities = model.predict(windows, verbose=0).reshape(-1).astype(np.float64)
        threshold = bundle.threshold if request.threshold is None else request.threshold
        return build_response(bundle, probabilities, threshold, request.timestamps)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the FastAPI baseline on a loopback port.")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--model-tag", default=configured_model_tag(), help="BentoML model tag (default: $SECOM_MODEL_TAG or secom-lstm:latest)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn's defaults (access log on), as BentoML's defaults in the service under test.
    uvicorn.run(create_app(args.model_tag), host="127.0.0.1", port=args.port, workers=1)


if __name__ == "__main__":
    main()
