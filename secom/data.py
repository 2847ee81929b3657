"""Locate, verify and parse the UCI SECOM archive.

The archive is the one UCI distributes (dataset 179, CC BY 4.0: McCann, M. and
Johnston, A. (2008). SECOM. UCI Machine Learning Repository.
https://doi.org/10.24432/C54305). It contains ``secom.data`` (1567 rows of 590
space-separated readings, ``NaN`` for missing) and ``secom_labels.data`` (a -1/1
label and a quoted day-first timestamp per row).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from secom.errors import DataError

logger = logging.getLogger(__name__)

ARCHIVE_URL = "https://archive.ics.uci.edu/static/public/179/secom.zip"
ARCHIVE_SHA256 = "eea568baf3c2229096d7d294cf0b096b5502bd96d92c0b80a65b84714059be8e"
DATA_ENV_VAR = "SECOM_DATA"
CACHE_ENV_VAR = "SECOM_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "secom"

N_READINGS = 590
FEATURE_NAMES = tuple(str(i) for i in range(N_READINGS))
# Day first, as UCI writes it: "19/07/2008 11:55:00". A guessed format reads
# 01/08/2008 as January 8th.
TIMESTAMP_FORMAT = "%d/%m/%Y %H:%M:%S"
FAIL_LABEL = 1
PASS_LABEL = -1
DOWNLOAD_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class SecomData:
    """The SECOM rows in time order.

    Attributes:
        readings: shape (n_rows, 590), float64, NaN where a reading is missing.
        labels: shape (n_rows,), 1 for a lot that failed the line test, 0 for a pass.
        timestamps: the lot timestamps, non-decreasing.
        sha256: checksum of the archive the rows came from.
    """

    readings: np.ndarray
    labels: np.ndarray
    timestamps: pd.DatetimeIndex
    sha256: str

    @property
    def n_rows(self) -> int:
        return int(self.readings.shape[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR, DEFAULT_CACHE_DIR))


def _download(destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading the SECOM archive from %s to %s", ARCHIVE_URL, destination)
    try:
        with urllib.request.urlopen(ARCHIVE_URL, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            # Write beside the target, then rename, so an interrupted download
            # never leaves a partial archive in the cache.
            with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as part:
                shutil.copyfileobj(response, part)
        os.replace(part.name, destination)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(
            f"Could not download the SECOM archive from {ARCHIVE_URL} ({exc}). "
            f"On a machine without internet access, set {DATA_ENV_VAR} to the path "
            "of secom.zip or pass its path explicitly."
        ) from exc


def resolve_archive(path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """Find the archive and verify its sha256.

    Looks, in order, at ``path``, the ``SECOM_DATA`` environment variable, the
    local cache (``SECOM_CACHE_DIR``, default ``~/.cache/secom``), and finally
    downloads from UCI into that cache when ``download`` is true.

    Raises:
        DataError: the archive is missing, cannot be downloaded, or its
            checksum differs from the published one.
    """
    if path is not None:
        candidate, source = Path(path), "the given path"
    elif os.environ.get(DATA_ENV_VAR):
        candidate, source = Path(os.environ[DATA_ENV_VAR]), f"${DATA_ENV_VAR}"
    else:
        candidate, source = cache_dir() / "secom.zip", "the cache"
        if not candidate.exists():
            if not download:
                raise DataError(
                    f"No SECOM archive at {candidate}. Set {DATA_ENV_VAR} to the path of secom.zip."
                )
            _download(candidate)

    if not candidate.is_file():
        raise DataError(
            f"SECOM archive not found at {candidate} (from {source}). "
            f"Set {DATA_ENV_VAR} to the path of secom.zip, or download it from {ARCHIVE_URL}."
        )
    actual = sha256_of(candidate)
    if actual != ARCHIVE_SHA256:
        raise DataError(
            f"SECOM archive {candidate} has sha256 {actual}, expected {ARCHIVE_SHA256}. "
            f"The file is damaged or not the UCI archive; download it again from {ARCHIVE_URL}."
        )
    return candidate


def parse_readings(text: str) -> np.ndarray:
    """Parse ``secom.data``: whitespace-separated readings, ``NaN`` for missing."""
    frame = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, dtype=np.float64)
    if frame.shape[1] != N_READINGS:
        raise DataError(f"secom.data has {frame.shape[1]} columns per row, expected {N_READINGS}.")
    return frame.to_numpy()


def parse_labels(text: str) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Parse ``secom_labels.data`` into 0/1 fail labels and timestamps."""
    frame = pd.read_csv(
        io.StringIO(text),
        sep=" ",
        header=None,
        names=["label", "timestamp"],
        quotechar='"',
        dtype={"label": np.int64, "timestamp": str},
    )
    unknown = sorted(set(frame["label"]) - {FAIL_LABEL, PASS_LABEL})
    if unknown:
        raise DataError(f"secom_labels.data has labels {unknown}, expected only -1 (pass) and 1 (fail).")
    try:
        timestamps = pd.to_datetime(frame["timestamp"], format=TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise DataError(f"secom_labels.data has a timestamp not in the form {TIMESTAMP_FORMAT}: {exc}") from exc
    labels = (frame["label"].to_numpy() == FAIL_LABEL).astype(np.int64)
    return labels, pd.DatetimeIndex(timestamps)


def load_secom(path: str | os.PathLike[str] | None = None, *, download: bool = True) -> SecomData:
    """Load the SECOM rows in time order from the verified archive.

    Rows are ordered by timestamp with a stable sort, so the 33 rows that
    repeat the previous timestamp keep their order from the archive.
    """
    archive = resolve_archive(path, download=download)
    with zipfile.ZipFile(archive) as bundle:
        readings = parse_readings(bundle.read("secom.data").decode("ascii"))
        labels, timestamps = parse_labels(bundle.read("secom_labels.data").decode("ascii"))
    if len(readings) != len(labels):
        raise DataError(
            f"secom.data has {len(readings)} rows but secom_labels.data has {len(labels)}; the archive is inconsistent."
        )

    order = np.argsort(timestamps.to_numpy(), kind="stable")
    data = SecomData(
        readings=readings[order],
        labels=labels[order],
        timestamps=timestamps[order],
        sha256=ARCHIVE_SHA256,
    )
    logger.info(
        "Loaded %d SECOM rows (%d fails) from %s, %s to %s",
        data.n_rows,
        int(data.labels.sum()),
        archive,
        data.timestamps[0],
        data.timestamps[-1],
    )
    return data
