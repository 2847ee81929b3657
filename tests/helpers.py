"""Helpers for tests that run import_model.py and `bentoml serve` as real subprocesses."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Lines the container check reports; conftest prints them after the test run, where
# pytest's output capture does not hide them.
CONTAINER_SUMMARY = pytest.StashKey[list[str]]()
READY_TIMEOUT_SECONDS = 180
IMPORT_TIMEOUT_SECONDS = 900


@dataclass
class ImportedModel:
    tag: str
    stdout: str


def subprocess_env(bentoml_home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": str(REPO_ROOT)})
    env.update(extra)
    return env


def run_import_model(bentoml_home: Path, *args: str, timeout: float = IMPORT_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """Run ``import_model.py ARGS`` from the project root against ``bentoml_home``."""
    return subprocess.run(
        [sys.executable, "import_model.py", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(bentoml_home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def import_model(archive: Path, bentoml_home: Path) -> ImportedModel:
    result = run_import_model(bentoml_home, "--data", str(archive), "--quiet")
    assert result.returncode == 0, f"import_model.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    match = re.search(r"^Model tag: (secom-lstm:\S+)$", result.stdout, re.MULTILINE)
    assert match, f"import_model.py printed no model tag:\n{result.stdout[-3000:]}"
    return ImportedModel(tag=match.group(1), stdout=result.stdout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_server(target: list[str], bentoml_home: Path, *, cwd: Path, **env: str) -> ServerProcess:
    """Start `bentoml serve TARGET` on a free loopback port and wait for /readyz."""
    port = free_port()
    log_path = bentoml_home / f"serve-{port}.log"
    log_file = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", *target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=subprocess_env(bentoml_home, **env),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ServerProcess(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bentoml serve exited with {process.returncode}:\n{server.log()[-5000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    server.stop()
    raise AssertionError(f"bentoml serve was not ready within {READY_TIMEOUT_SECONDS} s:\n{server.log()[-5000:]}")


def read_archive_rows(archive: Path) -> np.ndarray:
    """The raw readings of secom.data in archive order (the archive is already in time order)."""
    with zipfile.ZipFile(archive) as bundle:
        return pd.read_csv(io.BytesIO(bundle.read("secom.data")), sep=r"\s+", header=None).to_numpy()


def as_json_rows(rows: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(value) else float(value) for value in row] for row in rows]


def post_json(url: str, body: object | None = None, *, raw: bytes | None = None, timeout: float = 60) -> tuple[int, dict]:
    """POST a JSON body with the standard library and return (status, decoded body)."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
