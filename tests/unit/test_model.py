"""LSTM variants and seed ensembles: build, train briefly, save and load as one safe Keras file."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from secom.model import LSTMConfig, WindowScorer, average_models, build_lstm, train_ensemble


def _windows(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 4 == 0).astype(int)
    windows = rng.normal(size=(n, 5, 3)).astype(np.float32)
    return windows, labels


@pytest.mark.parametrize(
    "config",
    [LSTMConfig(units=4), LSTMConfig(units=4, dropout=0.2, recurrent_dropout=0.2, l2=1e-3), LSTMConfig(units=4, loss="focal")],
)
def test_variants_build_with_expected_shape(config):
    model = build_lstm(5, 3, config=config)
    assert model.input_shape == (None, 5, 3)
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize(
    "values, message",
    [({"units": 0}, "units"), ({"dropout": 1.0}, "dropout"), ({"loss": "hinge"}, "loss"), ({"n_seeds": 0}, "n_seeds")],
)
def test_invalid_config_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        LSTMConfig(**values)


def test_ensemble_averages_members():
    members = [build_lstm(5, 3, config=LSTMConfig(units=2), name=f"member_{i}") for i in range(3)]
    ensemble = average_models(members)
    windows, _ = _windows(8)
    expected = np.mean([member(windows, training=False) for member in members], axis=0)
    np.testing.assert_allclose(ensemble(windows, training=False), expected, rtol=1e-5, atol=1e-6)


def test_ensemble_saves_and_loads_in_safe_mode(tmp_path):
    x, y = _windows()
    config = LSTMConfig(units=3, loss="focal", n_seeds=2)
    model, record = train_ensemble(x, y, x, y, config=config, seed=5, epochs=1, patience=None)
    assert len(record["members"]) == 2
    assert record["members"][0]["early_stopping"] is False
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    assert loaded.output_shape == (None, 1)
    probabilities = WindowScorer(loaded)(x)
    assert probabilities.shape == (len(x),)
    np.testing.assert_allclose(probabilities, WindowScorer(model)(x), rtol=1e-5, atol=1e-6)
