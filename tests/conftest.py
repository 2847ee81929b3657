"""Shared fixtures: an isolated BentoML home, the real archive, a trained model and a real server.

The BentoML home is set before anything imports bentoml, so the tests never
read or write the user's model store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(os.environ.get("SECOM_TEST_BENTOML_HOME") or tempfile.mkdtemp(prefix="secom-tests-bentoml-"))
os.environ["BENTOML_HOME"] = str(_HOME)
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests.helpers import (  # noqa: E402
    CONTAINER_SUMMARY,
    REPO_ROOT,
    ImportedModel,
    ServerProcess,
    import_model,
    start_server,
)


@pytest.fixture(scope="session")
def bentoml_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def archive_path() -> Path:
    """The real UCI archive, from SECOM_DATA; the training and server tiers need it."""
    value = os.environ.get("SECOM_DATA")
    if not value:
        pytest.fail("SECOM_DATA is not set: point it at the UCI secom.zip (the archive UCI distributes as dataset 179)")
    path = Path(value).resolve()
    if not path.is_file():
        pytest.fail(f"SECOM_DATA points at {path}, which does not exist")
    return path


@pytest.fixture(scope="session")
def imported_model(archive_path: Path, bentoml_home: Path) -> ImportedModel:
    """Run import_model.py once per test session into the isolated model store."""
    return import_model(archive_path, bentoml_home)


@pytest.fixture(scope="session")
def server(imported_model: ImportedModel, bentoml_home: Path) -> ServerProcess:
    """A real `bentoml serve service:SecomLSTM` on a free loopback port."""
    process = start_server(["service:SecomLSTM"], bentoml_home, cwd=REPO_ROOT)
    yield process
    process.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print what the container check measured and the responses from inside the container."""
    lines = config.stash.get(CONTAINER_SUMMARY, None)
    if not lines:
        return
    terminalreporter.section("container check")
    for line in lines:
        terminalreporter.write_line(line)
