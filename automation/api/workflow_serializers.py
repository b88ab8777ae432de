"""Serializers of the workflows and workflow-runs API (shapes only: validation lives in automation.services)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from automation.models import ReEntry, TriggerType, Workflow, WorkflowRun, WorkflowRunStep

MAX_ID = 2**63 - 1


def IdField(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class WorkflowSerializer(serializers.ModelSerializer):
    trigger_config = serializers.JSONField(help_text="The trigger's settings; see docs/automation.md.")
    entry_rules = serializers.JSONField(allow_null=True, help_text="A segment rule tree, or null.")
    actions = serializers.JSONField(help_text="The ordered actions, with nested branches.")
    hook_url = serializers.SerializerMethodField(help_text="For webhook-triggered workflows: where to POST.")

    class Meta:
        model = Workflow
        fields = [
            "id", "name", "description", "status", "trigger_type", "trigger_config", "entry_rules", "actions",
            "re_entry", "dedupe_property", "hook_url", "activated_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_hook_url(self, workflow: Workflow) -> str | None:
        # The token itself is never shown apart from this URL, and only for the workflows that use it.
        if workflow.trigger_type != TriggerType.WEBHOOK:
            return None
        path = f"/hooks/{workflow.hook_token}"  # the contract of the inbound hook (automation/urls.py)
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class WorkflowWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    trigger_type = serializers.ChoiceField(choices=TriggerType.choices)
    trigger_config = serializers.JSONField(required=False, help_text="See docs/automation.md, Triggers.")
    entry_rules = serializers.JSONField(required=False, allow_null=True, help_text="A segment rule tree, or null.")
    actions = serializers.JSONField(required=False, help_text="See docs/automation.md, Actions.")
    re_entry = serializers.ChoiceField(choices=ReEntry.choices, required=False)
    dedupe_property = serializers.CharField(max_length=100, required=False, allow_blank=True)


class WorkflowTriggerSerializer(serializers.Serializer):
    subscriber_id = IdField(required=False)
    email = serializers.EmailField(required=False)
    properties = serializers.DictField(
        required=False, help_text="The trigger's payload (merge tags: trigger.properties)."
    )
    dedupe_key = serializers.CharField(
        max_length=180, required=False, help_text="Starting twice with one key starts once."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "subscriber_id" not in attrs and "email" not in attrs:
            raise serializers.ValidationError({"subscriber_id": ["Give subscriber_id or email."]})
        return attrs


class WorkflowTriggerResultSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=["started", "duplicate", "re_entry_blocked", "conditions_not_met", "workflow_not_active"]
    )
    detail = serializers.CharField()
    run_id = serializers.IntegerField(allow_null=True)
    run_status = serializers.CharField(allow_null=True)


class WorkflowTestRequestSerializer(serializers.Serializer):
    subscriber_id = IdField()
    properties = serializers.DictField(required=False)
    wait_outcome = serializers.ChoiceField(choices=["timeout", "event"], default="timeout")


class WorkflowTestStepSerializer(serializers.Serializer):
    path = serializers.CharField()
    type = serializers.CharField()
    outcome = serializers.CharField()


class WorkflowTestResultSerializer(serializers.Serializer):
    entry_conditions_met = serializers.BooleanField()
    path = WorkflowTestStepSerializer(many=True)


class WorkflowCancelResultSerializer(serializers.Serializer):
    workflow = WorkflowSerializer()
    runs_cancelled = serializers.IntegerField()


class WorkflowRunStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowRunStep
        fields = ["seq", "path", "action_type", "status", "detail", "error", "started_at", "finished_at"]
        read_only_fields = fields


class WorkflowRunSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    subscriber_email = serializers.EmailField(source="subscriber.email", read_only=True)
    context = serializers.JSONField()  # type: ignore[assignment]  # DRF pops declared fields off the class
    position = serializers.JSONField()
    wait = serializers.JSONField(allow_null=True)

    class Meta:
        model = WorkflowRun
        fields = [
            "id", "workflow", "workflow_name", "subscriber", "subscriber_email", "status", "dedupe_key",
            "trigger_type", "trigger_event_id", "context", "position", "due_at", "wait", "wait_event_name",
            "step_count", "outcome", "error", "started_at", "updated_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    steps = WorkflowRunStepSerializer(many=True, read_only=True)

    class Meta(WorkflowRunSerializer.Meta):
        fields = [*WorkflowRunSerializer.Meta.fields, "steps"]
        read_only_fields = fields
