"""Archive location, checksum and parsing, on small generated archives."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from secom import data
from secom.errors import DataError


def _row(values: list[str]) -> str:
    return " ".join(values + ["0"] * (data.N_READINGS - len(values)))


def _write_archive(path: Path, readings: list[str], labels: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("secom.data", "\n".join(readings) + "\n")
        bundle.writestr("secom_labels.data", "\n".join(labels) + "\n")
    return path


@pytest.fixture
def small_archive(tmp_path: Path) -> Path:
    readings = [_row(["1.5", "NaN"]), _row(["2.5", "3"]), _row(["NaN", "4"]), _row(["7", "8"])]
    # Row 2 is the earliest; rows 0 and 1 share a timestamp; 01/08/2008 is August 1st.
    labels = [
        '-1 "01/08/2008 10:00:00"',
        '1 "01/08/2008 10:00:00"',
        '-1 "19/07/2008 11:55:00"',
        '1 "02/08/2008 00:00:00"',
    ]
    return _write_archive(tmp_path / "secom.zip", readings, labels)


def test_parse_readings_nan_and_width():
    rows = data.parse_readings(_row(["1.5", "NaN"]) + "\n" + _row(["2", "3"]) + "\n")
    assert rows.shape == (2, data.N_READINGS)
    assert rows[0, 0] == 1.5
    assert np.isnan(rows[0, 1])
    assert rows[1, 1] == 3.0


def test_parse_readings_wrong_width():
    with pytest.raises(DataError, match="expected 590"):
        data.parse_readings("1 2 3\n")


def test_parse_labels_day_first():
    labels, timestamps = data.parse_labels('-1 "01/08/2008 10:00:00"\n1 "19/07/2008 11:55:00"\n')
    assert labels.tolist() == [0, 1]
    assert timestamps[0].month == 8
    assert timestamps[0].day == 1
    assert timestamps[1].day == 19


def test_parse_labels_rejects_unknown_label():
    with pytest.raises(DataError, match="expected only -1"):
        data.parse_labels('0 "01/08/2008 10:00:00"\n')


def test_parse_labels_rejects_month_first():
    with pytest.raises(DataError, match="timestamp"):
        data.parse_labels('-1 "07/19/2008 11:55:00"\n')


def test_load_sorts_stably(small_archive: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(data, "ARCHIVE_SHA256", data.sha256_of(small_archive))
    loaded = data.load_secom(small_archive)
    # Sorted by time; rows 0 and 1 (equal timestamps) keep their archive order.
    assert loaded.readings[:, 0].tolist()[:3] == [pytest.approx(np.nan, nan_ok=True), 1.5, 2.5]
    assert loaded.labels.tolist() == [0, 0, 1, 1]
    assert loaded.timestamps.is_monotonic_increasing


def test_checksum_mismatch_names_both_digests(small_archive: Path):
    with pytest.raises(DataError, match=data.ARCHIVE_SHA256):
        data.resolve_archive(small_archive)


def test_missing_path_says_set_env(tmp_path: Path):
    with pytest.raises(DataError, match=data.DATA_ENV_VAR):
        data.resolve_archive(tmp_path / "absent.zip")


def test_env_var_used_when_no_path(small_archive: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(data, "ARCHIVE_SHA256", data.sha256_of(small_archive))
    monkeypatch.setenv(data.DATA_ENV_VAR, str(small_archive))
    assert data.resolve_archive() == small_archive


def test_offline_without_path_says_set_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "cache"))
    # A closed loopback port simulates a machine without internet access.
    monkeypatch.setattr(data, "ARCHIVE_URL", "http://127.0.0.1:9/secom.zip")
    with pytest.raises(DataError, match=data.DATA_ENV_VAR):
        data.resolve_archive()
    assert not (tmp_path / "cache" / "secom.zip").exists()


def test_cached_archive_used(small_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / "secom.zip"
    cached.write_bytes(small_archive.read_bytes())
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(cache))
    monkeypatch.setattr(data, "ARCHIVE_SHA256", data.sha256_of(cached))
    assert data.resolve_archive(download=False) == cached
