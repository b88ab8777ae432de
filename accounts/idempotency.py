"""`Idempotency-Key` for creating POSTs: a retry with the same key replays the first answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import ApiKeyUser
from accounts.models import IdempotencyRecord, Workspace
from core.errors import Conflict, ValidationFailed

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)


def _principal(request: Request) -> str:
    if isinstance(request.user, ApiKeyUser):
        return f"key:{request.user.api_key.pk}"
    return f"user:{request.user.pk}"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent_response(*, workspace: Workspace, request: Request, run: Callable[[], Response]) -> Response:
    """Run `run` once per (caller, key); a retry gets the stored response, a different body 409."""
    key = (request.headers.get(HEADER) or "").strip()
    if not key:
        return run()
    if len(key) > 255:
        raise ValidationFailed.for_field(HEADER, "Must be at most 255 characters.")
    principal, fingerprint = _principal(request), _fingerprint(request)
    lookup = {"workspace": workspace, "principal": principal, "key": key}
    record = IdempotencyRecord.objects.filter(**lookup, created_at__gte=timezone.now() - RETENTION).first()
    if record is None:
        IdempotencyRecord.objects.filter(**lookup).delete()  # an expired one
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(**lookup, request_fingerprint=fingerprint)
        except IntegrityError:
            raise Conflict("A request with this Idempotency-Key is in progress.", code="idempotency_in_progress")
        try:
            response = run()
        except BaseException:
            record.delete()  # nothing was created: let the caller retry with the same key
            raise
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            record.delete()
            return response
        record.response_status = response.status_code
        record.response_body = json.loads(JSONRenderer().render(response.data) or b"null")
        record.save(update_fields=["response_status", "response_body"])
        return response
    if record.request_fingerprint != fingerprint:
        raise Conflict("This Idempotency-Key was used with a different request.", code="idempotency_key_reused")
    if record.response_status is None:
        raise Conflict("A request with this Idempotency-Key is in progress.", code="idempotency_in_progress")
    return Response(record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"})


def idempotent(method: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a creating view method of a WorkspaceScopedMixin view."""

    @wraps(method)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        return idempotent_response(
            workspace=self.workspace, request=request, run=lambda: method(self, request, *args, **kwargs)
        )

    return wrapper


def idempotency_records_purge() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - RETENTION).delete()
    return deleted
