"""Maps every API failure to `{"error": {"code", "message", "details"}}` with the right status."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import ApplicationError

logger = logging.getLogger(__name__)


def _encodable(value: Any) -> Any:
    """Messages may quote the input; a lone surrogate in it cannot be encoded as UTF-8 and would turn a
    400 into a 500 while rendering, so it is replaced."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": _encodable(message), "details": _encodable(details)}}


def _first_message(details: Any, path: str = "") -> str:
    """A sentence that names the first failing field, e.g. `email: Enter a valid email address.`"""
    if isinstance(details, dict) and details:
        key, value = next(iter(details.items()))
        name = key if key != "non_field_errors" else ""
        return _first_message(value, f"{path}.{name}".strip(".") if name else path)
    if isinstance(details, list) and details:
        first = next((item for item in details if item), details[0])
        index = details.index(first)
        if isinstance(first, dict | list) and first:
            return _first_message(first, f"{path}[{index}]")
        return f"{path}: {first}" if path else str(first)
    return f"{path}: {details}" if path else str(details)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        details: Any = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(details)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    elif isinstance(exc, SuspiciousOperation):  # too many form fields or files: a bad request, not a crash
        return Response(error_body("bad_request", str(exc) or "Bad request."), status=status.HTTP_400_BAD_REQUEST)
    if not isinstance(exc, exceptions.APIException):
        return None  # Django's 500 handling (core.middleware turns it into JSON)

    auth_header, wait = getattr(exc, "auth_header", None), getattr(exc, "wait", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    if wait:
        headers["Retry-After"] = str(int(wait) + 1)
    set_rollback()

    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(
            error_body("validation_error", _first_message(details), details),
            status=exc.status_code,
            headers=headers,
        )
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    return Response(error_body(str(code), str(exc.detail)), status=exc.status_code, headers=headers)
