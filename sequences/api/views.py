"""Templates, sequences, steps and enrollments: thin views over sequences.services and selectors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.scoping import WorkspaceScopedMixin
from accounts.idempotency import idempotent
from accounts.models import Role
from core.api.pagination import CursorPagination
from core.errors import ValidationFailed
from sequences import selectors, services
from sequences.api.serializers import (
    MAX_ID,
    EnrollmentExitSerializer,
    EnrollmentSerializer,
    RenderedEmailSerializer,
    SequenceBackfillRequestSerializer,
    SequenceBackfillResponseSerializer,
    SequenceDryRunRequestSerializer,
    SequenceDryRunResponseSerializer,
    SequenceEnrollRequestSerializer,
    SequenceEnrollResponseSerializer,
    SequenceSerializer,
    SequenceWriteSerializer,
    StepCreateSerializer,
    StepReorderSerializer,
    StepSerializer,
    StepUpdateSerializer,
    TemplatePreviewRequestSerializer,
    TemplateSerializer,
    TemplateWriteSerializer,
)
from sequences.dryrun import sequence_dry_run
from sequences.models import Enrollment, EnrollmentStatus, SequenceStatus, Step, Template
from sequences.services import StepInput

ID_REGEX = r"[0-9]+"
# JSON only: nested steps have no form encoding, and form parsing of many fields is a way to a 500.
JSON_ONLY = [JSONParser]


def _validated(serializer_class: type, request: Request, *, partial: bool = False) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema_view(
    list=extend_schema(tags=["templates"], summary="List templates"),
    retrieve=extend_schema(tags=["templates"], summary="Get a template"),
    create=extend_schema(
        tags=["templates"], request=TemplateWriteSerializer, responses={201: TemplateSerializer},
        summary="Create a template; every part must compile (400 names the field and line)",
    ),
    update=extend_schema(tags=["templates"], request=TemplateWriteSerializer, responses=TemplateSerializer),
    partial_update=extend_schema(tags=["templates"], request=TemplateWriteSerializer, responses=TemplateSerializer),
    destroy=extend_schema(tags=["templates"], summary="Delete a template that no step uses (else 409)"),
)  # fmt: skip
class TemplateViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    parser_classes = JSON_ONLY
    queryset = Template.objects.all()
    serializer_class = TemplateSerializer
    lookup_value_regex = ID_REGEX
    action_roles = {"preview": Role.VIEWER}

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        template = services.template_create(workspace=self.workspace, **_validated(TemplateWriteSerializer, request))
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        fields = _validated(TemplateWriteSerializer, request, partial=partial)
        template = services.template_update(workspace=self.workspace, template=self.get_object(), **fields)
        return Response(TemplateSerializer(template).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.template_delete(workspace=self.workspace, template=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=["templates"], request=TemplatePreviewRequestSerializer, responses=RenderedEmailSerializer,
        summary="Render a template for a subscriber or for sample data",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(TemplatePreviewRequestSerializer, request)
        rendered = services.template_preview(
            workspace=self.workspace, template=self.get_object(), subscriber_id=data.get("subscriber_id"),
            sample=data.get("sample"),
        )  # fmt: skip
        return Response(RenderedEmailSerializer(rendered).data)


def _step_inputs(data: dict[str, Any]) -> list[StepInput] | None:
    if "steps" not in data:
        return None
    steps = []
    for index, step in enumerate(data.pop("steps")):
        if "template" not in step:  # a PATCH validates partially, nested steps included; a step is whole
            raise ValidationFailed.for_field(f"steps[{index}].template", "This field is required.")
        fields = {key: value for key, value in step.items() if key != "template"}
        steps.append(StepInput(template_id=step["template"], **fields))
    return steps


STATUS_PARAMETER = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=EnrollmentStatus.values, description="Only enrollments in this status."
)


@extend_schema_view(
    list=extend_schema(
        tags=["email-sequences"], summary="List sequences",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=SequenceStatus.values)],
    ),
    retrieve=extend_schema(tags=["email-sequences"], summary="Get a sequence with its steps"),
    create=extend_schema(
        tags=["email-sequences"], request=SequenceWriteSerializer, responses={201: SequenceSerializer},
        summary="Create a draft sequence with its steps",
    ),
    update=extend_schema(
        tags=["email-sequences"], request=SequenceWriteSerializer, responses=SequenceSerializer,
        summary="Replace a sequence; a `steps` list replaces its steps",
    ),
    partial_update=extend_schema(
        tags=["email-sequences"], request=SequenceWriteSerializer, responses=SequenceSerializer,
        summary="Change a sequence; a `steps` list replaces its steps",
    ),
    destroy=extend_schema(tags=["email-sequences"], summary="Delete a sequence that is not active (else 409)"),
)  # fmt: skip
class SequenceViewSet(WorkspaceScopedMixin, viewsets.ModelViewSet):
    parser_classes = JSON_ONLY
    queryset = selectors.sequence_queryset()
    serializer_class = SequenceSerializer
    lookup_value_regex = ID_REGEX
    filterset_fields = ["status"]
    action_roles = {"dry_run": Role.VIEWER}  # it changes nothing

    def filter_queryset(self, queryset):
        # Query filters select what a list shows; they must never hide the object of a detail action.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def _read(self, sequence_id: int) -> dict[str, Any]:
        return SequenceSerializer(selectors.sequence_get(workspace=self.workspace, sequence_id=sequence_id)).data

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _validated(SequenceWriteSerializer, request)
        steps = _step_inputs(data)
        sequence = services.sequence_create(workspace=self.workspace, steps=steps, **data)
        return Response(self._read(sequence.pk), status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _validated(SequenceWriteSerializer, request, partial=kwargs.pop("partial", False))
        steps = _step_inputs(data)
        sequence = services.sequence_update(workspace=self.workspace, sequence=self.get_object(), steps=steps, **data)
        return Response(self._read(sequence.pk))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.sequence_delete(workspace=self.workspace, sequence=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=["email-sequences"], request=None, responses=SequenceSerializer,
        summary="Activate (or resume): needs a step, and every template must compile (else 409)",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        sequence = services.sequence_activate(workspace=self.workspace, sequence=self.get_object())
        return Response(self._read(sequence.pk))

    @extend_schema(tags=["email-sequences"], request=None, responses=SequenceSerializer, summary="Pause sending")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        sequence = services.sequence_pause(workspace=self.workspace, sequence=self.get_object())
        return Response(self._read(sequence.pk))

    @extend_schema(
        tags=["email-sequences"], request=None, responses=SequenceSerializer,
        summary="Archive for good; active enrollments exit",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        sequence = services.sequence_archive(workspace=self.workspace, sequence=self.get_object())
        return Response(self._read(sequence.pk))

    @extend_schema(tags=["steps"], responses=StepSerializer(many=True), summary="The sequence's steps, in order")
    @action(detail=True, methods=["get"], pagination_class=None, filterset_fields=[])
    def steps(self, request: Request, pk: str | None = None) -> Response:
        steps = selectors.step_list(workspace=self.workspace, sequence=self.get_object())
        return Response(StepSerializer(steps, many=True).data)

    @extend_schema(
        tags=["steps"], request=StepCreateSerializer, responses={201: StepSerializer},
        summary="Add a step (at the end, or at `position`)",
    )  # fmt: skip
    @steps.mapping.post
    @idempotent
    def steps_create(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(StepCreateSerializer, request)
        step = services.step_create(
            workspace=self.workspace, sequence=self.get_object(), template_id=data.pop("template"), **data
        )
        return Response(StepSerializer(step).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["steps"], request=StepReorderSerializer, responses=StepSerializer(many=True),
        summary="Reorder the steps: list every step id once, in the new order",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="steps/reorder", pagination_class=None, filterset_fields=[])
    def steps_reorder(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(StepReorderSerializer, request)
        steps = services.step_reorder(workspace=self.workspace, sequence=self.get_object(), step_ids=data["step_ids"])
        return Response(StepSerializer(steps, many=True).data)

    @extend_schema(
        tags=["enrollments"], request=SequenceEnrollRequestSerializer, responses=SequenceEnrollResponseSerializer,
        summary="Enroll up to 1,000 subscribers (ids or emails); one result per item",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    @idempotent
    def enroll(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(SequenceEnrollRequestSerializer, request)
        emails = data.get("emails", [])
        results = services.sequence_enroll(
            workspace=self.workspace, sequence=self.get_object(), subscriber_ids=data.get("subscriber_ids", []),
            emails=emails, source=data["source"],
        )  # fmt: skip
        rows = [
            {
                "subscriber_id": result.subscriber_id if isinstance(result.input, str) else result.input,
                "email": result.input if isinstance(result.input, str) else None,
                "status": result.status,
                "enrollment_id": result.enrollment_id,
            }
            for result in results
        ]
        counts = dict(Counter(result.status for result in results))
        return Response(SequenceEnrollResponseSerializer({"results": rows, "counts": counts}).data)

    @extend_schema(
        tags=["email-sequences"], request=SequenceDryRunRequestSerializer, responses=SequenceDryRunResponseSerializer,
        summary="Who would get which email and when over the next days (simulated; nothing is sent or written)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="dry-run", pagination_class=None, filterset_fields=[])
    def dry_run(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(SequenceDryRunRequestSerializer, request)
        result = sequence_dry_run(
            workspace=self.workspace, sequence=self.get_object(), days=data["days"], limit=data.get("limit"),
            subscriber_ids=data.get("subscriber_ids"), after_enrollment_id=data.get("after_enrollment_id"),
        )  # fmt: skip
        summary = {
            "sends": len(result.rows), "per_step": result.per_step(), "per_day": result.per_day(),
            "blocked": dict(result.blocked), "enrollments_examined": result.enrollments_examined,
        }  # fmt: skip
        body = {
            "sequence_id": result.sequence_id, "sequence_status": result.sequence_status, "days": result.days,
            "starts_at": result.starts_at, "ends_at": result.ends_at, "notes": result.notes, "rows": result.rows,
            "summary": summary, "truncated": result.truncated,
            "next_after_enrollment_id": result.next_after_enrollment_id,
        }  # fmt: skip
        return Response(SequenceDryRunResponseSerializer(body).data)

    @extend_schema(
        tags=["enrollments"], request=SequenceBackfillRequestSerializer,
        responses={200: SequenceBackfillResponseSerializer, 202: SequenceBackfillResponseSerializer},
        summary="Enroll a list's subscribed members (a large list: 202, a worker enrolls it)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], pagination_class=None, filterset_fields=[])
    @idempotent
    def backfill(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(SequenceBackfillRequestSerializer, request)
        result = services.sequence_backfill(workspace=self.workspace, sequence=self.get_object(), **data)
        body = {
            "list_id": result.list_id, "dry_run": result.dry_run, "queued": result.queued, "members": result.members,
            "enrolled": result.enrolled, "skipped": dict(result.skipped),
            "starting_steps": {str(step_id): count for step_id, count in result.starting_steps.items()},
        }  # fmt: skip
        code = status.HTTP_202_ACCEPTED if result.queued else status.HTTP_200_OK
        return Response(SequenceBackfillResponseSerializer(body).data, status=code)

    @extend_schema(
        tags=["enrollments"], parameters=[STATUS_PARAMETER], responses=EnrollmentSerializer(many=True),
        summary="The sequence's enrollments, newest first (cursor pagination)",
    )  # fmt: skip
    @action(detail=True, methods=["get"], pagination_class=CursorPagination, filterset_fields=[])
    def enrollments(self, request: Request, pk: str | None = None) -> Response:
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in EnrollmentStatus.values:
            raise ValidationFailed.for_field("status", f"Must be one of {', '.join(EnrollmentStatus.values)}.")
        enrollments = selectors.enrollment_list(workspace=self.workspace, sequence=self.get_object(), status=wanted)
        page = self.paginate_queryset(enrollments)
        return self.get_paginated_response(EnrollmentSerializer(page, many=True).data)


@extend_schema_view(
    retrieve=extend_schema(tags=["steps"], summary="Get a step"),
    update=extend_schema(tags=["steps"], request=StepUpdateSerializer, responses=StepSerializer),
    partial_update=extend_schema(tags=["steps"], request=StepUpdateSerializer, responses=StepSerializer),
    destroy=extend_schema(
        tags=["steps"], summary="Delete a step; its active enrollments move on to the next step (or complete)"
    ),
)
class StepViewSet(
    WorkspaceScopedMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    queryset = Step.objects.select_related("sequence", "template")
    scope_field = "sequence__workspace"
    parser_classes = JSON_ONLY
    serializer_class = StepSerializer
    lookup_value_regex = ID_REGEX

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _validated(StepUpdateSerializer, request, partial=kwargs.pop("partial", False))
        if "template" in data:
            data["template_id"] = data.pop("template")
        step = services.step_update(workspace=self.workspace, step=self.get_object(), **data)
        return Response(StepSerializer(step).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.step_delete(workspace=self.workspace, step=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnrollmentFilter(django_filters.FilterSet):
    # Plain ids, not model choices: a model choice would tell "exists elsewhere" from "does not exist".
    sequence = django_filters.NumberFilter(field_name="sequence_id", min_value=1, max_value=MAX_ID)
    subscriber = django_filters.NumberFilter(field_name="subscriber_id", min_value=1, max_value=MAX_ID)
    status = django_filters.ChoiceFilter(choices=EnrollmentStatus.choices)

    class Meta:
        model = Enrollment
        fields = ["sequence", "subscriber", "status"]


@extend_schema_view(
    list=extend_schema(tags=["enrollments"], summary="Enrollments of the workspace (cursor pagination)"),
    retrieve=extend_schema(tags=["enrollments"], summary="Get an enrollment"),
)
class EnrollmentViewSet(
    WorkspaceScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Enrollment.objects.select_related("subscriber")
    serializer_class = EnrollmentSerializer
    pagination_class = CursorPagination
    parser_classes = JSON_ONLY
    filterset_class = EnrollmentFilter
    lookup_value_regex = ID_REGEX

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    @extend_schema(
        tags=["enrollments"], request=EnrollmentExitSerializer, responses=EnrollmentSerializer,
        summary="Take the subscriber out of the sequence now (409 unless active)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_class=None)
    def exit(self, request: Request, pk: str | None = None) -> Response:
        data = _validated(EnrollmentExitSerializer, request)
        enrollment = services.enrollment_exit(workspace=self.workspace, enrollment=self.get_object(), **data)
        return Response(EnrollmentSerializer(enrollment).data)
