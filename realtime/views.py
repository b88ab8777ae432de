"""The live dashboard page (server-rendered; its script opens the WebSocket)."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.models import Membership


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Counters, the sends/opens chart and the live feed of one of the user's workspaces.

    `?workspace=<id>` picks it (the user's only one by default); another workspace answers 404.
    """
    memberships = list(
        Membership.objects.select_related("workspace").filter(user=cast(User, request.user)).order_by("workspace__name")
    )
    requested = request.GET.get("workspace", "").strip()
    membership = None
    if requested:
        # A response, not Http404: under /api/ an exception would be answered as a 500 by JsonErrorMiddleware.
        if requested.isdigit() and len(requested) <= 18:
            membership = next((m for m in memberships if m.workspace_id == int(requested)), None)
        if membership is None:
            return HttpResponseNotFound("Workspace not found.")
    elif len(memberships) == 1:
        membership = memberships[0]
    response = render(
        request,
        "realtime/dashboard.html",
        {"membership": membership, "memberships": memberships, "app_name": settings.APP_NAME},
    )
    # The page's socket goes to this very origin; CSP2 browsers do not count ws(s): as 'self'.
    scheme = "wss" if request.is_secure() else "ws"
    response._csp_update = {"connect-src": [f"{scheme}://{request.get_host()}"]}  # type: ignore[attr-defined]
    return response
