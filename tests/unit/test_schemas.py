"""PredictRequest validation in process: every bad input names the field, the row and the fix."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from secom.data import N_READINGS
from secom.schemas import PredictRequest

ROW = [1.0] * N_READINGS


def _rows(n: int = 10) -> list[list[float | None]]:
    return [list(ROW) for _ in range(n)]


def _error(body: dict) -> dict:
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate_json(json.dumps(body))
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]


def test_valid_request_with_nulls():
    rows = _rows()
    rows[0][5] = None
    request = PredictRequest.model_validate_json(json.dumps({"instances": rows, "threshold": 0.3}))
    assert request.instances[0][5] is None
    assert request.threshold == 0.3


def test_integers_accepted_as_readings():
    rows = [[1] * N_READINGS for _ in range(10)]
    request = PredictRequest.model_validate_json(json.dumps({"instances": rows}))
    assert request.instances[0][0] == 1.0


def test_too_few_rows():
    error = _error({"instances": _rows(9)})
    assert error["type"] == "too_few_rows"
    assert error["loc"] == ("instances",)
    assert "at least 10 rows of 590 readings, got 9 rows" in error["msg"]


def test_short_row_named():
    rows = _rows()
    rows[4] = rows[4][:589]
    error = _error({"instances": rows})
    assert error["type"] == "row_length"
    assert "row 4 has 589 readings, expected 590" in error["msg"]


@pytest.mark.parametrize("value", ["abc", "1.5", True, [1], {"a": 1}])
def test_non_number_reading(value):
    rows = _rows()
    rows[3][17] = value
    error = _error({"instances": rows})
    assert error["type"] == "invalid_reading"
    assert "row 3, reading 17" in error["msg"]
    assert "null where the sensor value is missing" in error["msg"]


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_reading(literal):
    body = json.dumps({"instances": _rows()}).replace("1.0", literal, 1)
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate_json(body)
    error = caught.value.errors()[0]
    assert error["type"] == "invalid_reading"
    assert "row 0, reading 0" in error["msg"]


def test_row_not_a_list():
    rows: list = _rows()
    rows[2] = 5
    error = _error({"instances": rows})
    assert error["type"] == "invalid_row"
    assert "row 2" in error["msg"]


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_out_of_range(threshold):
    error = _error({"instances": _rows(), "threshold": threshold})
    assert error["loc"] == ("threshold",)


def test_timestamps_wrong_count():
    error = _error({"instances": _rows(), "timestamps": ["2008-07-19T11:55:00"] * 9})
    assert error["type"] == "timestamps_length"
    assert "9 values but instances has 10 rows" in error["msg"]


def test_timestamp_unparsable():
    stamps = ["2008-07-19T11:55:00"] * 10
    stamps[6] = "19/07/2008 11:55:00"
    error = _error({"instances": _rows(), "timestamps": stamps})
    assert error["type"] == "invalid_timestamp"
    assert "row 6" in error["msg"]


def test_timestamps_out_of_order():
    stamps = [f"2008-07-19T11:{minute:02d}:00" for minute in range(10)]
    stamps[7], stamps[8] = stamps[8], stamps[7]
    error = _error({"instances": _rows(), "timestamps": stamps})
    assert error["type"] == "timestamps_order"
    assert "row 8" in error["msg"]


def test_equal_timestamps_valid():
    request = PredictRequest.model_validate_json(
        json.dumps({"instances": _rows(), "timestamps": ["2008-07-19T11:55:00"] * 10})
    )
    assert len(request.timestamps) == 10


def test_mixed_offsets_rejected():
    stamps = ["2008-07-19T11:55:00"] * 9 + ["2008-07-19T11:56:00+00:00"]
    error = _error({"instances": _rows(), "timestamps": stamps})
    assert error["type"] == "timestamps_mixed_zones"


def test_unknown_field_rejected():
    error = _error({"instances": _rows(), "treshold": 0.5})
    assert error["loc"] == ("treshold",)


@pytest.mark.parametrize("threshold", [True, "0.5"])
def test_threshold_not_a_number(threshold):
    error = _error({"instances": _rows(), "threshold": threshold})
    assert error["loc"] == ("threshold",)
