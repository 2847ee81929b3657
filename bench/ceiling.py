"""Measure the in-process ceiling: the bare compiled model with no HTTP.

Prints one JSON object: windows per second of ``WindowScorer`` on batches of
256 real windows, and the median latency of one window through the compiled
call and through ``keras.Model.predict``.

    python bench/ceiling.py --data /path/to/secom.zip --model-tag secom-lstm:latest
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from secom.data import load_secom  # noqa: E402
from secom.store import load_from_store  # noqa: E402

BATCH_WINDOWS = 256


def median_call_ms(call, argument, repeats: int) -> float:
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(argument)
        durations.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(durations)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="path of the UCI secom.zip archive")
    parser.add_argument("--model-tag", required=True, help="BentoML model tag")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the throughput measurement (default 5 s)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (default 0: TensorFlow's choice)")
    parser.add_argument(
        "--start-at",
        type=float,
        default=0.0,
        help="Unix time at which to start measuring, after warm-up, so parallel processes measure the same seconds",
    )
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    bundle = load_from_store(args.model_tag, with_network=True)
    assert bundle.scorer is not None
    windows = bundle.preprocessor.transform_windows(load_secom(args.data).readings)
    batch = np.ascontiguousarray(windows[:BATCH_WINDOWS])
    one = np.ascontiguousarray(windows[:1])

    for _ in range(5):
        bundle.scorer(batch)
        bundle.scorer(one)
        bundle.scorer.model.predict(one, verbose=0)
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))

    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        bundle.scorer(batch)
        calls += 1
    elapsed = time.perf_counter() - start

    result = {
        "batch_windows": BATCH_WINDOWS,
        "windows_per_second": calls * BATCH_WINDOWS / elapsed,
        "compiled_one_window_ms": median_call_ms(bundle.scorer, one, 200),
        "predict_one_window_ms": median_call_ms(lambda w: bundle.scorer.model.predict(w, verbose=0), one, 30),
        "n_features": int(windows.shape[2]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
