"""Webhook endpoints and their deliveries: thin views over automation.outgoing."""

from __future__ import annotations

from typing import Any

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.idempotency import idempotent
from accounts.models import Role
from automation import outgoing
from automation.api import webhook_serializers as s
from automation.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from core.api.pagination import CursorPagination
from subscribers.api.views import ID_PATTERN, ServiceCrudMixin

TAGS = ["webhooks"]
DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.INT, OpenApiParameter.PATH)


class WebhookDeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event_type = django_filters.CharFilter(max_length=100)

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]


@extend_schema_view(
    list=extend_schema(tags=TAGS, summary="Webhook endpoints (secrets are never listed)"),
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(
        tags=TAGS, request=s.WebhookEndpointCreateSerializer, responses={201: s.WebhookEndpointWithSecretSerializer},
        summary="Create an endpoint; the answer carries its signing secret, shown this once",
    ),
    partial_update=extend_schema(
        tags=TAGS, request=s.WebhookEndpointUpdateSerializer, responses=s.WebhookEndpointSerializer
    ),
    destroy=extend_schema(tags=TAGS, responses={204: None}, summary="Delete an endpoint and its delivery log"),
)  # fmt: skip
class WebhookEndpointViewSet(ServiceCrudMixin):
    """Endpoints that receive signed POSTs of the workspace's events (docs/webhooks.md)."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = s.WebhookEndpointSerializer
    create_serializer_class = s.WebhookEndpointCreateSerializer
    update_serializer_class = s.WebhookEndpointUpdateSerializer
    filterset_class = None
    # An endpoint sends subscriber data to any URL: managing them is an admin's job, as API keys are.
    write_role = Role.ADMIN

    def scoped_queryset(self):
        return WebhookEndpoint.objects.order_by("id")

    def service_create(self, data: dict[str, Any]) -> WebhookEndpoint:
        return outgoing.webhook_endpoint_create(workspace=self.workspace, **data)

    def service_update(self, instance: WebhookEndpoint, data: dict[str, Any]) -> WebhookEndpoint:
        return outgoing.webhook_endpoint_update(workspace=self.workspace, endpoint=instance, **data)

    def service_delete(self, instance: WebhookEndpoint) -> None:
        outgoing.webhook_endpoint_delete(workspace=self.workspace, endpoint=instance)

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.create_serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = self.service_create(serializer.validated_data)
        return Response(s.WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=TAGS, request=None, responses=s.WebhookEndpointWithSecretSerializer,
        summary="A new signing secret (shown this once); the old one stops verifying at once",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        endpoint = outgoing.webhook_endpoint_secret_rotate(workspace=self.workspace, endpoint=self.get_object())
        return Response(s.WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(
        tags=TAGS, request=None, responses=s.WebhookEndpointSerializer,
        summary="Enable again: clears the disabled state and the failure count",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str | None = None) -> Response:
        endpoint = outgoing.webhook_endpoint_enable(workspace=self.workspace, endpoint=self.get_object())
        return Response(s.WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        tags=TAGS, request=None, responses={202: s.WebhookDeliverySerializer},
        summary="Send a `ping` delivery now (409 when the endpoint is disabled)",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        delivery = outgoing.webhook_ping(workspace=self.workspace, endpoint=self.get_object())
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    def _deliveries(self, pk: str | None):
        # The endpoint through the scoped queryset first: another workspace's endpoint answers 404.
        endpoint = get_object_or_404(self.get_queryset(), pk=pk)
        return WebhookDelivery.objects.filter(workspace=self.workspace, endpoint=endpoint)

    @extend_schema(
        tags=TAGS, responses=s.WebhookDeliverySerializer(many=True), filters=False,
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=DeliveryStatus.values),
            OpenApiParameter("event_type", OpenApiTypes.STR),
        ],
        summary="The endpoint's deliveries, newest first (cursor-paginated; filter by status, event_type)",
    )  # fmt: skip
    @action(
        detail=True, methods=["get"], pagination_class=CursorPagination, filterset_class=WebhookDeliveryFilter,
        serializer_class=s.WebhookDeliverySerializer,
    )  # fmt: skip
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        deliveries = self.filter_queryset(self._deliveries(pk))
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        tags=TAGS, parameters=[DELIVERY_ID], responses=s.WebhookDeliveryDetailSerializer,
        summary="One delivery with its payload and every attempt (status code, latency, error)",
    )  # fmt: skip
    @action(
        detail=True, methods=["get"], url_path=rf"deliveries/(?P<delivery_id>{ID_PATTERN})",
        serializer_class=s.WebhookDeliveryDetailSerializer, filterset_class=None,
    )  # fmt: skip
    def delivery(self, request: Request, pk: str | None = None, delivery_id: str | None = None) -> Response:
        delivery = get_object_or_404(self._deliveries(pk).prefetch_related("attempt_log"), pk=delivery_id)
        return Response(s.WebhookDeliveryDetailSerializer(delivery).data)

    @extend_schema(
        tags=TAGS, parameters=[DELIVERY_ID], request=None, responses={202: s.WebhookDeliverySerializer},
        summary="Try a finished delivery again now (409 while it is pending or the endpoint is disabled)",
    )  # fmt: skip
    @action(
        detail=True, methods=["post"], url_path=rf"deliveries/(?P<delivery_id>{ID_PATTERN})/retry",
        filterset_class=None,
    )  # fmt: skip
    def delivery_retry(self, request: Request, pk: str | None = None, delivery_id: str | None = None) -> Response:
        delivery = get_object_or_404(self._deliveries(pk), pk=delivery_id)
        delivery = outgoing.webhook_delivery_retry(workspace=self.workspace, delivery=delivery)
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
