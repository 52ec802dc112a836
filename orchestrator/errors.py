"""Errors the worker API's logic raises; the gRPC layer maps each to its status code."""
from __future__ import annotations


class ApiError(Exception):
    """Base: a request refused with a reason the caller may read. Nothing was changed."""

    status = "UNKNOWN"


class InvalidArgument(ApiError):
    status = "INVALID_ARGUMENT"


class Unauthenticated(ApiError):
    status = "UNAUTHENTICATED"


class PermissionDenied(ApiError):
    status = "PERMISSION_DENIED"


class NotFound(ApiError):
    status = "NOT_FOUND"


class FailedPrecondition(ApiError):
    status = "FAILED_PRECONDITION"


class ResourceExhausted(ApiError):
    status = "RESOURCE_EXHAUSTED"


class Unavailable(ApiError):
    """The chain cannot be reached right now; the caller may retry."""

    status = "UNAVAILABLE"
