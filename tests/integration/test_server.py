"""A real `bentoml serve` on a loopback port, called with bentoml.SyncHTTPClient and plain HTTP."""

from __future__ import annotations

import io
import json
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest

from secom.limits import DEFAULT_MAX_BODY_BYTES
from secom.store import load_from_store
from tests.helpers import ImportedModel, ServerProcess, as_json_rows, post_json, read_archive_rows

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def rows(archive_path: Path) -> np.ndarray:
    return read_archive_rows(archive_path)


@pytest.fixture(scope="module")
def offline_probabilities(imported_model: ImportedModel, rows: np.ndarray):
    """Score row slices with the offline pipeline: the stored preprocessor and network, no server."""
    bundle = load_from_store(imported_model.tag)
    return lambda start, stop: bundle.predict_proba(rows[start:stop])


@pytest.fixture(scope="module")
def client(server: ServerProcess):
    with bentoml.SyncHTTPClient(server.url, timeout=120) as client:
        yield client


def _expect_400(server: ServerProcess, body: object = None, *, raw: bytes | None = None) -> dict:
    status, payload = post_json(f"{server.url}/predict", body, raw=raw)
    assert status == 400, payload
    assert set(payload) >= {"error", "detail"}
    assert isinstance(payload["detail"], list)
    assert payload["detail"][0]["msg"]
    return payload["detail"][0]


def test_ten_rows_one_prediction(client, rows, imported_model: ImportedModel):
    response = client.predict(instances=as_json_rows(rows[:10]))
    assert response["model_tag"] == imported_model.tag
    assert len(response["predictions"]) == 1
    prediction = response["predictions"][0]
    assert prediction["window_end_index"] == 9
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["is_anomaly"] == (prediction["probability"] >= response["threshold"])
    assert response["feature_names"] == [str(i) for i in range(590)]


def test_twenty_five_rows_sixteen_predictions(client, rows):
    response = client.predict(instances=as_json_rows(rows[100:125]))
    indices = [p["window_end_index"] for p in response["predictions"]]
    assert indices == list(range(9, 25))


def test_nulls_accepted(client, rows):
    json_rows = as_json_rows(rows[:10])
    assert any(value is None for value in json_rows[0]), "the first SECOM rows have missing readings"
    json_rows[9] = [None] * 590
    response = client.predict(instances=json_rows)
    assert len(response["predictions"]) == 1


def test_probabilities_match_offline(client, rows, offline_probabilities):
    response = client.predict(instances=as_json_rows(rows[300:340]))
    served = np.array([p["probability"] for p in response["predictions"]])
    np.testing.assert_allclose(served, offline_probabilities(300, 340), atol=1e-5, rtol=0)


def test_threshold_override(client, rows):
    low = client.predict(instances=as_json_rows(rows[:20]), threshold=0.0)
    assert low["threshold"] == 0.0
    assert all(p["is_anomaly"] for p in low["predictions"])
    high = client.predict(instances=as_json_rows(rows[:20]), threshold=1.0)
    assert high["threshold"] == 1.0
    assert all(p["is_anomaly"] == (p["probability"] >= 1.0) for p in high["predictions"])


def test_default_threshold_from_model(client, rows, imported_model: ImportedModel):
    stored = json.loads(Path(bentoml.models.get(imported_model.tag).path_of("metadata.json")).read_text())
    response = client.predict(instances=as_json_rows(rows[:10]))
    assert response["threshold"] == pytest.approx(stored["threshold"])


def test_timestamps_echoed(client, rows):
    stamps = ["2008-07-19T11:55:00"] * 5 + [f"2008-07-19T12:0{i}:00" for i in range(7)]
    response = client.predict(instances=as_json_rows(rows[:12]), timestamps=stamps)
    assert [p["timestamp"] for p in response["predictions"]] == stamps[9:]


def test_whole_data_set_one_request(server: ServerProcess, rows):
    body = json.dumps({"instances": as_json_rows(rows)}).encode()
    assert len(body) < DEFAULT_MAX_BODY_BYTES
    status, payload = post_json(f"{server.url}/predict", raw=body, timeout=300)
    assert status == 200, payload
    assert len(payload["predictions"]) == 1567 - 9


def test_concurrent_requests_get_own_answers(server: ServerProcess, rows, offline_probabilities):
    """Requests of different lengths sent at once are batched together, yet each gets exactly its own windows."""
    slices = [(start, start + 10 + (start % 7)) for start in range(0, 1200, 25)]

    def call(bounds: tuple[int, int]) -> tuple[tuple[int, int], int, dict]:
        status, payload = post_json(f"{server.url}/predict", {"instances": as_json_rows(rows[bounds[0] : bounds[1]])})
        return bounds, status, payload

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, slices))

    for (start, stop), status, payload in results:
        assert status == 200, payload
        served = np.array([p["probability"] for p in payload["predictions"]])
        assert len(served) == stop - start - 9
        np.testing.assert_allclose(served, offline_probabilities(start, stop), atol=1e-5, rtol=0)


def _batch_histogram(server: ServerProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for name in ("count", "sum"):
        match = re.search(rf"^secom_batch_windows_{name} ([0-9.e+]+)$", text, re.MULTILINE)
        assert match, f"no secom_batch_windows_{name} in /metrics"
        values[name] = float(match.group(1))
    single = re.search(r'^secom_batch_windows_bucket\{le="1.0"\} ([0-9.e+]+)$', text, re.MULTILINE)
    values["le_1"] = float(single.group(1)) if single else 0.0
    return values


def test_concurrent_single_windows_batched(server: ServerProcess, rows):
    """32 threads of one-window requests: some LSTM calls must score more than one request's window."""
    before = _batch_histogram(server)

    def call(start: int) -> int:
        return post_json(f"{server.url}/predict", {"instances": as_json_rows(rows[start : start + 10])})[0]

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(call, range(0, 320, 2)))
    after = _batch_histogram(server)

    assert statuses == [200] * len(statuses)
    calls = after["count"] - before["count"]
    windows = after["sum"] - before["sum"]
    multi_window_calls = calls - (after["le_1"] - before["le_1"])
    assert windows >= len(statuses)
    assert calls < windows, f"{windows} windows in {calls} calls: no batching"
    assert multi_window_calls > 0


@pytest.mark.parametrize(
    ("mutate", "error_type", "phrase"),
    [
        (lambda body: body.update(instances=body["instances"][:9]), "too_few_rows", "at least 10 rows"),
        (lambda body: body["instances"][4].pop(), "row_length", "row 4 has 589 readings"),
        (lambda body: body["instances"][2].__setitem__(5, "n/a"), "invalid_reading", "row 2, reading 5"),
        (lambda body: body.update(threshold=1.5), "less_than_equal", ""),
        (lambda body: body.update(timestamps=["2008-07-19T11:55:00"] * 3), "timestamps_length", "3 values"),
        (lambda body: body.update(timestamps=["yesterday"] * 10), "invalid_timestamp", "row 0"),
        (
            lambda body: body.update(timestamps=[f"2008-07-19T11:{59 - i:02d}:00" for i in range(10)]),
            "timestamps_order",
            "row 1",
        ),
    ],
    ids=["nine-rows", "short-row", "string-reading", "threshold-1.5", "timestamp-count", "timestamp-unparsable", "timestamp-order"],
)
def test_bad_input_400(server: ServerProcess, rows, mutate, error_type, phrase):
    body = {"instances": as_json_rows(rows[:10])}
    mutate(body)
    detail = _expect_400(server, body)
    assert detail["type"] == error_type
    assert phrase in detail["msg"]


def test_infinity_400(server: ServerProcess, rows):
    body = json.dumps({"instances": as_json_rows(rows[:10])})
    body = re.sub(r"\[(-?[0-9.]+),", "[Infinity,", body, count=1)
    detail = _expect_400(server, raw=body.encode())
    assert detail["type"] == "invalid_reading"


def test_malformed_json_400(server: ServerProcess):
    detail = _expect_400(server, raw=b'{"instances": [[1, 2,')
    assert detail["type"] == "json_invalid"


def test_client_raises_on_bad_input(client, rows):
    with pytest.raises(bentoml.exceptions.BentoMLException) as caught:
        client.predict(instances=as_json_rows(rows[:9]))
    assert caught.value.error_code == 400
    assert "at least 10 rows" in str(caught.value)


def test_body_over_limit_413(server: ServerProcess):
    status, payload = post_json(f"{server.url}/predict", raw=b" " * (DEFAULT_MAX_BODY_BYTES + 1))
    assert status == 413
    assert payload["detail"][0]["type"] == "body_too_large"
    assert "SECOM_MAX_BODY_BYTES" in payload["detail"][0]["msg"]


def test_chunked_body_over_limit_413(server: ServerProcess):
    def chunks():
        block = b" " * (1 << 20)
        for _ in range(DEFAULT_MAX_BODY_BYTES // len(block) + 2):
            yield block

    response = httpx.post(f"{server.url}/predict", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 413


def test_serving_continues_after_bad_input(client, rows):
    for _ in range(3):
        with pytest.raises(bentoml.exceptions.BentoMLException):
            client.predict(instances=as_json_rows(rows[:5]))
    response = client.predict(instances=as_json_rows(rows[:10]))
    assert len(response["predictions"]) == 1


def test_metadata_through_client(client, imported_model: ImportedModel):
    stored = json.loads(Path(bentoml.models.get(imported_model.tag).path_of("metadata.json")).read_text())
    metadata = client.metadata()
    assert metadata["model_tag"] == imported_model.tag
    assert metadata["metrics"] == stored["metrics"]
    assert metadata["threshold"] == stored["threshold"]


def test_metadata_get(server: ServerProcess, imported_model: ImportedModel):
    with urllib.request.urlopen(f"{server.url}/metadata", timeout=10) as response:
        metadata = json.loads(response.read())
    assert metadata["model_tag"] == imported_model.tag
    assert "test" in metadata["metrics"]


@pytest.mark.parametrize("path", ["/health", "/healthz", "/livez", "/readyz", "/metrics"])
def test_health_endpoints(server: ServerProcess, path: str):
    with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as response:
        assert response.status == 200


def test_health_names_model(server: ServerProcess, imported_model: ImportedModel):
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as response:
        payload = json.loads(response.read())
    assert payload["status"] == "ok"
    assert payload["model_tag"] == imported_model.tag


def test_server_log_names_model(server: ServerProcess, imported_model: ImportedModel):
    assert f"loaded model {imported_model.tag}" in server.log()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _post_npy(server: ServerProcess, payload: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/predict_array",
        files={"readings": ("rows.npy", payload, "application/octet-stream")},
        data=fields,
        timeout=120,
    )


def test_predict_array_matches_json(client, rows, tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, rows[200:240])
    from_array = client.predict_array(readings=path)
    from_json = client.predict(instances=as_json_rows(rows[200:240]))
    assert [p["window_end_index"] for p in from_array["predictions"]] == list(range(9, 40))
    np.testing.assert_allclose(
        [p["probability"] for p in from_array["predictions"]],
        [p["probability"] for p in from_json["predictions"]],
        atol=1e-7,
        rtol=0,
    )


def test_predict_array_threshold_field(server: ServerProcess, rows):
    response = _post_npy(server, _npy_bytes(rows[:12]), threshold="0")
    assert response.status_code == 200, response.text
    assert all(p["is_anomaly"] for p in response.json()["predictions"])


@pytest.mark.parametrize(
    ("payload", "error_type", "phrase"),
    [
        (b"not a numpy file", "invalid_npy", "numpy.save"),
        (_npy_bytes(np.zeros((12, 589))), "readings_shape", "(12, 589)"),
        (_npy_bytes(np.zeros((9, 590))), "too_few_rows", "got 9 rows"),
        (_npy_bytes(np.array([["a"] * 590] * 10)), "invalid_dtype", "dtype"),
        (_npy_bytes(np.array([[{"x": 1}] * 590] * 10, dtype=object)), "invalid_npy", "numpy.save"),
    ],
    ids=["not-npy", "589-columns", "nine-rows", "strings", "pickled-objects"],
)
def test_predict_array_bad_file_400(server: ServerProcess, payload: bytes, error_type: str, phrase: str):
    response = _post_npy(server, payload)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"][0]
    assert detail["type"] == error_type
    assert phrase in detail["msg"]


def test_predict_array_infinity_400(server: ServerProcess, rows):
    bad = rows[:10].copy()
    bad[4, 33] = np.inf
    response = _post_npy(server, _npy_bytes(bad))
    assert response.status_code == 400, response.text
    assert "row 4, reading 33" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SECOM_THRESHOLD", "1.5"), ("SECOM_THRESHOLD", "high"), ("SECOM_MAX_BODY_BYTES", "-1")],
)
def test_invalid_env_stops_serve(bentoml_home: Path, variable: str, value: str):
    """A bad setting ends `bentoml serve` at once with the message, instead of restarting workers forever."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT, free_port, subprocess_env

    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:SecomLSTM", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=subprocess_env(bentoml_home, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"{variable} must be" in result.stdout + result.stderr
