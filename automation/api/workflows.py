"""Workflows and their runs: thin views over automation.services, automation.engine and selectors."""

from __future__ import annotations

import uuid
from typing import Any

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.scoping import WorkspaceScopedMixin
from accounts.idempotency import idempotent
from accounts.models import Role
from automation import selectors, services
from automation.api import workflow_serializers as s
from automation.engine import run_advance, workflow_test
from automation.matching import dedupe_key_for
from automation.models import RunStatus, WorkflowRun
from automation.runs import StartOutcome, workflow_run_start
from subscribers.services.validation import json_storable

ID_REGEX = "[0-9]{1,18}"
JSON_ONLY = [JSONParser]
TAG = ["workflows"]
RUN_TAG = ["workflow-runs"]

START_WORDS = {
    StartOutcome.STARTED: "A run started.",
    StartOutcome.DUPLICATE: "This dedupe key already started a run for this subscriber: nothing new started.",
    StartOutcome.RE_ENTRY: "The workflow's re-entry rule does not let this subscriber in again.",
    StartOutcome.CONDITIONS: "The subscriber does not meet the entry conditions.",
    StartOutcome.INACTIVE: "The workflow is not active.",
}


def _validated(serializer_class: type, request: Request, *, partial: bool = False) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema_view(
    list=extend_schema(tags=TAG, summary="List workflows"),
    retrieve=extend_schema(tags=TAG, summary="Get a workflow"),
    create=extend_schema(
        tags=TAG, request=s.WorkflowWriteSerializer, responses={201: s.WorkflowSerializer},
        summary="Create a draft workflow (409 beyond AUTOMATION_MAX_WORKFLOWS)",
    ),
    partial_update=extend_schema(
        tags=TAG, request=s.WorkflowWriteSerializer, responses=s.WorkflowSerializer, summary="Change a workflow"
    ),
    destroy=extend_schema(tags=TAG, responses={204: None}, summary="Delete a workflow with its runs"),
)  # fmt: skip
class WorkflowViewSet(
    WorkspaceScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """Workflows: a trigger, entry conditions and actions with waits and branches (docs/automation.md)."""

    parser_classes = JSON_ONLY
    queryset = selectors.workflow_queryset()
    serializer_class = s.WorkflowSerializer
    lookup_value_regex = ID_REGEX
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["status", "trigger_type"]
    action_roles = {"test": Role.VIEWER}  # it changes nothing

    def filter_queryset(self, queryset):
        # Query filters select what a list shows; they must never hide the object of a detail action.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def _read(self, workflow_id: int) -> dict[str, Any]:
        return s.WorkflowSerializer(self.get_queryset().get(pk=workflow_id), context={"request": self.request}).data

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        workflow = services.workflow_create(workspace=self.workspace, **_validated(s.WorkflowWriteSerializer, request))
        return Response(self._read(workflow.pk), status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _validated(s.WorkflowWriteSerializer, request, partial=True)
        workflow = services.workflow_update(workspace=self.workspace, workflow=self.get_object(), **data)
        return Response(self._read(workflow.pk))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.workflow_delete(workspace=self.workspace, workflow=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(tags=TAG, request=None, responses=s.WorkflowSerializer, summary="Activate (needs an action)")
    @action(detail=True, methods=["post"], filterset_fields=[])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        workflow = services.workflow_activate(workspace=self.workspace, workflow=self.get_object())
        return Response(self._read(workflow.pk))

    @extend_schema(tags=TAG, request=None, responses=s.WorkflowSerializer, summary="Pause: no new runs, runs hold")
    @action(detail=True, methods=["post"], filterset_fields=[])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        workflow = services.workflow_pause(workspace=self.workspace, workflow=self.get_object())
        return Response(self._read(workflow.pk))

    @extend_schema(tags=TAG, request=None, responses=s.WorkflowSerializer, summary="Resume a paused workflow")
    @action(detail=True, methods=["post"], filterset_fields=[])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        workflow = services.workflow_resume(workspace=self.workspace, workflow=self.get_object())
        return Response(self._read(workflow.pk))

    @extend_schema(
        tags=TAG, request=None, responses=s.WorkflowCancelResultSerializer,
        summary="Pause the workflow and cancel all its open runs",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_fields=[])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        cancelled = services.workflow_cancel(workspace=self.workspace, workflow=workflow)
        return Response({"workflow": self._read(workflow.pk), "runs_cancelled": cancelled})

    @extend_schema(
        tags=TAG, request=s.WorkflowTriggerSerializer, responses=s.WorkflowTriggerResultSerializer,
        summary="Start a run for one subscriber now; answers what happened (started, duplicate, ...)",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_fields=[])
    def trigger(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        data = _validated(s.WorkflowTriggerSerializer, request)
        subscriber = selectors.subscriber_for_workflow(
            workspace=self.workspace, subscriber_id=data.get("subscriber_id"), email=data.get("email")
        )
        properties = json_storable(value=dict(data.get("properties") or {}), field="properties")
        if data.get("dedupe_key"):
            dedupe_key = f"api:{data['dedupe_key']}"
        else:
            dedupe_key = dedupe_key_for(workflow, properties=properties, fallback=f"api:{uuid.uuid4().hex}")
        with transaction.atomic():
            start = workflow_run_start(
                workflow=workflow, subscriber=subscriber, dedupe_key=dedupe_key,
                context={"event_name": "api", "event_type": "api", "properties": properties},
            )  # fmt: skip
        run = start.run
        if start.started and run is not None:
            run_advance(run.pk)
            run.refresh_from_db()
        return Response(
            {"outcome": start.outcome, "detail": START_WORDS.get(start.outcome, start.outcome),
             "run_id": run.pk if run else None, "run_status": run.status if run else None}
        )  # fmt: skip

    @extend_schema(
        tags=TAG, request=s.WorkflowTestRequestSerializer, responses=s.WorkflowTestResultSerializer,
        summary="Test mode: the path a subscriber would take, with no side effects",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filterset_fields=[])
    def test(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        data = _validated(s.WorkflowTestRequestSerializer, request)
        subscriber = selectors.subscriber_for_workflow(workspace=self.workspace, subscriber_id=data["subscriber_id"])
        properties = json_storable(value=dict(data.get("properties") or {}), field="properties")
        context = {"event_name": "test", "event_type": "test", "properties": properties}
        entry = selectors.workflow_entry_holds(workflow=workflow, subscriber=subscriber)
        path = workflow_test(
            workflow=workflow, subscriber=subscriber, context=context, wait_outcome=data["wait_outcome"]
        )
        return Response({"entry_conditions_met": entry, "path": path})

    @extend_schema(tags=TAG, request=None, responses=s.WorkflowRunSerializer(many=True), summary="The workflow's runs")
    @action(detail=True, methods=["get"], filterset_fields=[])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        runs = selectors.workflow_run_queryset().filter(workspace=self.workspace, workflow=workflow)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(s.WorkflowRunSerializer(page, many=True).data)


class WorkflowRunFilter(django_filters.FilterSet):
    # Plain ids, not model choices: a model choice would tell "exists elsewhere" from "does not exist".
    workflow = django_filters.NumberFilter(field_name="workflow_id", min_value=1, max_value=s.MAX_ID)
    subscriber = django_filters.NumberFilter(field_name="subscriber_id", min_value=1, max_value=s.MAX_ID)
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)

    class Meta:
        model = WorkflowRun
        fields = ["workflow", "subscriber", "status"]


@extend_schema_view(
    list=extend_schema(tags=RUN_TAG, summary="Workflow runs of the workspace"),
    retrieve=extend_schema(tags=RUN_TAG, responses=s.WorkflowRunDetailSerializer, summary="A run with its log"),
)
class WorkflowRunViewSet(
    WorkspaceScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Runs: one subscriber's way through one workflow, with each step's status, timing and error."""

    parser_classes = JSON_ONLY
    queryset = selectors.workflow_run_queryset()
    serializer_class = s.WorkflowRunSerializer
    lookup_value_regex = ID_REGEX
    filterset_class = WorkflowRunFilter

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        run = self.get_object()
        return Response(s.WorkflowRunDetailSerializer(run).data)

    def _answer(self, run: WorkflowRun) -> Response:
        return Response(s.WorkflowRunDetailSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(tags=RUN_TAG, request=None, responses=s.WorkflowRunDetailSerializer, summary="Hold the run")
    @action(detail=True, methods=["post"], filterset_class=None)
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(services.workflow_run_pause(workspace=self.workspace, run=self.get_object()))

    @extend_schema(tags=RUN_TAG, request=None, responses=s.WorkflowRunDetailSerializer, summary="Resume the run")
    @action(detail=True, methods=["post"], filterset_class=None)
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(services.workflow_run_resume(workspace=self.workspace, run=self.get_object()))

    @extend_schema(tags=RUN_TAG, request=None, responses=s.WorkflowRunDetailSerializer, summary="Cancel the run")
    @action(detail=True, methods=["post"], filterset_class=None)
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(services.workflow_run_cancel(workspace=self.workspace, run=self.get_object()))
