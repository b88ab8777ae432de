"""The one mixin that resolves the caller's workspace and scopes every queryset to it.

Every tenant-owned API view uses `WorkspaceScopedMixin`. Views never write their own scoping: they
declare `queryset` (or `scoped_queryset()` to add joins and annotations) and the mixin filters it by
`workspace`. Overriding `get_queryset` is refused at class creation (the PostHog pattern).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from rest_framework import permissions
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from accounts.authentication import ApiKeyUser
from accounts.models import Role, Workspace
from accounts.selectors import WorkspaceAccess, workspace_access_for_api_key, workspace_access_for_user

WORKSPACE_HEADER = "X-Workspace"


def resolve_workspace_access(request: Request) -> WorkspaceAccess:
    """Resolve once per request; cached on the request for the view, serializers and services."""
    access = getattr(request, "_workspace_access", None)
    if access is None:
        requested = (request.headers.get(WORKSPACE_HEADER) or "").strip() or None
        if isinstance(request.user, ApiKeyUser):
            access = workspace_access_for_api_key(api_key=request.user.api_key, requested=requested)
        else:
            access = workspace_access_for_user(user=cast(User, request.user), requested=requested)
        request._workspace_access = access  # type: ignore[attr-defined]
    return access


class HasWorkspaceRole(permissions.BasePermission):
    """Reads need `read_role`, writes `write_role`; `action_roles` sets the role for named actions."""

    message = "Your role in this workspace does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        access = resolve_workspace_access(request)
        required = view.required_role(request)
        return Role.rank(access.role) >= Role.rank(required)


_Base: Any = GenericAPIView if TYPE_CHECKING else object


class WorkspaceScopedMixin(_Base):
    """Mix into a DRF GenericAPIView or ViewSet in front of it."""

    scope_field: ClassVar[str] = "workspace"
    read_role: ClassVar[str] = Role.VIEWER
    write_role: ClassVar[str] = Role.MARKETER
    action_roles: ClassVar[dict[str, str]] = {}
    permission_classes: Any = [permissions.IsAuthenticated, HasWorkspaceRole]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; override scoped_queryset() instead so the "
                "workspace filter cannot be lost."
            )

    @property
    def workspace(self) -> Workspace:
        return resolve_workspace_access(self.request).workspace

    @property
    def role(self) -> str:
        return resolve_workspace_access(self.request).role

    def required_role(self, request: Request) -> str:
        action = getattr(self, "action", None)
        if action in self.action_roles:
            return self.action_roles[action]
        return self.read_role if request.method in permissions.SAFE_METHODS else self.write_role

    def scoped_queryset(self) -> QuerySet:
        assert self.queryset is not None, f"{type(self).__name__} needs a queryset"
        return self.queryset.all()

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no request workspace
            return self.scoped_queryset().none()
        return self.scoped_queryset().filter(**{self.scope_field: self.workspace})
