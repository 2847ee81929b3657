"""The Keras 3 LSTM classifier and its compiled inference call."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_UNITS = 50
DEFAULT_BATCH_SIZE = 32
DEFAULT_EPOCHS = 60
# Validation has only about 20 failing windows, so the ROC-AUC curve is noisy:
# wait this many epochs without improvement before stopping.
DEFAULT_PATIENCE = 10


def build_lstm(window_length: int, n_features: int, *, units: int = DEFAULT_UNITS, learning_rate: float = 1e-3) -> keras.Model:
    """Build an LSTM over (window_length, n_features) windows with a sigmoid output."""
    model = keras.Sequential(
        [
            keras.Input(shape=(window_length, n_features), name="window"),
            keras.layers.LSTM(units, name="lstm"),
            keras.layers.Dense(1, activation="sigmoid", name="fail_probability"),
        ],
        name="secom_lstm",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="roc_auc"), keras.metrics.AUC(curve="PR", name="pr_auc")],
    )
    return model


def balanced_class_weight(labels: np.ndarray) -> dict[int, float]:
    """Weight each class by n_samples / (2 * n_class), as scikit-learn's ``balanced``."""
    classes = np.array([0, 1])
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def train_lstm(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    epochs: int = DEFAULT_EPOCHS,
    units: int = DEFAULT_UNITS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    patience: int = DEFAULT_PATIENCE,
    verbose: int = 2,
) -> tuple[keras.Model, dict[str, object]]:
    """Train with balanced class weights and early stopping on validation ROC-AUC.

    Returns:
        The model with the weights of its best validation epoch, and a record
        of the training run (epochs run, best epoch, class weights).
    """
    keras.utils.set_random_seed(seed)
    model = build_lstm(x_train.shape[1], x_train.shape[2], units=units)
    class_weight = balanced_class_weight(y_train)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_roc_auc", mode="max", patience=patience, restore_best_weights=True
    )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        callbacks=[stopper],
        shuffle=True,
        verbose=verbose,
    )
    val_auc = history.history["val_roc_auc"]
    record = {
        "epochs_run": len(val_auc),
        "best_epoch": int(np.argmax(val_auc)) + 1,
        "best_val_roc_auc_keras": float(np.max(val_auc)),
        "class_weight": {str(k): v for k, v in class_weight.items()},
        "units": units,
        "batch_size": batch_size,
        "max_epochs": epochs,
        "patience": patience,
        "seed": seed,
    }
    return model, record


class WindowScorer:
    """A compiled inference call: windows (N, window_length, n_features) to probabilities (N,).

    ``keras.Model.predict`` builds a data pipeline on every call (about 50 ms
    for one window on 2 CPU cores); a ``tf.function`` with a fixed input
    signature traces once and then costs well under a millisecond per call.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        _, self.window_length, self.n_features = model.input_shape
        spec = tf.TensorSpec(shape=(None, self.window_length, self.n_features), dtype=tf.float32)
        self._call = tf.function(lambda windows: model(windows, training=False), input_signature=[spec])

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != (self.window_length, self.n_features):
            raise ValueError(
                f"expected windows of shape (N, {self.window_length}, {self.n_features}), got {windows.shape}"
            )
        if len(windows) == 0:
            return np.zeros((0,), dtype=np.float64)
        return self._call(windows).numpy().reshape(-1).astype(np.float64)
