"""Request and response models of the prediction API.

Every check here runs before a request joins a batch, so one bad request
cannot fail the valid requests batched with it. Errors follow pydantic's
shape, which BentoML returns as HTTP 400::

    {"error": "1 validation error for PredictRequest",
     "detail": [{"type": "row_length", "loc": ["instances"], "msg": "row 3 has 589 readings, ..."}]}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
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
            "covers {minimum} consecutive lots, so send the {missing} lots before the first one too",
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


Reading = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Instances = Annotated[list[list[Reading | None]], WrapValidator(_check_instances)]
Timestamps = Annotated[list[datetime] | None, WrapValidator(_check_timestamp_values)]


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
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Decision threshold in [0, 1]; a window is flagged when its probability >= threshold. "
        "Default: the model's threshold, chosen on the validation period.",
    )
    timestamps: Timestamps = Field(
        default=None,
        description="Optional ISO 8601 timestamp of each row, one per row, non-decreasing (equal values allowed).",
    )

    @field_validator("timestamps", mode="after")
    @classmethod
    def _check_timestamps(cls, timestamps: list[datetime] | None, info: ValidationInfo) -> list[datetime] | None:
        instances = info.data.get("instances")
        if timestamps is None or instances is None:
            return timestamps
        if len(timestamps) != len(instances):
            raise PydanticCustomError(
                "timestamps_length",
                "timestamps has {count} values but instances has {rows} rows; send one timestamp per row or none",
                {"count": len(timestamps), "rows": len(instances)},
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
