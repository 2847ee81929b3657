"""Turn raw 590-reading SECOM rows into LSTM input, identically at training and serving time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import VarianceThreshold
from sklearn.preprocessing import MinMaxScaler

from secom.data import FEATURE_NAMES, N_READINGS
from secom.errors import NotFittedError

FORMAT_NAME = "secom-preprocessor"
FORMAT_VERSION = 1
DEFAULT_WINDOW_LENGTH = 10


def make_windows(features: np.ndarray, window_length: int) -> np.ndarray:
    """Stack every run of ``window_length`` consecutive rows.

    Args:
        features: shape (n_rows, n_features).

    Returns:
        shape (n_rows - window_length + 1, window_length, n_features); window i
        covers rows i .. i + window_length - 1, so it ends at row i + window_length - 1.
    """
    if features.ndim != 2:
        raise ValueError(f"expected a 2-D array of rows, got shape {features.shape}")
    if len(features) < window_length:
        raise ValueError(f"expected at least {window_length} rows to build a window, got {len(features)}")
    view = np.lib.stride_tricks.sliding_window_view(features, window_length, axis=0)
    # sliding_window_view puts the window axis last: (n_windows, n_features, window_length).
    return np.ascontiguousarray(view.transpose(0, 2, 1))


class SecomPreprocessor(TransformerMixin, BaseEstimator):
    """Fill gaps, scale, and select SECOM readings; build windows for the LSTM.

    Follows the scikit-learn estimator contract: ``fit`` learns from training
    rows only and returns ``self``; learned state ends in ``_``.

    Steps, all learned on the rows passed to ``fit``:

    1. Drop readings missing in more than ``max_missing_fraction`` of the rows.
    2. Fill gaps: forward fill down the rows (the last earlier reading of the
       same sensor), then the training median where no earlier reading exists.
    3. MinMax-scale to the training range, then clip to
       ``[-clip_margin, 1 + clip_margin]`` so that drifted or extreme readings
       stay finite and bounded.
    4. Drop readings whose scaled training variance is at most
       ``variance_threshold``.
    5. Drop a reading whose absolute Pearson correlation with an earlier kept
       reading exceeds ``correlation_threshold``.

    Args:
        window_length: rows per window; the window's label is its last row's.
        max_missing_fraction: in [0, 1); default 0.5.
        variance_threshold: on the [0, 1] scale; default 1e-4, a standard
            deviation of 1% of the training range.
        correlation_threshold: in (0, 1]; default 0.95.
        clip_margin: band beyond the training range, in units of that range;
            default 1.0, so scaled values lie in [-1, 2].
    """

    def __init__(
        self,
        window_length: int = DEFAULT_WINDOW_LENGTH,
        max_missing_fraction: float = 0.5,
        variance_threshold: float = 1e-4,
        correlation_threshold: float = 0.95,
        clip_margin: float = 1.0,
    ):
        self.window_length = window_length
        self.max_missing_fraction = max_missing_fraction
        self.variance_threshold = variance_threshold
        self.correlation_threshold = correlation_threshold
        self.clip_margin = clip_margin

    # -- fitting -------------------------------------------------------------

    def fit(self, X: np.ndarray, y: Any = None) -> SecomPreprocessor:
        """Learn the kept readings, fill values and scaling from training rows."""
        self._check_params()
        rows = _check_rows(X)

        missing_fraction = np.isnan(rows).mean(axis=0)
        candidates = np.flatnonzero(missing_fraction <= self.max_missing_fraction)
        filled = _fill_gaps(rows[:, candidates], np.nanmedian(rows[:, candidates], axis=0))
        scaled = self._clip(MinMaxScaler().fit_transform(filled))

        by_variance = VarianceThreshold(self.variance_threshold).fit(scaled).get_support(indices=True)
        by_correlation = _uncorrelated_columns(scaled[:, by_variance], self.correlation_threshold)
        selected = candidates[by_variance[by_correlation]]
        if selected.size == 0:
            raise ValueError(
                "no reading passed the missing, variance and correlation filters; "
                "relax max_missing_fraction, variance_threshold or correlation_threshold"
            )

        self.feature_indices_ = selected
        self.fill_values_ = np.nanmedian(rows[:, selected], axis=0)
        self.scaler_ = MinMaxScaler().fit(_fill_gaps(rows[:, selected], self.fill_values_))
        self.n_features_in_ = N_READINGS
        self.n_dropped_ = {
            "missing": int(N_READINGS - candidates.size),
            "low_variance": int(candidates.size - by_variance.size),
            "correlated": int(by_variance.size - by_correlation.size),
        }
        return self

    def _check_params(self) -> None:
        if not (isinstance(self.window_length, int) and self.window_length >= 1):
            raise ValueError(f"window_length must be a positive integer, got {self.window_length!r}")
        if not 0 <= self.max_missing_fraction < 1:
            raise ValueError(f"max_missing_fraction must be in [0, 1), got {self.max_missing_fraction}")
        if self.variance_threshold < 0:
            raise ValueError(f"variance_threshold must be >= 0, got {self.variance_threshold}")
        if not 0 < self.correlation_threshold <= 1:
            raise ValueError(f"correlation_threshold must be in (0, 1], got {self.correlation_threshold}")
        if self.clip_margin < 0:
            raise ValueError(f"clip_margin must be >= 0, got {self.clip_margin}")

    # -- transforming --------------------------------------------------------

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Map raw rows of shape (n_rows, 590) to features of shape (n_rows, n_features), float32.

        Gaps are forward-filled within the rows given, so a gap in the first
        row takes the training median.
        """
        self._check_fitted()
        rows = _check_rows(X)
        filled = _fill_gaps(rows[:, self.feature_indices_], self.fill_values_)
        return self._clip(self.scaler_.transform(filled)).astype(np.float32)

    def transform_windows(self, X: np.ndarray) -> np.ndarray:
        """Map raw rows to model input of shape (n_rows - window_length + 1, window_length, n_features)."""
        return make_windows(self.transform(X), self.window_length)

    def _clip(self, scaled: np.ndarray) -> np.ndarray:
        return np.clip(scaled, -self.clip_margin, 1.0 + self.clip_margin)

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_indices_"):
            raise NotFittedError(
                "This SecomPreprocessor is not fitted; call fit() on training rows or load a saved one first."
            )

    @property
    def n_features_out(self) -> int:
        self._check_fitted()
        return int(self.feature_indices_.size)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        self._check_fitted()
        return np.asarray([FEATURE_NAMES[i] for i in self.feature_indices_], dtype=object)

    # -- persistence ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Serialize parameters and fitted state to plain JSON types."""
        self._check_fitted()
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "params": self.get_params(),
            "n_readings": N_READINGS,
            "feature_indices": self.feature_indices_.tolist(),
            # repr round-trips float64 exactly, so a loaded preprocessor gives
            # bit-identical model input.
            "fill_values": [float(v) for v in self.fill_values_],
            "data_min": [float(v) for v in self.scaler_.data_min_],
            "data_max": [float(v) for v in self.scaler_.data_max_],
            "n_dropped": self.n_dropped_,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SecomPreprocessor:
        """Rebuild a fitted preprocessor from ``to_dict`` output.

        Raises:
            ValueError: the state is of another format or version, or inconsistent.
        """
        if state.get("format") != FORMAT_NAME or state.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported preprocessor state: format {state.get('format')!r} version "
                f"{state.get('version')!r}, expected {FORMAT_NAME!r} version {FORMAT_VERSION}"
            )
        if state.get("n_readings") != N_READINGS:
            raise ValueError(f"preprocessor state is for {state.get('n_readings')} readings, expected {N_READINGS}")
        preprocessor = cls(**state["params"])
        indices = np.asarray(state["feature_indices"], dtype=np.int64)
        data_min = np.asarray(state["data_min"], dtype=np.float64)
        data_max = np.asarray(state["data_max"], dtype=np.float64)
        fill_values = np.asarray(state["fill_values"], dtype=np.float64)
        if not (indices.size == data_min.size == data_max.size == fill_values.size > 0):
            raise ValueError("preprocessor state has feature_indices, fill_values, data_min and data_max of unequal length")
        preprocessor.feature_indices_ = indices
        preprocessor.fill_values_ = fill_values
        # Fitting on the two rows (min, max) reproduces the stored per-feature
        # range exactly, so scaling after loading is the scaling at training.
        preprocessor.scaler_ = MinMaxScaler().fit(np.vstack([data_min, data_max]))
        preprocessor.n_features_in_ = N_READINGS
        preprocessor.n_dropped_ = dict(state.get("n_dropped", {}))
        return preprocessor

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SecomPreprocessor:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_rows(X: np.ndarray) -> np.ndarray:
    rows = np.asarray(X, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != N_READINGS:
        raise ValueError(f"expected rows of {N_READINGS} readings, shape (n_rows, {N_READINGS}); got shape {rows.shape}")
    if np.isinf(rows).any():
        raise ValueError("rows contain infinite readings; use NaN for a missing reading")
    return rows


def _fill_gaps(rows: np.ndarray, fill_values: np.ndarray) -> np.ndarray:
    """Forward-fill each column down the rows, then fill what is left with ``fill_values``.

    Same result as pandas ``DataFrame.ffill().fillna(...)``, but in NumPy:
    pandas costs about 20 ms for 10 rows of 274 columns, which dominated a
    one-window request.
    """
    missing = np.isnan(rows)
    if not missing.any():
        return rows
    n_rows, n_columns = rows.shape
    # Each cell takes the value of the last row at or above it that has a
    # reading in its column. Where no such row exists, row 0 is used and the
    # cell stays NaN, so the fill value replaces it below.
    source_row = np.where(missing, 0, np.arange(n_rows)[:, None])
    np.maximum.accumulate(source_row, axis=0, out=source_row)
    filled = rows[source_row, np.arange(n_columns)]
    return np.where(np.isnan(filled), fill_values, filled)


def _uncorrelated_columns(scaled: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of columns kept by a greedy pass: a column is dropped when its
    absolute correlation with an already kept column exceeds ``threshold``."""
    if scaled.shape[1] <= 1:
        return np.arange(scaled.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.abs(np.corrcoef(scaled, rowvar=False))
    correlation = np.nan_to_num(correlation, nan=0.0)
    kept_columns: list[int] = []
    for column in range(scaled.shape[1]):
        if not kept_columns or correlation[column, kept_columns].max() <= threshold:
            kept_columns.append(column)
    return np.asarray(kept_columns, dtype=np.int64)
