"""Broadcast campaigns: a thin viewset over sequences.campaigns."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.scoping import WorkspaceScopedMixin
from accounts.idempotency import idempotent
from sequences import campaigns as services
from sequences.api.campaign_serializers import (
    CampaignScheduleSerializer,
    CampaignSerializer,
    CampaignStatsSerializer,
    CampaignWriteSerializer,
    RecipientCountSerializer,
)
from sequences.api.views import ID_REGEX, JSON_ONLY, _validated
from sequences.models import Campaign, CampaignStatus

TAG = ["campaigns"]


def _service_fields(data: dict[str, Any]) -> dict[str, Any]:
    if "template" in data:
        data["template_id"] = data.pop("template")
    return data


@extend_schema_view(
    list=extend_schema(
        tags=TAG, summary="List campaigns, newest first",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=CampaignStatus.values)],
    ),
    retrieve=extend_schema(tags=TAG, summary="Get a campaign"),
    create=extend_schema(
        tags=TAG, request=CampaignWriteSerializer, responses={201: CampaignSerializer},
        summary="Create a draft campaign: a template and an audience (lists, tags, segments, exclusions)",
    ),
    update=extend_schema(
        tags=TAG, request=CampaignWriteSerializer, responses=CampaignSerializer,
        summary="Replace a draft or scheduled campaign (409 once started)",
    ),
    partial_update=extend_schema(
        tags=TAG, request=CampaignWriteSerializer, responses=CampaignSerializer,
        summary="Change a draft or scheduled campaign (409 once started)",
    ),
    destroy=extend_schema(tags=TAG, summary="Delete a draft campaign (else 409)"),
)  # fmt: skip
class CampaignViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    parser_classes = JSON_ONLY
    queryset = Campaign.objects.select_related("template").prefetch_related(
        "lists", "tags", "exclude_lists", "exclude_tags", "segments", "exclude_segments"
    )
    serializer_class = CampaignSerializer
    lookup_value_regex = ID_REGEX
    filterset_fields = ["status"]

    def filter_queryset(self, queryset):
        # Query filters select what a list shows; they must never hide the object of a detail action.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def _read(self, campaign: Campaign) -> dict[str, Any]:
        return CampaignSerializer(self.scoped_queryset().get(pk=campaign.pk)).data

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _service_fields(_validated(CampaignWriteSerializer, request))
        campaign = services.campaign_create(workspace=self.workspace, **data)
        return Response(self._read(campaign), status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _validated(CampaignWriteSerializer, request, partial=kwargs.pop("partial", False))
        campaign = services.campaign_update(
            workspace=self.workspace, campaign=self.get_object(), **_service_fields(data)
        )
        return Response(self._read(campaign))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.campaign_delete(workspace=self.workspace, campaign=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=TAG, request=CampaignScheduleSerializer, responses=CampaignSerializer,
        summary="Schedule at a future time (or now: the next tick, within seconds, starts it)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_fields=[])
    def schedule(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(CampaignScheduleSerializer, request)
        campaign = services.campaign_schedule(
            workspace=self.workspace, campaign=self.get_object(), at=data.get("scheduled_at")
        )
        return Response(self._read(campaign))

    @extend_schema(
        tags=TAG, request=None, responses=CampaignSerializer,
        summary="Send now: the audience becomes queued messages (already sending: unchanged)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_fields=[])
    def start(self, request: Request, pk: str | None = None) -> Response:
        result = services.campaign_start(workspace=self.workspace, campaign=self.get_object())
        return Response(self._read(result.campaign))

    @extend_schema(tags=TAG, request=None, responses=CampaignSerializer, summary="Pause sending (409 unless sending)")
    @action(detail=True, methods=["post"], filterset_fields=[])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        campaign = services.campaign_pause(workspace=self.workspace, campaign=self.get_object())
        return Response(self._read(campaign))

    @extend_schema(tags=TAG, request=None, responses=CampaignSerializer, summary="Resume a paused campaign")
    @action(detail=True, methods=["post"], filterset_fields=[])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        campaign = services.campaign_resume(workspace=self.workspace, campaign=self.get_object())
        return Response(self._read(campaign))

    @extend_schema(
        tags=TAG, request=None, responses=CampaignSerializer,
        summary="Cancel: unsent messages are never sent; sent ones stay (409 once sent)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_fields=[])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        campaign = services.campaign_cancel(workspace=self.workspace, campaign=self.get_object())
        return Response(self._read(campaign))

    @extend_schema(
        tags=TAG, responses=CampaignStatsSerializer,
        summary="Recipients, messages by status, unique opens, clicks, unsubscribes, bounces and rates",
    )  # fmt: skip
    @action(detail=True, methods=["get"], pagination_class=None, filterset_fields=[])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        stats = services.campaign_stats(workspace=self.workspace, campaign=self.get_object())
        return Response(CampaignStatsSerializer(asdict(stats)).data)

    @extend_schema(
        tags=TAG, responses=RecipientCountSerializer,
        summary="How many subscribers the campaign would go to now, its segments evaluated now (creates nothing)",
    )  # fmt: skip
    @action(detail=True, methods=["get"], url_path="recipients/count", pagination_class=None, filterset_fields=[])
    def recipients_count(self, request: Request, pk: str | None = None) -> Response:
        count = services.campaign_audience_count(workspace=self.workspace, campaign=self.get_object())
        return Response(RecipientCountSerializer({"count": count}).data)
