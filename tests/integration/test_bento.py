"""Build the Bento from bentofile.yaml, then serve the built Bento and call predict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
import yaml

from tests.helpers import REPO_ROOT, ImportedModel, as_json_rows, read_archive_rows, start_server, subprocess_env

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def bento_tag(imported_model: ImportedModel, bentoml_home: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build"],
        cwd=REPO_ROOT,
        env=subprocess_env(bentoml_home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"bentoml build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    match = re.search(r"Successfully built Bento\(tag=\"?(secom-lstm:[a-z0-9]+)", result.stdout + result.stderr)
    assert match, f"no Bento tag in the build output:\n{result.stdout[-3000:]}"
    return match.group(1)


def test_bento_lists_model(bento_tag: str, imported_model: ImportedModel, bentoml_home: Path):
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "get", bento_tag, "-o", "yaml"],
        env=subprocess_env(bentoml_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    info = yaml.safe_load(result.stdout)
    model_tags = {model["tag"] for service in info["services"] for model in service["models"]}
    assert model_tags == {imported_model.tag}
    assert info["entry_service"] == "secom-lstm"


def test_bento_carries_package_and_pins(bento_tag: str):
    bento = bentoml.bentos.get(bento_tag)
    source = Path(bento.path) / "src"
    assert (source / "service.py").is_file()
    assert (source / "secom" / "preprocessing.py").is_file()
    assert not (source / "tests").exists()
    requirements = (Path(bento.path) / "env" / "python" / "requirements.txt").read_text()
    assert "tensorflow-cpu==2.21.0" in requirements
    assert "bentoml==1.4.40" in requirements


def test_built_bento_serves_predict(bento_tag: str, imported_model: ImportedModel, bentoml_home: Path, archive_path: Path, tmp_path: Path):
    # Serve from an empty folder, so nothing of the project tree is on the path.
    server = start_server([bento_tag], bentoml_home, cwd=tmp_path, PYTHONPATH="")
    try:
        with bentoml.SyncHTTPClient(server.url, timeout=120) as client:
            response = client.predict(instances=as_json_rows(read_archive_rows(archive_path)[:10]))
            metadata = client.metadata()
    finally:
        server.stop()
    assert response["model_tag"] == imported_model.tag
    assert len(response["predictions"]) == 1
    assert metadata["model_tag"] == imported_model.tag
