"""Reads for workspaces and access: which workspace a caller acts in, and with which role."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import QuerySet

from accounts.models import ApiKey, Membership, Role, Workspace
from core.errors import NotFound, ValidationFailed


@dataclass(frozen=True)
class WorkspaceAccess:
    workspace: Workspace
    role: str


def workspace_list_for_user(*, user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def workspace_access_for_api_key(*, api_key: ApiKey, requested: str | None) -> WorkspaceAccess:
    """An API key acts in its own workspace only; naming another one answers 404."""
    workspace = api_key.workspace
    if requested and requested not in (str(workspace.pk), workspace.slug):
        raise NotFound("Workspace not found.", code="workspace_not_found")
    return WorkspaceAccess(workspace=workspace, role=Role.MARKETER if api_key.can_write else Role.VIEWER)


def workspace_access_for_user(*, user: User, requested: str | None) -> WorkspaceAccess:
    """The workspace named by `requested` (id or slug), or the user's only one.

    A workspace the user is not a member of answers exactly like one that does not exist.
    """
    memberships = Membership.objects.select_related("workspace").filter(user=user)
    if requested:
        lookup = {"workspace__pk": int(requested)} if requested.isdigit() else {"workspace__slug": requested}
        membership = memberships.filter(**lookup).first()
        if membership is None:
            raise NotFound("Workspace not found.", code="workspace_not_found")
        return WorkspaceAccess(workspace=membership.workspace, role=membership.role)
    first_two = list(memberships[:2])
    if len(first_two) == 1:
        return WorkspaceAccess(workspace=first_two[0].workspace, role=first_two[0].role)
    if not first_two:
        raise NotFound("You are not a member of any workspace.", code="workspace_not_found")
    raise ValidationFailed.for_field(
        "X-Workspace", "You belong to several workspaces: name one by id or slug.", code="workspace_required"
    )


def membership_get(*, workspace: Workspace, membership_id: int) -> Membership:
    membership = Membership.objects.select_related("user").filter(workspace=workspace, pk=membership_id).first()
    if membership is None:
        raise NotFound("Member not found.")
    return membership
