"""Which workspace a signed-in UI user acts in (kept in the session), and with which role.

The same rules as the API's scoping mixin: a workspace the user is not a member of answers 404, reads need
the viewer role, writes the marketer role unless a view asks for more (admins manage settings and keys).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from accounts.models import Membership, Role, Workspace
from accounts.selectors import WorkspaceAccess
from core.errors import NotFound

SESSION_KEY = "ui_workspace_id"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def memberships_of(*, user: User) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name"))


def ui_access(request: HttpRequest) -> WorkspaceAccess | None:
    """The session's workspace if the user is still a member of it, else their first one (None: no workspace)."""
    memberships = memberships_of(user=request.user)  # type: ignore[arg-type]
    request.ui_memberships = memberships  # type: ignore[attr-defined]  # the base template's switcher
    if not memberships:
        return None
    chosen = request.session.get(SESSION_KEY)
    membership = next((m for m in memberships if m.workspace_id == chosen), memberships[0])
    if chosen != membership.workspace_id:  # write only on change: an unchanged session is not saved again
        request.session[SESSION_KEY] = membership.workspace_id
    return WorkspaceAccess(workspace=membership.workspace, role=membership.role)


def workspace_switch(request: HttpRequest, *, workspace_id: int) -> Workspace:
    """Make `workspace_id` the session's workspace; Http404 unless the user is a member of it."""
    user = cast(User, request.user)  # the view is login_required
    memberships = Membership.objects.filter(user=user, workspace_id=workspace_id)
    membership = memberships.select_related("workspace").first()
    if membership is None:
        raise Http404("Workspace not found.")
    request.session[SESSION_KEY] = membership.workspace_id
    return membership.workspace


def request_workspace(request: HttpRequest) -> Workspace:
    """The workspace `workspace_view` put on the request."""
    return cast(Workspace, request.workspace)  # type: ignore[attr-defined]


def may(role: str, required: str) -> bool:
    return Role.rank(role) >= Role.rank(required)


def workspace_view(
    *, read_role: str = Role.VIEWER, write_role: str = Role.MARKETER
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Require a signed-in member with the role for this method; sets request.workspace and request.role.

    A service's NotFound (a row of another workspace, or none) becomes the UI's 404.
    """

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            access = ui_access(request)
            if access is None:
                raise PermissionDenied("You are not a member of any workspace.")
            required = read_role if request.method in SAFE_METHODS else write_role
            if not may(access.role, required):
                raise PermissionDenied("Your role in this workspace does not allow this.")
            request.workspace = access.workspace  # type: ignore[attr-defined]
            request.role = access.role  # type: ignore[attr-defined]
            try:
                return view(request, *args, **kwargs)
            except NotFound as error:
                raise Http404(str(error)) from None

        return wrapper

    return decorate
