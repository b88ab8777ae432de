"""Workspaces, members, API keys and JWT endpoints."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt import views as jwt_views

from accounts import services
from accounts.api.scoping import WorkspaceScopedMixin
from accounts.api.serializers import (
    ApiKeyCreateSerializer,
    ApiKeyIssuedSerializer,
    ApiKeySerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    WorkspaceSendingPauseSerializer,
    WorkspaceSerializer,
    WorkspaceWriteSerializer,
)
from accounts.authentication import ApiKeyUser, acting_user
from accounts.idempotency import idempotent, idempotent_response
from accounts.models import ApiKey, Membership, Role, Workspace
from accounts.selectors import workspace_list_for_user
from core.api.throttling import AuthRateThrottle
from core.errors import PermissionDenied


@extend_schema(tags=["auth"])
class TokenObtainView(jwt_views.TokenObtainPairView):
    """Exchange a username (email) and password for an access and a refresh token."""

    throttle_classes = [AuthRateThrottle]


@extend_schema(tags=["auth"])
class TokenRefreshView(jwt_views.TokenRefreshView):
    throttle_classes = [AuthRateThrottle]


@extend_schema(tags=["auth"])
class TokenVerifyView(jwt_views.TokenVerifyView):
    throttle_classes = [AuthRateThrottle]


@extend_schema_view(
    list=extend_schema(summary="Workspaces the caller can act in", tags=["workspaces"]),
    retrieve=extend_schema(tags=["workspaces"]),
    create=extend_schema(
        tags=["workspaces"], request=WorkspaceWriteSerializer, responses={201: WorkspaceSerializer},
        summary="Create a workspace; the caller becomes its owner",
    ),
    partial_update=extend_schema(tags=["workspaces"], request=WorkspaceWriteSerializer, responses=WorkspaceSerializer),
)  # fmt: skip
class WorkspaceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Workspaces are the tenants themselves: a caller sees those it belongs to, others answer 404."""

    serializer_class = WorkspaceSerializer
    permission_classes = [IsAuthenticated]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Workspace.objects.none()
        if isinstance(self.request.user, ApiKeyUser):
            return Workspace.objects.filter(pk=self.request.user.api_key.workspace_id)
        return workspace_list_for_user(user=cast(User, self.request.user))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if getattr(self, "swagger_fake_view", False):
            return context
        if isinstance(self.request.user, ApiKeyUser):
            key = self.request.user.api_key
            context["roles"] = {key.workspace_id: Role.MARKETER if key.can_write else Role.VIEWER}
        else:
            context["roles"] = dict(
                Membership.objects.filter(user=self.request.user).values_list("workspace_id", "role")
            )
        return context

    def create(self, request: Request, *args, **kwargs) -> Response:
        user = acting_user(request)
        if user is None:
            raise PermissionDenied("API keys cannot create workspaces; sign in as a user.")

        def run() -> Response:
            serializer = WorkspaceWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            workspace = services.workspace_create(owner=user, **serializer.validated_data)
            context = {**self.get_serializer_context(), "roles": {workspace.pk: Role.OWNER}}
            return Response(WorkspaceSerializer(workspace, context=context).data, status=status.HTTP_201_CREATED)

        # Workspace creation has no workspace yet: keys are scoped to the caller's own first workspace.
        scope = workspace_list_for_user(user=user).first()
        return run() if scope is None else idempotent_response(workspace=scope, request=request, run=run)

    def _workspace_for_admin(self, request: Request) -> Workspace:
        workspace = self.get_object()
        role = self.get_serializer_context()["roles"].get(workspace.pk)
        if isinstance(request.user, ApiKeyUser) or Role.rank(role) < Role.rank(Role.ADMIN):
            raise PermissionDenied("Only admins and owners change workspace settings.")
        return workspace

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        workspace = self._workspace_for_admin(request)
        serializer = WorkspaceWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        workspace = services.workspace_update(workspace=workspace, **serializer.validated_data)
        return Response(WorkspaceSerializer(workspace, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["workspaces"], request=WorkspaceSendingPauseSerializer, responses=WorkspaceSerializer,
        summary="Pause all sending of the workspace, with a reason (admins); already paused: unchanged",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="sending/pause")
    def sending_pause(self, request: Request, pk: str | None = None) -> Response:
        workspace = self._workspace_for_admin(request)
        serializer = WorkspaceSendingPauseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.workspace_sending_pause(
            workspace=workspace, reason=serializer.validated_data["reason"], actor=_actor(request)
        )
        return Response(WorkspaceSerializer(workspace, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["workspaces"], request=None, responses=WorkspaceSerializer,
        summary="Resume sending (admins): messages held back by the pause are queued again",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="sending/resume")
    def sending_resume(self, request: Request, pk: str | None = None) -> Response:
        workspace = self._workspace_for_admin(request)
        services.workspace_sending_resume(workspace=workspace, actor=_actor(request))
        return Response(WorkspaceSerializer(workspace, context=self.get_serializer_context()).data)


def _actor(request: Request) -> str:
    """Who made the request, for the log: `user:ID email`."""
    return f"user:{request.user.pk} {getattr(request.user, 'email', '')}".strip()


@extend_schema_view(
    list=extend_schema(tags=["members"]),
    retrieve=extend_schema(tags=["members"]),
    create=extend_schema(tags=["members"], request=MembershipCreateSerializer, responses={201: MembershipSerializer}),
    partial_update=extend_schema(tags=["members"], request=MembershipUpdateSerializer, responses=MembershipSerializer),
    destroy=extend_schema(tags=["members"]),
)
class MemberViewSet(
    WorkspaceScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """Members of the current workspace. Admins manage them; only owners touch the owner role."""

    queryset = Membership.objects.select_related("user")
    serializer_class = MembershipSerializer
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @idempotent
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_add(workspace=self.workspace, by_role=self.role, **serializer.validated_data)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_update(
            membership=self.get_object(), role=serializer.validated_data["role"], by_role=self.role
        )
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.membership_remove(membership=self.get_object(), by_role=self.role)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(tags=["api-keys"]),
    retrieve=extend_schema(tags=["api-keys"]),
    create=extend_schema(
        tags=["api-keys"], request=ApiKeyCreateSerializer, responses={201: ApiKeyIssuedSerializer},
        summary="Create an API key; the response carries the secret key once",
    ),
)  # fmt: skip
class ApiKeyViewSet(
    WorkspaceScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    queryset = ApiKey.objects.select_related("created_by")
    serializer_class = ApiKeySerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @idempotent
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.api_key_create(
            workspace=self.workspace, created_by=acting_user(request), **serializer.validated_data
        )
        data = {**ApiKeySerializer(issued.api_key).data, "key": issued.secret}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["api-keys"], request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)
