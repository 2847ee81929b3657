"""Request and response models of the prediction API.

Every check here runs before a request joins a batch, so one bad request
cannot fail the valid requests batched with it. Errors follow pydantic's
shape, which BentoML returns as HTTP 400::

    {"error": "1 validation error for PredictRequest",
     "detail": [{"type": "row_length", "loc": ["instances"], "msg": "row 3 has 589 readings, ..."}]}
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

# Imported for its side effect: bentoml registers the pydantic schema that
# turns a multipart file upload into a ``Path`` field, which
# PredictArrayRequest relies on.
import bentoml  # noqa: F401
import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from secom.data import N_READINGS
from secom.preprocessing import DEFAULT_WINDOW_LENGTH

# One row of the example: readings 0-4 of the first SECOM row, then gaps.
_EXAMPLE_ROW: list[float | None] = [3030.93, 2564.0, 2187.7333, 1411.1265, 1.3602] + [None] * (N_READINGS - 5)

_READING_FIX = "send each reading as a JSON number, or null where the sensor value is missing"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, float):
        return f"the non-finite number {value}"
    return f"a JSON {type(value).__name__}"


def _check_instances(value: Any, handler: ValidatorFunctionWrapHandler) -> list[list[float | None]]:
    """Validate the nested readings in pydantic's core, then rewrite the first
    error as one message naming the row, the reading and the fix."""
    try:
        rows = handler(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        if len(loc) >= 2 and isinstance(loc[0], int):
            row, column = loc[0], loc[1]
            raise PydanticCustomError(
                "invalid_reading",
                "row {row}, reading {column}: {found} is not a valid reading; " + _READING_FIX,
                {"row": row, "column": column, "found": _describe(error.get("input"))},
            ) from None
        if len(loc) == 1 and isinstance(loc[0], int):
            raise PydanticCustomError(
                "invalid_row",
                "row {row} is not a list of readings; send each row as a JSON array of "
                f"{N_READINGS} numbers or nulls",
                {"row": loc[0]},
            ) from None
        raise PydanticCustomError(
            "invalid_instances",
            f"instances must be a JSON array of rows, each an array of {N_READINGS} numbers or nulls",
        ) from None

    for index, row in enumerate(rows):
        if len(row) != N_READINGS:
            raise PydanticCustomError(
                "row_length",
                "row {row} has {count} readings, expected {expected}; send all {expected} readings "
                "in the archive's order, with null for a missing one",
                {"row": index, "count": len(row), "expected": N_READINGS},
            )
    if len(rows) < DEFAULT_WINDOW_LENGTH:
        raise PydanticCustomError(
            "too_few_rows",
            "expected at least {minimum} rows of {readings} readings, got {count} rows; a window "
            "covers {minimum} consecutive lots, so send {missing} more earlier lots",
            {
                "minimum": DEFAULT_WINDOW_LENGTH,
                "readings": N_READINGS,
                "count": len(rows),
                "missing": DEFAULT_WINDOW_LENGTH - len(rows),
            },
        )
    return rows


def _check_timestamp_values(value: Any, handler: ValidatorFunctionWrapHandler) -> list[datetime] | None:
    try:
        return handler(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        if loc and isinstance(loc[0], int):
            raise PydanticCustomError(
                "invalid_timestamp",
                "timestamp of row {row}: {found} is not an ISO 8601 timestamp; send strings such as "
                "\"2008-07-19T11:55:00\" or \"2008-07-19T11:55:00+00:00\"",
                {"row": loc[0], "found": _describe(error.get("input"))},
            ) from None
        raise PydanticCustomError(
            "invalid_timestamps",
            "timestamps must be a JSON array of ISO 8601 strings, one per row, or omitted",
        ) from None


def check_timestamps(timestamps: list[datetime], n_rows: int, rows_field: str) -> list[datetime]:
    """Check that there is one timestamp per row, all with or all without a UTC offset, in time order."""
    if len(timestamps) != n_rows:
        raise PydanticCustomError(
            "timestamps_length",
            "timestamps has {count} values but {field} has {rows} rows; send one timestamp per row or none",
            {"count": len(timestamps), "field": rows_field, "rows": n_rows},
        )
    zones = {stamp.tzinfo is None for stamp in timestamps}
    if len(zones) > 1:
        raise PydanticCustomError(
            "timestamps_mixed_zones",
            "timestamps mix values with and without a UTC offset; give all of them an offset or none",
        )
    for row in range(1, len(timestamps)):
        if timestamps[row] < timestamps[row - 1]:
            raise PydanticCustomError(
                "timestamps_order",
                "timestamps are not in time order at row {row} ({current} is before {previous}); "
                "sort the rows by time before sending",
                {
                    "row": row,
                    "current": timestamps[row].isoformat(),
                    "previous": timestamps[row - 1].isoformat(),
                },
            )
    return timestamps


# The magic string at the start of every .npy file (NumPy format versions 1 to 3).
_NPY_MAGIC = b"\x93NUMPY"
_NPY_FIX = "save the rows with numpy.save(path, rows), rows a float array of shape (n_rows, {readings}) with NaN for a missing reading"


def _load_readings_file(path: Path) -> np.ndarray:
    """Read an uploaded .npy file as rows of readings, float64, NaN for a missing reading.

    Rejects anything that is not a 2-D array of real numbers with 590 columns
    and at least one window of rows, and any infinite reading.
    """
    fix = _NPY_FIX.format(readings=N_READINGS)
    with open(path, "rb") as upload:
        if upload.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise PydanticCustomError("invalid_npy", "readings is not a .npy file; " + fix)
        upload.seek(0)
        try:
            # allow_pickle=False rejects object arrays, which would unpickle client data.
            rows = np.lib.format.read_array(upload, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise PydanticCustomError(
                "invalid_npy", "readings is not a readable .npy file ({reason}); " + fix, {"reason": str(exc)[:200]}
            ) from None

    if rows.dtype.kind not in "fiu":
        raise PydanticCustomError(
            "invalid_dtype", "readings has dtype {dtype}, expected a float or integer dtype; " + fix, {"dtype": str(rows.dtype)}
        )
    if rows.ndim != 2 or rows.shape[1] != N_READINGS:
        raise PydanticCustomError(
            "readings_shape",
            "readings has shape {shape}, expected (n_rows, {readings}); send one row of {readings} readings per lot, "
            "in the archive's order",
            {"shape": str(rows.shape), "readings": N_READINGS},
        )
    if rows.shape[0] < DEFAULT_WINDOW_LENGTH:
        raise PydanticCustomError(
            "too_few_rows",
            "expected at least {minimum} rows of {readings} readings, got {count} rows; a window "
            "covers {minimum} consecutive lots, so send {missing} more earlier lots",
            {
                "minimum": DEFAULT_WINDOW_LENGTH,
                "readings": N_READINGS,
                "count": rows.shape[0],
                "missing": DEFAULT_WINDOW_LENGTH - rows.shape[0],
            },
        )
    rows = rows.astype(np.float64, copy=False)
    infinite = np.isinf(rows)
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise PydanticCustomError(
            "invalid_reading",
            "row {row}, reading {column}: {value} is not a valid reading; use NaN for a missing reading",
            {"row": row, "column": column, "value": str(rows[row, column])},
        )
    return rows


Reading = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Instances = Annotated[list[list[Reading | None]], WrapValidator(_check_instances)]
Timestamps = Annotated[
    list[datetime] | None,
    WrapValidator(_check_timestamp_values),
    Field(description="Optional ISO 8601 timestamp of each row, one per row, non-decreasing (equal values allowed)."),
]
_THRESHOLD_DESCRIPTION = (
    "Decision threshold in [0, 1]; a window is flagged when its probability >= threshold. "
    "Default: the model's threshold, chosen on the validation period."
)
# JSON sends a number, so strings and booleans are rejected; a multipart form
# (/predict_array) sends every field as text, so there "0.5" must parse.
Threshold = Annotated[float | None, Field(ge=0.0, le=1.0, strict=True, description=_THRESHOLD_DESCRIPTION)]
FormThreshold = Annotated[float | None, Field(ge=0.0, le=1.0, description=_THRESHOLD_DESCRIPTION)]


class PredictRequest(BaseModel):
    """Consecutive wafer lots in time order, one row of 590 sensor readings per lot."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"instances": [_EXAMPLE_ROW] * DEFAULT_WINDOW_LENGTH, "threshold": 0.5}},
    )

    instances: Instances = Field(
        description=(
            f"Rows in time order, at least {DEFAULT_WINDOW_LENGTH}; each row has {N_READINGS} readings "
            "(numbers, or null for a missing reading) in the order of the UCI secom.data columns."
        ),
    )
    threshold: Threshold = None
    timestamps: Timestamps = None

    @field_validator("timestamps", mode="after")
    @classmethod
    def _check_timestamps(cls, timestamps: list[datetime] | None, info: ValidationInfo) -> list[datetime] | None:
        instances = info.data.get("instances")
        if timestamps is None or instances is None:
            return timestamps
        return check_timestamps(timestamps, len(instances), "instances")


class PredictArrayRequest(BaseModel):
    """Consecutive wafer lots as one .npy upload, for bulk scoring without JSON decoding.

    ``readings`` arrives as a file (multipart/form-data, as
    ``bentoml.SyncHTTPClient`` sends a ``Path`` argument) and leaves validation
    as a float64 array of shape (n_rows, 590).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    readings: Annotated[Path, AfterValidator(_load_readings_file)] = Field(
        description=(
            f"A .npy file (numpy.save) of shape (n_rows, {N_READINGS}), n_rows >= {DEFAULT_WINDOW_LENGTH}, float or "
            "integer dtype, rows in time order, columns in the order of the UCI secom.data columns. NaN marks a "
            "missing reading; an infinite reading is rejected."
        ),
    )
    threshold: FormThreshold = None
    timestamps: Timestamps = None

    @field_validator("timestamps", mode="after")
    @classmethod
    def _check_timestamps(cls, timestamps: list[datetime] | None, info: ValidationInfo) -> list[datetime] | None:
        readings = info.data.get("readings")
        if timestamps is None or readings is None:
            return timestamps
        return check_timestamps(timestamps, len(readings), "readings")


class WindowPrediction(BaseModel):
    """The failure probability of the window that ends at one row."""

    window_end_index: int = Field(description="Row index (0-based, in the request) of the window's last lot.")
    timestamp: str | None = Field(description="ISO 8601 timestamp of that row, when timestamps were sent.")
    probability: float = Field(description="Probability that the window's last lot fails the line test.")
    is_anomaly: bool = Field(description="probability >= threshold.")


class PredictResponse(BaseModel):
    model_tag: str = Field(description="Tag of the model in the BentoML model store that scored the request.")
    threshold: float = Field(description="The decision threshold applied.")
    feature_names: list[str] = Field(description="Names of the 590 input readings, in request order.")
    predictions: list[WindowPrediction] = Field(description="One entry per window, ending at rows 9 .. n-1.")
