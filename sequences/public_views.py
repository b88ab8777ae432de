"""Public double opt-in pages: the subscribe form (`/subscribe/<list token>`) and the confirmation link
(`/confirm/<token>`).

Thin views: rate-limit by IP, resolve the signed token, call one service (sequences.optin), answer.
A forged token answers 404. The subscribe form is posted from other sites: it is CSRF-exempt, has a
honeypot field, answers JSON to `Accept: application/json` (with `Access-Control-Allow-Origin: *`,
so a page's script can read the answer), and answers alike whether or not an address was known.
The confirmation page only confirms on POST (its button), so link scanners that GET it confirm nothing.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from core.api.exceptions import error_body
from core.errors import NotFound, ValidationFailed
from sequences.optin import (
    optin_confirm,
    optin_confirmation_for_token,
    optin_list_for_token,
    optin_subscribe,
)
from sequences.views import _rate, _too_many_requests
from subscribers.models import MailingList, SubscriberStatus

HONEYPOT_FIELD = "website"
FORM_FIELDS = ("email", "first_name", "last_name")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _client_ip(request: HttpRequest) -> str | None:
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _json_error(status: int, code: str, message: str, details: Any = None) -> HttpResponse:
    return _cors(JsonResponse(error_body(code, message, details), status=status))


def _done_message(mailing_list: MailingList) -> str:
    if mailing_list.double_opt_in:
        return "Almost done: check your inbox and click the link in the email we sent to confirm."
    return "Thank you: you're subscribed."


def _form_page(
    request: HttpRequest,
    mailing_list: MailingList,
    *,
    status: int = 200,
    done: bool = False,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> HttpResponse:
    context = {
        "app_name": settings.APP_NAME,
        "workspace_name": mailing_list.workspace.name,
        "list_name": mailing_list.name,
        "list_description": mailing_list.description,
        "done": done,
        "done_message": _done_message(mailing_list),
        "values": values or {},
        "errors": errors or {},
        "honeypot": HONEYPOT_FIELD,
        "form_action": request.path,
    }
    return render(request, "sequences/subscribe.html", context, status=status)


def _submitted(request: HttpRequest) -> dict[str, Any] | None:
    """The posted fields: a form body, or a JSON object. None when a JSON body is not an object."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None
    return {name: request.POST.get(name, "") for name in (*FORM_FIELDS, HONEYPOT_FIELD) if name in request.POST}


def _subscribed(request: HttpRequest, mailing_list: MailingList) -> HttpResponse:
    if _wants_json(request):
        body = {"confirmation_required": mailing_list.double_opt_in, "message": _done_message(mailing_list)}
        return _cors(JsonResponse(body))
    return _form_page(request, mailing_list, done=True)


@never_cache
@csrf_exempt  # posted from other sites' forms; it changes nothing a forged request could abuse beyond a signup
@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit(group="optin-subscribe-page", key="ip", rate=_rate("TRACKING_RATE_LIMIT"), method=["GET", "HEAD"],
           block=False)  # fmt: skip
@ratelimit(group="optin-subscribe", key="ip", rate=_rate("OPTIN_SUBSCRIBE_RATE_LIMIT"), method="POST", block=False)
def subscribe(request: HttpRequest, token: str) -> HttpResponse:
    """/subscribe/<token>: GET shows a minimal form; POST `email` (+ `first_name`, `last_name`) subscribes."""
    wants_json = _wants_json(request)
    if getattr(request, "limited", False):
        if wants_json:
            response = _json_error(429, "throttled", "Too many requests.")
            response["Retry-After"] = "60"
            return response
        return _too_many_requests()
    try:
        mailing_list = optin_list_for_token(token=token)
    except NotFound:
        if wants_json:
            return _json_error(404, "not_found", "Not found.")
        raise Http404
    if request.method != "POST":
        return _form_page(request, mailing_list)
    data = _submitted(request)
    if data is None:
        return _json_error(
            400, "validation_error", "body: Must be a JSON object.", {"body": ["Must be a JSON object."]}
        )
    if data.get(HONEYPOT_FIELD):  # a bot filled the hidden field: answer as usual, do nothing
        return _subscribed(request, mailing_list)
    try:
        optin_subscribe(mailing_list=mailing_list, data=data, ip=_client_ip(request))
    except ValidationFailed as error:
        if wants_json:
            return _json_error(400, error.code, error.message, error.details)
        details = error.details if isinstance(error.details, dict) else {}
        errors = {field: str(messages[0]) for field, messages in details.items() if messages}
        values = {name: str(data.get(name, "")) for name in FORM_FIELDS}
        return _form_page(request, mailing_list, status=400, values=values, errors=errors)
    return _subscribed(request, mailing_list)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit(group="optin-confirm-page", key="ip", rate=_rate("TRACKING_RATE_LIMIT"), method=["GET", "HEAD"],
           block=False)  # fmt: skip
@ratelimit(group="optin-confirm", key="ip", rate=_rate("TRACKING_RATE_LIMIT_UNSUBSCRIBE"), method="POST", block=False)
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """/confirm/<token>: GET shows the page with its button; POST (the button, CSRF-protected) confirms."""
    if getattr(request, "limited", False):
        return _too_many_requests()
    try:
        confirmation = optin_confirmation_for_token(token=token)
    except NotFound:
        raise Http404
    subscriber = confirmation.subscriber
    inactive = subscriber.status != SubscriberStatus.ACTIVE
    confirmed = False
    if request.method == "POST" and not inactive:
        subscriber = optin_confirm(confirmation=confirmation, ip=_client_ip(request))
        confirmed = True
    context = {
        "app_name": settings.APP_NAME,
        "workspace_name": subscriber.workspace.name,
        "email": subscriber.email,
        "list_name": confirmation.mailing_list.name if confirmation.mailing_list else "",
        "confirmed": confirmed,
        "inactive": inactive,
        "form_action": request.path,
    }
    return render(request, "sequences/confirm.html", context)
