"""The one ApplicationError family that services raise and the API maps to JSON errors."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure a caller can act on. `code` is stable and machine-readable; `message` is for people."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class ValidationFailed(ApplicationError):
    """Bad input. `details` maps field names to lists of messages, so the caller knows which field."""

    status_code = 400
    default_code = "validation_error"

    @classmethod
    def for_field(cls, field: str, message: str, *, code: str | None = None) -> ValidationFailed:
        return cls(f"{field}: {message}", code=code, details={field: [message]})


class NotFound(ApplicationError):
    """Missing, or belongs to another workspace: callers cannot tell the two apart."""

    status_code = 404
    default_code = "not_found"


class PermissionDenied(ApplicationError):
    status_code = 403
    default_code = "permission_denied"


class Conflict(ApplicationError):
    """The request is valid but the current state forbids it (activating an empty sequence, ...)."""

    status_code = 409
    default_code = "conflict"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    default_code = "payload_too_large"
