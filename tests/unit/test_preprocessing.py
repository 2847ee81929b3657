"""SecomPreprocessor on small generated rows: fit, transform, windows and JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from secom.data import N_READINGS
from secom.errors import NotFittedError
from secom.preprocessing import SecomPreprocessor, make_windows


@pytest.fixture
def rows() -> np.ndarray:
    generator = np.random.default_rng(0)
    values = generator.normal(size=(60, N_READINGS))
    values[:, 0] = np.nan  # always missing
    values[:40, 1] = np.nan  # missing in 2/3 of the rows
    values[:, 2] = 5.0  # constant
    values[generator.random(values.shape) < 0.05] = np.nan  # scattered gaps
    values[:, 3] = 2 * values[:, 4] + 1  # perfectly correlated with reading 4, gaps included
    return values


def test_fit_returns_self_and_filters(rows: np.ndarray):
    preprocessor = SecomPreprocessor()
    assert preprocessor.fit(rows) is preprocessor
    kept = set(preprocessor.feature_indices_.tolist())
    assert 0 not in kept
    assert 1 not in kept
    assert 2 not in kept
    assert len(kept & {3, 4}) == 1
    assert preprocessor.n_dropped_["missing"] >= 2
    assert sum(preprocessor.n_dropped_.values()) + preprocessor.n_features_out == N_READINGS


def test_transform_finite_and_clipped(rows: np.ndarray):
    preprocessor = SecomPreprocessor(clip_margin=0.5).fit(rows)
    extreme = rows.copy()
    extreme[5] = 1e12
    extreme[6] = np.nan
    features = preprocessor.transform(extreme)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    assert features.max() <= 1.5
    assert features.min() >= -0.5


def test_training_rows_scale_to_unit_range(rows: np.ndarray):
    preprocessor = SecomPreprocessor().fit(rows)
    features = preprocessor.transform(rows)
    assert features.min() == pytest.approx(0.0, abs=1e-6)
    assert features.max() == pytest.approx(1.0, abs=1e-6)


def test_forward_fill_then_median(rows: np.ndarray):
    preprocessor = SecomPreprocessor().fit(rows)
    column = int(preprocessor.feature_indices_[0])
    position = 0
    sample = rows[:3].copy()
    sample[0, column] = np.nan  # no earlier row: training median
    sample[1, column] = 0.25
    sample[2, column] = np.nan  # forward fill from row 1
    features = preprocessor.transform(sample)
    median_scaled = preprocessor.scaler_.transform(preprocessor.fill_values_[None, :])[0, position]
    assert features[0, position] == pytest.approx(median_scaled, abs=1e-6)
    assert features[2, position] == pytest.approx(features[1, position], abs=1e-7)


def test_unfitted_raises_clear_error(rows: np.ndarray):
    with pytest.raises(NotFittedError, match="not fitted"):
        SecomPreprocessor().transform(rows)


def test_wrong_width_rejected(rows: np.ndarray):
    preprocessor = SecomPreprocessor().fit(rows)
    with pytest.raises(ValueError, match="590"):
        preprocessor.transform(rows[:, :589])


def test_infinite_reading_rejected(rows: np.ndarray):
    preprocessor = SecomPreprocessor().fit(rows)
    bad = rows.copy()
    bad[3, 7] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        preprocessor.transform(bad)


@pytest.mark.parametrize(
    "params",
    [{"max_missing_fraction": 1.0}, {"correlation_threshold": 0.0}, {"variance_threshold": -1}, {"window_length": 0}],
)
def test_invalid_params_rejected(rows: np.ndarray, params: dict):
    with pytest.raises(ValueError):
        SecomPreprocessor(**params).fit(rows)


def test_json_round_trip_identical_input(rows: np.ndarray, tmp_path):
    preprocessor = SecomPreprocessor(correlation_threshold=0.9).fit(rows[:40])
    path = tmp_path / "preprocessor.json"
    preprocessor.save(path)
    loaded = SecomPreprocessor.load(path)
    assert json.loads(path.read_text())["format"] == "secom-preprocessor"
    assert loaded.get_params() == preprocessor.get_params()
    np.testing.assert_array_equal(loaded.transform_windows(rows), preprocessor.transform_windows(rows))


def test_load_rejects_other_version(rows: np.ndarray):
    state = SecomPreprocessor().fit(rows).to_dict()
    state["version"] = 99
    with pytest.raises(ValueError, match="version"):
        SecomPreprocessor.from_dict(state)


def test_clone_keeps_params_drops_state(rows: np.ndarray):
    fitted = SecomPreprocessor(window_length=5).fit(rows)
    copy = clone(fitted)
    assert copy.window_length == 5
    assert not hasattr(copy, "feature_indices_")


def test_windows_end_at_expected_rows():
    features = np.arange(25 * 2, dtype=np.float32).reshape(25, 2)
    windows = make_windows(features, 10)
    assert windows.shape == (16, 10, 2)
    np.testing.assert_array_equal(windows[0], features[0:10])
    np.testing.assert_array_equal(windows[-1], features[15:25])
    # Window i ends at row i + 9.
    for i in range(16):
        assert windows[i, -1, 0] == features[i + 9, 0]


def test_windows_need_enough_rows():
    with pytest.raises(ValueError, match="at least 10 rows"):
        make_windows(np.zeros((9, 3), dtype=np.float32), 10)
