"""The live dashboard page (server-rendered; its script opens the WebSocket).

A DRF view only so that the page is in the OpenAPI schema with the other /api/v1/ws/ endpoints: it
answers HTML, authenticates by the session alone (the page's socket uses the same cookie) and sends
anonymous visitors to the login page like any Django page.
"""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseBase, HttpResponseNotFound
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import Membership

# Views carry comments, not docstrings: drf-spectacular would show a docstring as the description.


class DashboardPageView(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes: list = []  # anonymous visitors are redirected to the login page below

    @extend_schema(
        tags=["realtime"],
        summary="The live dashboard page (HTML; a signed-in session)",
        description="Counters per minute, a chart of sends and opens, and the live event feed of one of the "
        "user's workspaces (`workspace`, or the user's only one; a list to choose from otherwise). Anonymous "
        "visitors are redirected to the login page; a workspace the user is not a member of answers 404.",
        parameters=[OpenApiParameter("workspace", OpenApiTypes.INT, required=False)],
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The page."),
            302: OpenApiResponse(description="Not signed in: to the login page."),
            404: OpenApiResponse(description="Not a workspace of the user."),
        },
    )
    def get(self, request: Request) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        memberships = list(
            Membership.objects.select_related("workspace")
            .filter(user=cast(User, request.user))
            .order_by("workspace__name")
        )
        requested = request.query_params.get("workspace", "").strip()
        membership = None
        if requested:
            if requested.isdigit() and len(requested) <= 18:
                membership = next((m for m in memberships if m.workspace_id == int(requested)), None)
            if membership is None:
                return HttpResponseNotFound("Workspace not found.")  # JsonErrorMiddleware answers it as JSON
        elif len(memberships) == 1:
            membership = memberships[0]
        response: HttpResponse = render(
            request._request,
            "realtime/dashboard.html",
            {"membership": membership, "memberships": memberships, "app_name": settings.APP_NAME},
        )
        # The page's socket goes to this very origin; CSP2 browsers do not count ws(s): as 'self'.
        scheme = "wss" if request.is_secure() else "ws"
        response._csp_update = {"connect-src": [f"{scheme}://{request.get_host()}"]}  # type: ignore[attr-defined]
        return response
