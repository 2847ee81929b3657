"""Container image of the Bento: build it, run it, and call it inside the running container.

The ``container`` tests run ``deploy/container/check_container.py`` for real: a Docker
engine when ``docker info`` succeeds, otherwise podman with locally built base images
(5.5 to 6.5 minutes cold on a busy 2-core machine, 30 to 47 s warm). They train a model into the
tests' own BentoML home (``imported_model``) and read the UCI archive from ``SECOM_DATA``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import CONTAINER_SUMMARY

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHECK_SCRIPT = PROJECT_ROOT / "deploy" / "container" / "check_container.py"
DEPLOYMENT_MANIFEST = PROJECT_ROOT / "deploy" / "kubernetes" / "deployment.yaml"
MEMORY_FACTORS = {"Mi": 2**20, "Gi": 2**30}
MODEL_NAME = "secom-lstm"
WINDOW_LENGTH = 10
SMALL_ROWS = 12
BULK_ROWS = 1567
# Exit status of the check when neither a Docker engine nor podman can run containers.
ENGINE_UNAVAILABLE_EXIT = 3
# A cold podman run builds two base images and downloads every wheel, so allow well
# beyond its measured 5.5 to 6.5 minutes before calling it hung.
CHECK_TIMEOUT_SECONDS = 1500
# The first test also waits for the ``imported_model`` fixture, which trains for 1-3 minutes.
TEST_TIMEOUT_SECONDS = CHECK_TIMEOUT_SECONDS + 300


def load_check_module():
    spec = importlib.util.spec_from_file_location("check_container", CHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def container_result(request, tmp_path_factory, archive_path, imported_model, bentoml_home) -> dict:
    """Run the container check once against the tests' model store and return its JSON result."""
    result_path = tmp_path_factory.mktemp("container") / "result.json"
    command = [
        sys.executable, str(CHECK_SCRIPT),
        "--data", str(archive_path),
        "--rows", str(SMALL_ROWS),
        "--bulk-rows", str(BULK_ROWS),
        "--result-json", str(result_path),
    ]
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=CHECK_TIMEOUT_SECONDS
    )
    # Shown by pytest only when a test of this module fails.
    print(completed.stdout[-20000:])
    print(completed.stderr[-20000:], file=sys.stderr)
    if completed.returncode == ENGINE_UNAVAILABLE_EXIT:
        reason = json.loads(result_path.read_text()).get("error", "no reason recorded")
        pytest.skip(f"neither a Docker engine nor podman can run containers here: {reason}")
    assert result_path.is_file(), f"check wrote no result (exit status {completed.returncode})"
    result = json.loads(result_path.read_text())
    result["exit_status"] = completed.returncode
    _report(request.config, result)
    return result


def _report(config: pytest.Config, result: dict) -> None:
    """Store the image size and the responses from inside the container for the end-of-run summary."""
    size = result.get("image_size_bytes")
    predict = result.get("predict", {}).get("json") or {}
    metadata = result.get("metadata", {}).get("json") or {}
    config.stash[CONTAINER_SUMMARY] = [
        f"container image: {result.get('image')}, {size / 1e6:.0f} MB" if size else "container image: size not measured",
        f"container user id: {result.get('uid')}",
        f"predict inside the container ({SMALL_ROWS} rows): {json.dumps(predict.get('predictions'))}",
        f"metadata inside the container: model_tag {metadata.get('model_tag')}, "
        f"test ROC-AUC {metadata.get('metrics', {}).get('test', {}).get('roc_auc')}",
    ]


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_check_passes(container_result):
    assert container_result.get("error") is None, container_result.get("error")
    assert container_result["failures"] == []
    assert container_result["exit_status"] == 0


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_bento_lists_model(container_result):
    names = [tag.split(":")[0] for tag in container_result["bento_models"]]
    assert MODEL_NAME in names


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_predict_one_probability_per_window(container_result):
    predict = container_result["predict"]
    assert predict["status"] == 200, predict
    predictions = predict["json"]["predictions"]
    assert len(predictions) == SMALL_ROWS - WINDOW_LENGTH + 1
    assert [p["window_end_index"] for p in predictions] == list(range(WINDOW_LENGTH - 1, SMALL_ROWS))
    for prediction in predictions:
        assert 0.0 <= prediction["probability"] <= 1.0
        assert isinstance(prediction["is_anomaly"], bool)


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_bulk_predict_whole_data_set(container_result):
    bulk = container_result["bulk_predict"]
    assert bulk["status"] == 200, bulk["error"]
    assert bulk["predictions"] == BULK_ROWS - WINDOW_LENGTH + 1


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_metadata_returns_model_tag(container_result, imported_model):
    metadata = container_result["metadata"]
    assert metadata["status"] == 200, metadata
    model_tag = metadata["json"]["model_tag"]
    assert model_tag == imported_model.tag
    assert model_tag in container_result["bento_models"]
    assert container_result["predict"]["json"]["model_tag"] == model_tag


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_server_runs_as_non_root(container_result):
    assert container_result["uid"] != 0
    assert container_result["image_user"] not in ("", "0", "root")


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_memory_measured(container_result):
    memory = container_result["memory"]["after_bulk_predict"]
    assert memory["processes"], "no process memory could be read inside the container"
    assert memory["pss_sum_mib"] > 0


@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_deployment_memory_request_covers_measurement(container_result):
    deployment = yaml.safe_load(DEPLOYMENT_MANIFEST.read_text())
    request = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
    amount, unit = request[:-2], request[-2:]
    assert unit in MEMORY_FACTORS, f"memory request {request!r} is not in Mi or Gi"
    request_mib = float(amount) * MEMORY_FACTORS[unit] / 2**20
    memory = container_result["memory"]["after_bulk_predict"]
    # PSS counts each shared page once, which is what the pod's processes occupy together.
    assert memory["pss_sum_mib"] <= request_mib, (
        f"measured {memory['pss_sum_mib']} MiB PSS exceeds the Deployment's memory request {request}: raise it"
    )


def test_load_secom_rows_maps_nan_to_none(tmp_path):
    check = load_check_module()
    archive = tmp_path / "secom.zip"
    rows = [" ".join(["1.5"] * 589 + ["NaN"]), " ".join(["NaN"] + ["2"] * 589)]
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("secom.data", "\n".join(rows) + "\n")

    loaded = check.load_secom_rows(archive, start=0, count=2)

    assert len(loaded) == 2
    assert loaded[0][-1] is None
    assert loaded[0][0] == 1.5
    assert loaded[1][0] is None


def test_load_secom_rows_rejects_short_archive(tmp_path):
    check = load_check_module()
    archive = tmp_path / "secom.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("secom.data", " ".join(["1"] * 590) + "\n")

    with pytest.raises(check.CheckError, match="has 1 rows"):
        check.load_secom_rows(archive, start=0, count=10)


def test_bento_model_tags_reads_service_models():
    check = load_check_module()
    info = {
        "models": [],
        "services": [
            {"name": "secom-lstm", "models": [{"tag": "secom-lstm:abc"}]},
            {"name": "secom-lstm-runner", "models": [{"tag": "secom-lstm:abc"}]},
        ],
    }

    assert check.bento_model_tags(info) == ["secom-lstm:abc"]
