"""Public endpoints that emails link to: the open pixel, the click redirect, the unsubscribe page.

Thin views: rate-limit by IP, resolve the signed token (sequences.tracking), call one service, answer.
A forged or malformed token answers 404 with the same body as any other 404 (the pixel: the same GIF
with status 404, so a mail client still shows nothing).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_safe
from django_ratelimit.decorators import ratelimit

from core.errors import NotFound
from sequences.models import Message
from sequences.tokens import TokenPurpose
from sequences.tracking import (
    SOURCE_ONE_CLICK,
    SOURCE_PREFERENCE_CENTER,
    message_click_record,
    message_get_for_token,
    message_link_get,
    message_list_choices,
    message_open_record,
    message_preferences_update,
    message_subscriber_unsubscribe,
)
from subscribers.models import SubscriberStatus

# A 1x1 transparent GIF (42 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"  # RFC 8058


def _rate(setting: str) -> Callable[[str, HttpRequest], str]:
    """The rate, read from settings on each request (never at import time)."""
    return lambda group, request: getattr(settings, setting)


def _too_many_requests() -> HttpResponse:
    response = HttpResponse("Too many requests.\n", status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = "60"
    return response


def _pixel(status: int = 200) -> HttpResponse:
    return HttpResponse(PIXEL_GIF, status=status, content_type="image/gif")


@never_cache
@require_safe
@ratelimit(group="tracking-open", key="ip", rate=_rate("TRACKING_RATE_LIMIT"), block=False)
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    """GET /t/o/<token>: record the open, answer a transparent 1x1 GIF (404 with the GIF when forged)."""
    if getattr(request, "limited", False):
        return _too_many_requests()
    try:
        message, _ = message_get_for_token(purpose=TokenPurpose.OPEN, token=token)
    except NotFound:
        return _pixel(status=404)
    if request.method == "GET":  # a HEAD is a probe, not an open
        message_open_record(message=message, user_agent=request.META.get("HTTP_USER_AGENT", ""))
    return _pixel()


@never_cache
@require_safe
@ratelimit(group="tracking-click", key="ip", rate=_rate("TRACKING_RATE_LIMIT"), block=False)
def click_redirect(request: HttpRequest, token: str) -> HttpResponse:
    """GET /t/c/<token>: record the click and redirect (302) to that link of that message, nowhere else.

    The target comes only from the message's stored links by the token's index; the query string is
    ignored."""
    if getattr(request, "limited", False):
        return _too_many_requests()
    try:
        message, link_index = message_get_for_token(purpose=TokenPurpose.CLICK, token=token)
        if request.method == "GET":
            url, _ = message_click_record(
                message=message, link_index=link_index, user_agent=request.META.get("HTTP_USER_AGENT", "")
            )
        else:
            url = message_link_get(message=message, link_index=link_index)
    except NotFound:
        raise Http404
    return HttpResponseRedirect(url)


def _list_ids(values: list[str]) -> set[int]:
    return {int(value) for value in values if value.isascii() and value.isdigit() and len(value) < 19}


def _unsubscribe_page(request: HttpRequest, message: Message, *, notice: str = "") -> HttpResponse:
    context = {
        "app_name": settings.APP_NAME,
        "workspace_name": message.workspace.name,
        "email": message.subscriber.email,
        "unsubscribed": message.subscriber.status == SubscriberStatus.UNSUBSCRIBED,
        "inactive": message.subscriber.status != SubscriberStatus.ACTIVE,
        "lists": message_list_choices(message=message),
        "notice": notice,
        "form_action": request.path,
    }
    return render(request, "sequences/unsubscribe.html", context)


@csrf_protect
def _preferences_post(request: HttpRequest, message: Message) -> HttpResponse:
    """The preference center's own form: a browser POST with the CSRF token."""
    if request.POST.get("action") == "unsubscribe_all":
        message_subscriber_unsubscribe(message=message, source=SOURCE_PREFERENCE_CENTER)
        return _unsubscribe_page(request, message, notice="unsubscribed")
    message_preferences_update(message=message, subscribed_list_ids=_list_ids(request.POST.getlist("lists")))
    return _unsubscribe_page(request, message, notice="saved")


@never_cache
@csrf_exempt  # only for RFC 8058 one-click bodies; every other POST goes through csrf_protect below
@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit(group="tracking-unsubscribe-page", key="ip", rate=_rate("TRACKING_RATE_LIMIT"), method="GET", block=False)
@ratelimit(
    group="tracking-unsubscribe", key="ip", rate=_rate("TRACKING_RATE_LIMIT_UNSUBSCRIBE"), method="POST", block=False
)
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """/u/<token>: GET shows the confirmation page and preference center; POST `List-Unsubscribe=One-Click`
    (sent by mail clients without cookies) unsubscribes at once; other POSTs are the page's form."""
    if getattr(request, "limited", False):
        return _too_many_requests()
    try:
        message, _ = message_get_for_token(purpose=TokenPurpose.UNSUBSCRIBE, token=token)
    except NotFound:
        raise Http404
    if request.method != "POST":
        return _unsubscribe_page(request, message)
    if request.POST.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
        message_subscriber_unsubscribe(message=message, source=SOURCE_ONE_CLICK)
        return HttpResponse("You are unsubscribed.\n", content_type="text/plain; charset=utf-8")
    return _preferences_post(request, message)
