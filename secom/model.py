"""The Keras 3 LSTM classifier, its variants and seed ensembles, and its compiled inference call."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

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
# Largest batch of windows in one compiled call; larger inputs are split.
DEFAULT_MAX_BATCH_WINDOWS = 1024
DEFAULT_PATIENCE = 10
LOSSES = ("class_weight", "focal")


@dataclass(frozen=True)
class LSTMConfig:
    """Hyperparameters of one LSTM variant.

    Attributes:
        units: LSTM units.
        dropout: fraction of the inputs dropped at each step, in [0, 1).
        recurrent_dropout: fraction of the recurrent state dropped, in [0, 1).
        l2: L2 penalty on the LSTM and output kernels (0 for none).
        loss: ``class_weight`` (binary cross-entropy with balanced class
            weights) or ``focal`` (``keras.losses.BinaryFocalCrossentropy``
            with class balancing, no class weights).
        focal_gamma: focusing parameter of the focal loss.
        focal_alpha: weight of the failure class in the focal loss, in (0, 1).
        learning_rate: Adam learning rate.
        n_seeds: members of the ensemble; their probabilities are averaged.
    """

    units: int = DEFAULT_UNITS
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    l2: float = 0.0
    loss: str = "class_weight"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.75
    learning_rate: float = 1e-3
    n_seeds: int = 1

    def __post_init__(self) -> None:
        if self.units < 1:
            raise ValueError(f"units must be >= 1, got {self.units}")
        if not (0 <= self.dropout < 1 and 0 <= self.recurrent_dropout < 1):
            raise ValueError(f"dropout and recurrent_dropout must be in [0, 1), got {self.dropout}, {self.recurrent_dropout}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0 < self.focal_alpha < 1:
            raise ValueError(f"focal_alpha must be in (0, 1), got {self.focal_alpha}")
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LSTMConfig:
        """Build a config from ``asdict`` output, rejecting unknown keys."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown LSTM config keys {unknown}; expected a subset of {[f.name for f in fields(cls)]}")
        return cls(**values)


def build_lstm(
    window_length: int,
    n_features: int,
    *,
    units: int = DEFAULT_UNITS,
    learning_rate: float = 1e-3,
    config: LSTMConfig | None = None,
    name: str = "secom_lstm",
) -> keras.Model:
    """Build and compile an LSTM over (window_length, n_features) windows with a sigmoid output.

    ``config``, when given, overrides ``units`` and ``learning_rate``.
    """
    config = config or LSTMConfig(units=units, learning_rate=learning_rate)
    regularizer = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    model = keras.Sequential(
        [
            keras.Input(shape=(window_length, n_features), name="window"),
            keras.layers.LSTM(
                config.units,
                dropout=config.dropout,
                recurrent_dropout=config.recurrent_dropout,
                kernel_regularizer=regularizer,
                recurrent_regularizer=regularizer,
                name="lstm",
            ),
            keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=regularizer, name="fail_probability"),
        ],
        name=name,
    )
    if config.loss == "focal":
        loss = keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=config.focal_alpha, gamma=config.focal_gamma
        )
    else:
        loss = keras.losses.BinaryCrossentropy()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=loss,
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
    patience: int | None = DEFAULT_PATIENCE,
    config: LSTMConfig | None = None,
    name: str = "secom_lstm",
    verbose: int = 2,
) -> tuple[keras.Model, dict[str, object]]:
    """Train one network, with early stopping on validation ROC-AUC unless ``patience`` is None.

    Without early stopping the network trains for exactly ``epochs`` epochs
    and the validation windows are only monitored.

    ``config`` (default: ``units`` with the other defaults of ``LSTMConfig``)
    sets the architecture and loss; ``config.n_seeds`` is ignored here, see
    ``train_ensemble``. The class-weighted loss uses balanced class weights.

    Returns:
        The model with the weights of its best validation epoch, and a record
        of the training run (epochs run, best epoch, class weights).
    """
    config = config or LSTMConfig(units=units)
    keras.utils.set_random_seed(seed)
    model = build_lstm(x_train.shape[1], x_train.shape[2], config=config, name=name)
    class_weight = balanced_class_weight(y_train) if config.loss == "class_weight" else None
    callbacks = []
    if patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_roc_auc", mode="max", patience=patience, restore_best_weights=True)
        )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=True,
        verbose=verbose,
    )
    val_auc = history.history["val_roc_auc"]
    record = {
        "epochs_run": len(val_auc),
        "best_epoch": int(np.argmax(val_auc)) + 1,
        "early_stopping": patience is not None,
        "best_val_roc_auc_keras": float(np.max(val_auc)),
        "class_weight": None if class_weight is None else {str(k): v for k, v in class_weight.items()},
        "units": config.units,
        "batch_size": batch_size,
        "max_epochs": epochs,
        "patience": patience,
        "seed": seed,
    }
    return model, record


def train_ensemble(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    config: LSTMConfig,
    seed: int,
    epochs: int = DEFAULT_EPOCHS,
    patience: int | None = DEFAULT_PATIENCE,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, object]]:
    """Train ``config.n_seeds`` networks (seeds ``seed``, ``seed + 1``, ...) and average them.

    With one seed the network itself is returned. Otherwise the result is one
    functional model whose output is the mean of the members' probabilities,
    so it is saved as one ``.keras`` file, loads with ``safe_mode=True`` and
    maps windows (N, window_length, n_features) to probabilities (N, 1).
    """
    members = []
    records = []
    for offset in range(config.n_seeds):
        member, record = train_lstm(
            x_train,
            y_train,
            x_val,
            y_val,
            seed=seed + offset,
            epochs=epochs,
            patience=patience,
            config=config,
            name=f"secom_lstm_seed_{seed + offset}",
            verbose=verbose,
        )
        members.append(member)
        records.append(record)
    if len(members) == 1:
        model = members[0]
    else:
        model = average_models(members)
    return model, {"config": asdict(config), "members": records}


def average_models(members: list[keras.Model]) -> keras.Model:
    """Combine models with the same input shape into one model returning their mean output."""
    _, window_length, n_features = members[0].input_shape
    windows = keras.Input(shape=(window_length, n_features), name="window")
    outputs = [member(windows) for member in members]
    mean = keras.layers.Average(name="fail_probability_mean")(outputs)
    return keras.Model(windows, mean, name="secom_lstm_ensemble")


class WindowScorer:
    """A compiled inference call: windows (N, window_length, n_features) to probabilities (N,).

    ``keras.Model.predict`` builds a data pipeline on every call (about 50 ms
    for one window on 2 CPU cores). This class compiles the model once with
    XLA instead. On the 2-core machine behind docs/benchmarks.md, with one
    TensorFlow thread, one window of the 3-member ensemble took about 2 ms this
    way against 5 ms with a plain ``tf.function``.

    XLA compiles one program per input shape, so batches are padded with
    zero windows up to the next power of two and split above
    ``max_batch_windows``: at most log2(max_batch_windows) + 1 programs,
    which ``warm_up`` compiles ahead of the first request (about 0.8 s each).
    """

    def __init__(self, model: keras.Model, *, max_batch_windows: int = DEFAULT_MAX_BATCH_WINDOWS):
        if max_batch_windows < 1 or max_batch_windows & (max_batch_windows - 1):
            raise ValueError(f"max_batch_windows must be a power of two, got {max_batch_windows}")
        self.model = model
        self.max_batch_windows = max_batch_windows
        _, self.window_length, self.n_features = model.input_shape
        spec = tf.TensorSpec(shape=(None, self.window_length, self.n_features), dtype=tf.float32)
        self._call = tf.function(_inference(model), input_signature=[spec], jit_compile=True)

    def warm_up(self) -> None:
        """Compile the program of every padded batch size, so no request waits for XLA."""
        size = 1
        while size <= self.max_batch_windows:
            self._call(np.zeros((size, self.window_length, self.n_features), dtype=np.float32))
            size *= 2

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != (self.window_length, self.n_features):
            raise ValueError(
                f"expected windows of shape (N, {self.window_length}, {self.n_features}), got {windows.shape}"
            )
        parts = [
            self._score_padded(windows[start : start + self.max_batch_windows])
            for start in range(0, len(windows), self.max_batch_windows)
        ]
        return np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float64)

    def _score_padded(self, windows: np.ndarray) -> np.ndarray:
        n_windows = len(windows)
        padded_size = 1 << (n_windows - 1).bit_length()
        if padded_size != n_windows:
            padding = np.zeros((padded_size - n_windows, *windows.shape[1:]), dtype=np.float32)
            windows = np.concatenate([windows, padding])
        return self._call(windows).numpy().reshape(-1)[:n_windows].astype(np.float64)


def _inference(model: keras.Model):
    # A named function rather than a lambda, so AutoGraph can read its source.
    def infer(windows: tf.Tensor) -> tf.Tensor:
        return model(windows, training=False)

    return infer
