"""HTTP side of the realtime app: live stats, admin broadcasts, custom live events."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.scoping import WorkspaceScopedMixin
from accounts.idempotency import idempotent
from accounts.models import Role
from realtime import services
from realtime.api import serializers as s
from realtime.stats import connections_stats

# Views carry comments, not docstrings: drf-spectacular would show a docstring as the description.


class LiveStatsView(WorkspaceScopedMixin, GenericAPIView):
    # Admins only: connection counts say who is watching.
    read_role = Role.ADMIN
    serializer_class = s.LiveStatsSerializer

    @extend_schema(
        tags=["realtime"],
        summary="Open WebSockets of this workspace by type (all processes) and group messages pushed",
        responses=s.LiveStatsSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(s.LiveStatsSerializer(connections_stats(workspace_id=self.workspace.pk)).data)


class BroadcastView(WorkspaceScopedMixin, GenericAPIView):
    write_role = Role.ADMIN
    parser_classes = [JSONParser]
    serializer_class = s.BroadcastSerializer

    @extend_schema(
        tags=["realtime"],
        summary="Send a message to this workspace's open dashboards (admins)",
        request=s.BroadcastSerializer,
        responses={202: s.BroadcastResultSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = s.BroadcastSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sender = request.user.get_username() if hasattr(request.user, "get_username") else "api"
        pushed = services.dashboard_broadcast(
            workspace=self.workspace, message=serializer.validated_data["message"], sender=sender
        )
        return Response({"pushed": pushed}, status=status.HTTP_202_ACCEPTED)


class LiveEventView(WorkspaceScopedMixin, GenericAPIView):
    parser_classes = [JSONParser]
    serializer_class = s.LiveEventSerializer

    @extend_schema(
        tags=["realtime"],
        summary="Publish a custom event: recorded in the event log, then pushed live",
        description="The event goes through the event log like any other (workflows and webhooks see it) "
        "and reaches this workspace's dashboards and event feeds with the next coalesced push.",
        request=s.LiveEventSerializer,
        responses={201: s.LiveEventResultSerializer},
    )
    @idempotent  # a retried POST with the same Idempotency-Key replays the answer: one event, not two
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.LiveEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = services.live_event_publish(workspace=self.workspace, **serializer.validated_data)
        return Response(s.LiveEventResultSerializer(event).data, status=status.HTTP_201_CREATED)
