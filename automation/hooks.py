"""The public inbound workflow hook: `POST /hooks/<token>` upserts a subscriber and starts a run.

Thin view: rate-limit by IP, refuse large bodies, resolve the token (the workflow's `hook_token` is the
capability), decode JSON, call one service (automation.triggers.workflow_hook_receive), answer JSON.
Not part of the API schema (like /subscribe/<token>); documented in docs/api.md.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_ratelimit.decorators import ratelimit

from automation.triggers import workflow_for_hook_token, workflow_hook_receive
from core.api.exceptions import error_body
from core.errors import NotFound, ValidationFailed
from sequences.views import _rate

# A hook carries one subscriber and a few properties: 64 KiB is generous, and it bounds what a caller
# can make the server parse and store.
HOOK_MAX_BYTES = 64 * 1024


def _error(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


@never_cache
@csrf_exempt  # called server to server; the token in the URL is the credential, there is no session
@require_POST
@ratelimit(group="workflow-hook", key="ip", rate=_rate("WORKFLOW_HOOK_RATE_LIMIT"), method="POST", block=False)
def workflow_hook(request: HttpRequest, token: str) -> JsonResponse:
    """POST a JSON object {"email", "first_name", "attributes", "properties", "dedupe_key"}: 202
    {"run_id", "outcome"}; 404 for an unknown token or a workflow that cannot take hooks."""
    if getattr(request, "limited", False):
        response = _error(429, "throttled", "Too many requests.")
        response["Retry-After"] = "60"
        return response
    length = _declared_length(request)
    if length is None or length > HOOK_MAX_BYTES:
        return _error(413, "payload_too_large", f"The body must be at most {HOOK_MAX_BYTES} bytes.")
    try:
        workflow = workflow_for_hook_token(token=token)
    except NotFound:
        return _error(404, "not_found", "Not found.")
    body = request.body
    if len(body) > HOOK_MAX_BYTES:  # a chunked body declares no length
        return _error(413, "payload_too_large", f"The body must be at most {HOOK_MAX_BYTES} bytes.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        return _error(400, "invalid_json", "body: Must be JSON.", {"body": ["Must be JSON."]})
    try:
        start = workflow_hook_receive(workflow=workflow, payload=payload)
    except ValidationFailed as error:
        return _error(400, error.code, error.message, error.details)
    return JsonResponse({"run_id": start.run.pk if start.run else None, "outcome": start.outcome}, status=202)
