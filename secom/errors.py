"""Errors raised by the secom package.

Request validation errors are pydantic errors (see ``secom.schemas``), which
BentoML returns as HTTP 400; these are for data, fitting and model loading.
"""

from __future__ import annotations

from http import HTTPStatus


class SecomError(Exception):
    """Base class of secom errors; ``status`` is the HTTP status a service returns for it."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR


class DataError(SecomError):
    """The SECOM archive is missing, damaged or not in the expected format."""


class NotFittedError(SecomError, ValueError):
    """A preprocessor was used before ``fit`` or before loading fitted state."""


class ModelLoadError(SecomError):
    """A stored model lacks a piece needed to serve it, or the piece is invalid."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
