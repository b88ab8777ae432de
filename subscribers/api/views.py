"""Subscribers, lists, tags, custom fields, suppressions, events and imports: thin views over services."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.scoping import WorkspaceScopedMixin
from accounts.authentication import ApiKeyUser, acting_user
from accounts.idempotency import idempotent
from accounts.models import Role
from core.api.pagination import CursorPagination
from core.api.parsers import JSONParser
from core.errors import PayloadTooLarge, ValidationFailed
from subscribers import imports, segments, selectors, services
from subscribers.api import serializers as s
from subscribers.filters import (
    EventFilter,
    ImportJobFilter,
    MembershipFilter,
    SubscriberFilter,
    SuppressionFilter,
    TimelineFilter,
)
from subscribers.models import (
    Event,
    EventType,
    FieldDefinition,
    ImportJob,
    ListMembership,
    MailingList,
    MembershipStatus,
    Segment,
    Subscriber,
    Suppression,
    Tag,
)

ID_PATTERN = "[0-9]{1,18}"  # larger numbers are not ids: they answer 404 instead of overflowing the database


# Mixins here carry comments, not docstrings: drf-spectacular would show an inherited docstring as
# the description of every endpoint of the views that use them.


class JsonApiMixin(WorkspaceScopedMixin):
    # Bodies are JSON: bulk payloads as form fields would only hit form-field limits.

    parser_classes: Sequence[type[BaseParser]] = [JSONParser]


class ServiceCrudMixin(
    JsonApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    # List, read, create, PATCH and delete, where the writes go through the app's services. A subclass
    # names its write serializers and implements `service_create`, `service_update` and
    # `service_delete`; validation, status codes, idempotency and the response shape live here once.

    create_serializer_class: type[Any]
    update_serializer_class: type[Any]
    update_is_partial = True
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = ID_PATTERN

    def service_create(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError  # each subclass calls its own service

    def service_update(self, instance: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def service_delete(self, instance: Any) -> None:
        raise NotImplementedError

    def present(self, instance: Any) -> dict[str, Any]:
        """The response body for a written row, read back through the scoped queryset (annotations)."""
        return self.get_serializer(self.get_queryset().get(pk=instance.pk)).data

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.create_serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        instance = self.service_create(serializer.validated_data)
        return Response(self.present(instance), status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.update_serializer_class(data=request.data, partial=self.update_is_partial)
        serializer.is_valid(raise_exception=True)
        return Response(self.present(self.service_update(self.get_object(), serializer.validated_data)))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.service_delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadSizeLimitedParser(MultiPartParser):
    """Refuses an upload larger than IMPORT_MAX_FILE_SIZE from its Content-Length, before receiving it."""

    MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the other form fields

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            length = 0
        if length > settings.IMPORT_MAX_FILE_SIZE + self.MULTIPART_OVERHEAD:
            raise PayloadTooLarge(f"The file is larger than the limit of {settings.IMPORT_MAX_FILE_SIZE} bytes.")
        return super().parse(stream, media_type, parser_context)


class CsvRenderer(BaseRenderer):
    """Lets clients ask for `text/csv`; CSV bodies are streamed by the views, errors still go out as JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return JSONRenderer().render(data)


class TimelinePagination(CursorPagination):
    ordering = ("-occurred_at", "-id")  # type: ignore[assignment]  # DRF takes a tuple too


def csv_download(request: Request, lines: Iterator[Any], filename: str) -> StreamingHttpResponse:
    """Stream CSV lines. Under ASGI (daphne) Django would collect a plain iterator into one list before
    sending it, so there the lines are pulled in batches on the sync thread and sent as they come."""
    content: Iterator[Any] | AsyncIterator[Any] = lines
    if isinstance(request._request, ASGIRequest):
        content = _in_batches(lines)
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


async def _in_batches(lines: Iterator[Any], size: int = 500) -> AsyncIterator[Any]:
    # thread_sensitive: the database cursor behind `lines` stays on the one sync thread.
    take = sync_to_async(lambda: list(islice(lines, size)), thread_sensitive=True)
    while batch := await take():
        for line in batch:
            yield line


def actor_for(request: Request) -> str:
    """Who made the request, for audit fields: `user:ID email` or `key:ID prefix`."""
    if isinstance(request.user, ApiKeyUser):
        return f"key:{request.user.api_key.pk} {request.user.api_key.prefix}"
    return f"user:{request.user.pk} {getattr(request.user, 'email', '')}".strip()


def _client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# Subscribers ---------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(tags=["subscribers"], summary="List subscribers (cursor-paginated, filterable)"),
    retrieve=extend_schema(tags=["subscribers"]),
    create=extend_schema(
        tags=["subscribers"], request=s.SubscriberCreateSerializer, responses={201: s.SubscriberSerializer},
        summary="Create a subscriber (409 `subscriber_exists` for a known address)",
    ),
    partial_update=extend_schema(
        tags=["subscribers"], request=s.SubscriberUpdateSerializer, responses=s.SubscriberSerializer
    ),
    destroy=extend_schema(tags=["subscribers"], responses={204: None}),
)  # fmt: skip
class SubscriberViewSet(
    JsonApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    queryset = Subscriber.objects.prefetch_related("tags")
    serializer_class = s.SubscriberSerializer
    pagination_class = CursorPagination
    filterset_class = SubscriberFilter
    lookup_value_regex = ID_PATTERN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.SubscriberCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        mailing_lists = [
            selectors.mailing_list_for_input(workspace=self.workspace, list_id=list_id, field=f"list_ids[{i}]")
            for i, list_id in enumerate(data.pop("list_ids", []))
        ]
        data.setdefault("consent_ip", _client_ip(request))
        subscriber = services.subscriber_create(
            workspace=self.workspace, mailing_lists=mailing_lists, tag_names=data.pop("tags", []), **data
        )
        return Response(s.SubscriberSerializer(subscriber).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.SubscriberUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        subscriber = services.subscriber_update(
            workspace=self.workspace, subscriber=self.get_object(), **serializer.validated_data
        )
        return Response(s.SubscriberSerializer(subscriber).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.subscriber_delete(workspace=self.workspace, subscriber=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=["subscribers"], request=s.SubscriberBulkSerializer, responses=s.BulkResultSerializer,
        summary="Create or update up to 1,000 subscribers, with a result per item",
    )  # fmt: skip
    @action(detail=False, methods=["post"])
    @idempotent
    def bulk(self, request: Request) -> Response:
        serializer = s.SubscriberBulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        mailing_list = (
            selectors.mailing_list_for_input(workspace=self.workspace, list_id=data["list_id"])
            if data.get("list_id") else None
        )  # fmt: skip
        results = services.subscribers_bulk_upsert(
            workspace=self.workspace, items=data["subscribers"], update_existing=data["update_existing"],
            mailing_list=mailing_list, tag_names=data.get("tags", []),
        )  # fmt: skip
        counts = Counter(result.status for result in results)
        body = {
            "results": [vars(result) for result in results],
            "created": counts["created"], "updated": counts["updated"], "unchanged": counts["unchanged"],
            "skipped": counts["skipped"], "errors": counts["error"],
        }  # fmt: skip
        return Response(s.BulkResultSerializer(body).data)

    @extend_schema(
        tags=["subscribers"], filters=True,
        responses={(200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="CSV, streamed")},
        summary="Export the filtered subscribers as CSV (same filters as the list)",
    )  # fmt: skip
    @action(detail=False, methods=["get"], renderer_classes=[JSONRenderer, CsvRenderer], pagination_class=None)
    def export(self, request: Request) -> StreamingHttpResponse:
        queryset = selectors.subscriber_list(workspace=self.workspace, filters=request.query_params)
        lines = imports.subscribers_export_lines(workspace=self.workspace, queryset=queryset)
        return csv_download(request, lines, "subscribers.csv")

    @extend_schema(
        tags=["subscribers"], request=s.UnsubscribeSerializer, responses=s.SubscriberSerializer,
        summary="Unsubscribe from everything; who and why are recorded with an `unsubscribed` event",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def unsubscribe(self, request: Request, pk: str | None = None) -> Response:
        serializer = s.UnsubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscriber = services.subscriber_unsubscribe(
            workspace=self.workspace, subscriber=self.get_object(), reason=serializer.validated_data["reason"],
            actor=actor_for(request),
        )  # fmt: skip
        return Response(s.SubscriberSerializer(subscriber).data)

    @extend_schema(
        tags=["subscribers"], request=None, responses=s.SubscriberSerializer,
        summary="Record the double opt-in confirmation: pending list memberships become subscribed",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str | None = None) -> Response:
        subscriber = services.subscriber_confirm(workspace=self.workspace, subscriber=self.get_object())
        return Response(s.SubscriberSerializer(subscriber).data)

    @extend_schema(
        tags=["events"], responses=s.EventSerializer(many=True), summary="The subscriber's timeline", filters=False,
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=EventType.values),
            OpenApiParameter("name", OpenApiTypes.STR, description="An event name, e.g. `purchase`."),
        ],
    )  # fmt: skip
    @action(
        detail=True, methods=["get"], pagination_class=TimelinePagination, filterset_class=TimelineFilter,
        serializer_class=s.EventSerializer,
    )  # fmt: skip
    def events(self, request: Request, pk: str | None = None) -> Response:
        subscriber = get_object_or_404(self.get_queryset(), pk=pk)
        events = self.filter_queryset(selectors.subscriber_events(workspace=self.workspace, subscriber=subscriber))
        page = self.paginate_queryset(events)
        return self.get_paginated_response(s.EventSerializer(page, many=True).data)

    @extend_schema(tags=["subscribers"], responses=s.SubscriberMembershipSerializer(many=True), methods=["GET"])
    @extend_schema(
        tags=["subscribers"], request=s.SubscriberListsAddSerializer,
        responses=s.SubscriberMembershipSerializer(many=True), methods=["POST"],
        summary="Add the subscriber to lists (pending on double opt-in lists)",
    )  # fmt: skip
    @action(detail=True, methods=["get", "post"], url_path="lists", pagination_class=None, filterset_class=None)
    def lists(self, request: Request, pk: str | None = None) -> Response:
        subscriber = self.get_object()
        if request.method == "POST":
            return self._lists_add(request, subscriber)
        memberships = ListMembership.objects.filter(subscriber=subscriber).select_related("mailing_list")
        return Response(s.SubscriberMembershipSerializer(memberships, many=True).data)

    @idempotent
    def _lists_add(self, request: Request, subscriber: Subscriber) -> Response:
        serializer = s.SubscriberListsAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mailing_lists = [
            selectors.mailing_list_for_input(workspace=self.workspace, list_id=list_id, field=f"list_ids[{i}]")
            for i, list_id in enumerate(serializer.validated_data["list_ids"])
        ]  # all resolved before anything changes
        services.subscriber_lists_join(workspace=self.workspace, subscriber=subscriber, mailing_lists=mailing_lists)
        memberships = ListMembership.objects.filter(subscriber=subscriber).select_related("mailing_list")
        return Response(s.SubscriberMembershipSerializer(memberships, many=True).data)

    @extend_schema(
        tags=["subscribers"], request=None, responses={204: None},
        parameters=[OpenApiParameter("list_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        summary="Take the subscriber off a list (kept as an unsubscribed membership)",
    )  # fmt: skip
    @action(detail=True, methods=["delete"], url_path=f"lists/(?P<list_id>{ID_PATTERN})", filterset_class=None)
    def list_remove(self, request: Request, pk: str | None = None, list_id: str | None = None) -> Response:
        subscriber = self.get_object()
        mailing_list = selectors.mailing_list_get(workspace=self.workspace, list_id=str(list_id))
        services.list_membership_remove(workspace=self.workspace, subscriber=subscriber, mailing_list=mailing_list)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=["subscribers"], request=s.SubscriberTagsAddSerializer, responses=s.TagSerializer(many=True),
        summary="Tag the subscriber (missing tags are created)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], pagination_class=None, filterset_class=None)
    @idempotent
    def tags(self, request: Request, pk: str | None = None) -> Response:
        serializer = s.SubscriberTagsAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscriber = self.get_object()
        services.subscriber_tags_add(
            workspace=self.workspace, subscriber=subscriber, names=serializer.validated_data["tags"]
        )
        return Response(s.TagSerializer(subscriber.tags.order_by("name"), many=True).data)

    @extend_schema(
        tags=["subscribers"], request=None, responses={204: None},
        parameters=[OpenApiParameter("tag_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        summary="Remove a tag from the subscriber",
    )  # fmt: skip
    @action(detail=True, methods=["delete"], url_path=f"tags/(?P<tag_id>{ID_PATTERN})", filterset_class=None)
    def tag_remove(self, request: Request, pk: str | None = None, tag_id: str | None = None) -> Response:
        subscriber = self.get_object()
        tag = selectors.tag_get(workspace=self.workspace, tag_id=str(tag_id))
        services.subscriber_tag_remove(workspace=self.workspace, subscriber=subscriber, tag=tag)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Lists ---------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(tags=["lists"]),
    retrieve=extend_schema(tags=["lists"]),
    create=extend_schema(
        tags=["lists"], request=s.MailingListWriteSerializer, responses={201: s.MailingListSerializer}
    ),
    partial_update=extend_schema(
        tags=["lists"], request=s.MailingListWriteSerializer, responses=s.MailingListSerializer
    ),
    destroy=extend_schema(tags=["lists"], responses={204: None}),
)
class MailingListViewSet(ServiceCrudMixin):
    """Mailing lists, with their subscriber counts. Double opt-in lists keep new members pending."""

    queryset = MailingList.objects.all()
    serializer_class = s.MailingListSerializer
    create_serializer_class = update_serializer_class = s.MailingListWriteSerializer
    filterset_class = None

    def scoped_queryset(self):
        return selectors.mailing_lists_with_counts(queryset=MailingList.objects.order_by("name"))

    def service_create(self, data: dict[str, Any]) -> MailingList:
        return services.mailing_list_create(workspace=self.workspace, **data)

    def service_update(self, instance: MailingList, data: dict[str, Any]) -> MailingList:
        return services.mailing_list_update(workspace=self.workspace, mailing_list=instance, **data)

    def service_delete(self, instance: MailingList) -> None:
        services.mailing_list_delete(workspace=self.workspace, mailing_list=instance)

    @extend_schema(
        tags=["lists"], methods=["GET"], responses=s.ListMemberSerializer(many=True), filters=False,
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=MembershipStatus.values)],
        summary="Members of the list (cursor-paginated)",
    )  # fmt: skip
    @extend_schema(
        tags=["lists"], methods=["POST"], request=s.ListMembersChangeSerializer, responses=s.MemberResultsSerializer,
        summary="Add subscribers (by id or email) to the list",
    )  # fmt: skip
    @extend_schema(
        tags=["lists"], methods=["DELETE"], responses=s.MemberResultsSerializer,
        parameters=[
            OpenApiParameter("subscriber_id", OpenApiTypes.INT, many=True, description="Repeat for several."),
            OpenApiParameter("email", OpenApiTypes.STR, many=True, description="Repeat for several."),
        ],
        summary="Remove subscribers from the list (query parameters, or the same JSON body as POST)",
    )  # fmt: skip
    @action(
        detail=True, methods=["get", "post", "delete"], pagination_class=CursorPagination,
        filterset_class=MembershipFilter, serializer_class=s.ListMemberSerializer,
    )  # fmt: skip
    def members(self, request: Request, pk: str | None = None) -> Response:
        mailing_list = get_object_or_404(self.get_queryset(), pk=pk)
        if request.method == "POST":
            return self._members_add(request, mailing_list)
        if request.method == "DELETE":
            data = request.data if request.data else {
                "subscriber_ids": request.query_params.getlist("subscriber_id"),
                "emails": request.query_params.getlist("email"),
            }  # fmt: skip
            serializer = s.ListMembersChangeSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            results = services.list_members_remove(
                workspace=self.workspace, mailing_list=mailing_list, **serializer.validated_data
            )
            return Response(s.MemberResultsSerializer({"results": [vars(r) for r in results]}).data)
        memberships = self.filter_queryset(
            ListMembership.objects.filter(mailing_list=mailing_list).select_related("subscriber")
        )
        page = self.paginate_queryset(memberships)
        return self.get_paginated_response(s.ListMemberSerializer(page, many=True).data)

    @idempotent
    def _members_add(self, request: Request, mailing_list: MailingList) -> Response:
        serializer = s.ListMembersChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = services.list_members_add(
            workspace=self.workspace, mailing_list=mailing_list, **serializer.validated_data
        )
        return Response(s.MemberResultsSerializer({"results": [vars(r) for r in results]}).data)


# Tags, fields, suppressions ------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(tags=["tags"]),
    retrieve=extend_schema(tags=["tags"]),
    create=extend_schema(tags=["tags"], request=s.TagWriteSerializer, responses={201: s.TagSerializer}),
    partial_update=extend_schema(tags=["tags"], request=s.TagWriteSerializer, responses=s.TagSerializer),
    destroy=extend_schema(tags=["tags"], responses={204: None}),
)
class TagViewSet(ServiceCrudMixin):
    """Tags for grouping subscribers, with how many subscribers carry each."""

    queryset = Tag.objects.all()
    serializer_class = s.TagSerializer
    create_serializer_class = update_serializer_class = s.TagWriteSerializer
    update_is_partial = False  # a tag has one field: its name

    def scoped_queryset(self):
        return Tag.objects.annotate(subscriber_count=Count("subscribers")).order_by("name")

    def service_create(self, data: dict[str, Any]) -> Tag:
        return services.tag_create(workspace=self.workspace, **data)

    def service_update(self, instance: Tag, data: dict[str, Any]) -> Tag:
        return services.tag_update(workspace=self.workspace, tag=instance, **data)

    def service_delete(self, instance: Tag) -> None:
        services.tag_delete(workspace=self.workspace, tag=instance)


@extend_schema_view(
    list=extend_schema(tags=["fields"]),
    retrieve=extend_schema(tags=["fields"]),
    create=extend_schema(
        tags=["fields"], request=s.FieldDefinitionCreateSerializer, responses={201: s.FieldDefinitionSerializer}
    ),
    partial_update=extend_schema(
        tags=["fields"], request=s.FieldDefinitionUpdateSerializer, responses=s.FieldDefinitionSerializer
    ),
    destroy=extend_schema(tags=["fields"], responses={204: None}),
)
class FieldDefinitionViewSet(ServiceCrudMixin):
    """Custom subscriber attributes: `Subscriber.attributes` keys must be defined here."""

    queryset = FieldDefinition.objects.order_by("key")
    serializer_class = s.FieldDefinitionSerializer
    create_serializer_class = s.FieldDefinitionCreateSerializer
    update_serializer_class = s.FieldDefinitionUpdateSerializer

    def service_create(self, data: dict[str, Any]) -> FieldDefinition:
        return services.field_definition_create(workspace=self.workspace, **data)

    def service_update(self, instance: FieldDefinition, data: dict[str, Any]) -> FieldDefinition:
        return services.field_definition_update(workspace=self.workspace, definition=instance, **data)

    def service_delete(self, instance: FieldDefinition) -> None:
        services.field_definition_delete(workspace=self.workspace, definition=instance)


@extend_schema_view(
    list=extend_schema(tags=["suppressions"]),
    retrieve=extend_schema(tags=["suppressions"]),
    create=extend_schema(
        tags=["suppressions"], request=s.SuppressionCreateSerializer, responses={201: s.SuppressionSerializer}
    ),
    partial_update=extend_schema(
        tags=["suppressions"], request=s.SuppressionUpdateSerializer, responses=s.SuppressionSerializer
    ),
    destroy=extend_schema(tags=["suppressions"], responses={204: None}),
)
class SuppressionViewSet(ServiceCrudMixin):
    """Addresses and whole domains that are never sent to."""

    queryset = Suppression.objects.order_by("-created_at", "-id")
    serializer_class = s.SuppressionSerializer
    create_serializer_class = s.SuppressionCreateSerializer
    update_serializer_class = s.SuppressionUpdateSerializer
    update_is_partial = False
    filterset_class = SuppressionFilter

    def service_create(self, data: dict[str, Any]) -> Suppression:
        return services.suppression_create(workspace=self.workspace, source="api", **data)

    def service_update(self, instance: Suppression, data: dict[str, Any]) -> Suppression:
        return services.suppression_update(workspace=self.workspace, suppression=instance, **data)

    def service_delete(self, instance: Suppression) -> None:
        services.suppression_delete(workspace=self.workspace, suppression=instance)


# Events --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(tags=["events"], summary="The event log (cursor-paginated, filterable)"),
    retrieve=extend_schema(tags=["events"]),
)
class EventViewSet(JsonApiMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Event.objects.all()
    serializer_class = s.EventSerializer
    pagination_class = TimelinePagination
    filterset_class = EventFilter
    lookup_value_regex = ID_PATTERN

    @extend_schema(
        tags=["events"],
        request=PolymorphicProxySerializer(
            component_name="EventIngest", serializers=[s.EventInSerializer, s.EventBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={200: s.EventIngestResultSerializer, 201: s.EventIngestResultSerializer},
        summary="Record one custom event, or a batch of up to 1,000 as {\"events\": [...]}",
        description="Every item gets a result: `created`, `duplicate` (its dedupe_key was seen before) or "
        "`error` with the failing field. A batch answers 200; a single event answers 201, 200 for a duplicate, "
        "or 400/404 with the error.",
    )  # fmt: skip
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        single = not isinstance(request.data, list) and not (
            isinstance(request.data, dict) and "events" in request.data
        )
        if single:
            items = [request.data]
        else:
            data = {"events": request.data} if isinstance(request.data, list) else request.data
            serializer = s.EventBatchSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            items = serializer.validated_data["events"]
        results = services.events_ingest(workspace=self.workspace, items=items)
        counts = Counter(result.status for result in results)
        body = s.EventIngestResultSerializer(
            {"results": [vars(r) for r in results], "created": counts["created"], "duplicates": counts["duplicate"],
             "errors": counts["error"]}
        ).data  # fmt: skip
        if not single:
            return Response(body)
        if results[0].status == "error":
            return Response(_item_error_body(results[0].error), status=_item_error_status(results[0].error))
        return Response(body, status=status.HTTP_201_CREATED if results[0].status == "created" else status.HTTP_200_OK)


def _item_error_body(error: dict[str, Any] | None) -> dict[str, Any]:
    error = error or {}
    field = error.get("field")
    message = error.get("message", "Invalid event.")
    return {
        "error": {
            "code": error.get("code", "validation_error"),
            "message": f"{field}: {message}" if field else message,
            "details": {field: [message]} if field else None,
        }
    }


def _item_error_status(error: dict[str, Any] | None) -> int:
    return status.HTTP_404_NOT_FOUND if (error or {}).get("code") == "not_found" else status.HTTP_400_BAD_REQUEST


# Imports -------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(tags=["imports"]),
    retrieve=extend_schema(tags=["imports"], summary="An import's status and progress"),
)
class ImportViewSet(WorkspaceScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ImportJob.objects.all()
    serializer_class = s.ImportJobSerializer
    filterset_class = ImportJobFilter
    parser_classes = [UploadSizeLimitedParser, FormParser]
    lookup_value_regex = ID_PATTERN

    @extend_schema(
        tags=["imports"], request={"multipart/form-data": s.ImportCreateSerializer},
        responses={202: s.ImportJobSerializer},
        summary="Upload a CSV of subscribers; it is imported in the background",
    )  # fmt: skip
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.ImportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        mailing_list = (
            selectors.mailing_list_for_input(workspace=self.workspace, list_id=data["list_id"])
            if data.get("list_id") else None
        )  # fmt: skip
        job = imports.import_job_create(
            workspace=self.workspace, file=data["file"], column_mapping=data.get("column_mapping"),
            mailing_list=mailing_list, tag_names=data.get("tags", []), update_existing=data["update_existing"],
            created_by=acting_user(request),
        )  # fmt: skip
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        tags=["imports"],
        responses={(200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="row,email,field,reason")},
        summary="The bad rows of a finished import as CSV (409 while it runs)",
    )  # fmt: skip
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CsvRenderer], filterset_class=None)
    def errors(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        job = self.get_object()
        lines = imports.import_error_report_lines(job=job)
        first = next(lines)  # raises Conflict before any byte is sent
        return csv_download(request, _chain(first, lines), f"import-{job.pk}-errors.csv")


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


PREVIEW_LIMIT = OpenApiParameter(
    "limit", OpenApiTypes.INT, OpenApiParameter.QUERY, description="How many subscribers, 1 to 100 (default 20)."
)


@extend_schema_view(
    list=extend_schema(tags=["segments"]),
    retrieve=extend_schema(tags=["segments"]),
    create=extend_schema(tags=["segments"], request=s.SegmentWriteSerializer, responses={201: s.SegmentSerializer}),
    partial_update=extend_schema(tags=["segments"], request=s.SegmentWriteSerializer, responses=s.SegmentSerializer),
    destroy=extend_schema(
        tags=["segments"],
        responses={204: None},
        summary="Delete a segment (409 `segment_in_use` naming the campaigns and segments that use it)",
    ),
)
class SegmentViewSet(ServiceCrudMixin):
    """Saved segments: rule trees over subscribers, with their count and a preview, saved or not."""

    queryset = Segment.objects.all()
    serializer_class = s.SegmentSerializer
    create_serializer_class = update_serializer_class = s.SegmentWriteSerializer
    action_roles = {"count": Role.VIEWER, "preview": Role.VIEWER}  # reads, though an unsaved tree is POSTed

    def scoped_queryset(self):
        return Segment.objects.order_by("name")

    def service_create(self, data: dict[str, Any]) -> Segment:
        return segments.segment_create(workspace=self.workspace, **data)

    def service_update(self, instance: Segment, data: dict[str, Any]) -> Segment:
        return segments.segment_update(workspace=self.workspace, segment=instance, **data)

    def service_delete(self, instance: Segment) -> None:
        segments.segment_delete(workspace=self.workspace, segment=instance)

    def _limit(self) -> int:
        raw = self.request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ValidationFailed.for_field("limit", "Must be an integer from 1 to 100.")
        return int(raw)

    def _preview(self, rules: Any) -> Response:
        limit = self._limit()
        matching = segments.segment_subscribers(workspace=self.workspace, tree=rules)
        rows = matching.prefetch_related("tags")[:limit]
        return Response({"count": matching.count(), "results": s.SubscriberSerializer(rows, many=True).data})

    def _rules(self) -> Any:
        serializer = s.SegmentRulesSerializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data["rules"]

    @extend_schema(tags=["segments"], request=None, responses=s.SegmentCountSerializer)
    @action(detail=True, methods=["get"], url_path="count")
    def saved_count(self, request: Request, pk: str | None = None) -> Response:
        segment = self.get_object()
        return Response({"count": segments.segment_count(workspace=self.workspace, tree=segment.rules)})

    @extend_schema(tags=["segments"], parameters=[PREVIEW_LIMIT], request=None, responses=s.SegmentPreviewSerializer)
    @action(detail=True, methods=["get"], url_path="preview")
    def saved_preview(self, request: Request, pk: str | None = None) -> Response:
        return self._preview(self.get_object().rules)

    @extend_schema(tags=["segments"], request=s.SegmentRulesSerializer, responses=s.SegmentCountSerializer)
    @action(detail=False, methods=["post"], url_path="count")
    def count(self, request: Request) -> Response:
        return Response({"count": segments.segment_count(workspace=self.workspace, tree=self._rules())})

    @extend_schema(
        tags=["segments"], parameters=[PREVIEW_LIMIT], request=s.SegmentRulesSerializer,
        responses=s.SegmentPreviewSerializer,
    )  # fmt: skip
    @action(detail=False, methods=["post"], url_path="preview")
    def preview(self, request: Request) -> Response:
        return self._preview(self._rules())
