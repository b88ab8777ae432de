"""Request and response shapes of the sequences API."""

from __future__ import annotations

from rest_framework import serializers

from sequences.dryrun import (
    DRY_RUN_DEFAULT_DAYS,
    DRY_RUN_DEFAULT_ROWS,
    DRY_RUN_MAX_DAYS,
    DRY_RUN_MAX_ROWS,
    DRY_RUN_MAX_SUBSCRIBER_IDS,
)
from sequences.models import DelayUnit, Enrollment, ReEntry, Sequence, Step, Template
from sequences.services import ENROLL_MAX_ITEMS, EnrollOutcome

MAX_ID = 2**63 - 1
MAX_CONTENT = 500_000  # characters of HTML or text: far above any real email, far below a memory problem


def id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


# Templates


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = [
            "id", "name", "subject", "preheader", "html", "text", "from_name", "from_email", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class TemplateWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    subject = serializers.CharField(
        max_length=255, help_text="Merge tags allowed, e.g. `Hi {{ subscriber.first_name }}`."
    )
    preheader = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    html = serializers.CharField(max_length=MAX_CONTENT, trim_whitespace=False)
    text = serializers.CharField(
        max_length=MAX_CONTENT, required=False, allow_blank=True, default="", trim_whitespace=False,
        help_text="Plain-text part; generated from the rendered HTML when empty.",
    )  # fmt: skip
    from_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    from_email = serializers.EmailField(required=False, allow_blank=True, default="")


class SampleSubscriberSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    locale = serializers.CharField(max_length=16, required=False, allow_blank=True)
    time_zone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    attributes = serializers.DictField(required=False, help_text="Custom attributes: `subscriber.attributes.KEY`.")


class TemplatePreviewRequestSerializer(serializers.Serializer):
    subscriber_id = id_field(required=False, help_text="Render for this subscriber of the workspace.")
    sample = SampleSubscriberSerializer(
        required=False, help_text="Sample subscriber data, merged over the built-in sample subscriber."
    )

    def validate(self, attrs: dict) -> dict:
        if "subscriber_id" in attrs and "sample" in attrs:
            raise serializers.ValidationError({"sample": ["Give subscriber_id or sample, not both."]})
        return attrs


class RenderedEmailSerializer(serializers.Serializer):
    subject = serializers.CharField()
    preheader = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


# Sequences and steps


class StepSerializer(serializers.ModelSerializer):
    template_name = serializers.CharField(source="template.name", read_only=True)

    class Meta:
        model = Step
        fields = [
            "id", "sequence", "position", "name", "template", "template_name", "delay_value", "delay_unit",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class SequenceStepInputSerializer(serializers.Serializer):
    id = id_field(required=False, help_text="An existing step of this sequence to keep; omit to create a step.")
    template = id_field(help_text="A template of the same workspace.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    delay_value = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    delay_unit = serializers.ChoiceField(choices=DelayUnit.choices, default=DelayUnit.DAYS)


class StepCreateSerializer(serializers.Serializer):
    template = id_field(help_text="A template of the same workspace.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    delay_value = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    delay_unit = serializers.ChoiceField(choices=DelayUnit.choices, default=DelayUnit.DAYS)
    position = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, help_text="1-based; the end when omitted."
    )


class StepUpdateSerializer(serializers.Serializer):
    template = id_field(help_text="A template of the same workspace.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    delay_value = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    delay_unit = serializers.ChoiceField(choices=DelayUnit.choices, required=False)


class StepReorderSerializer(serializers.Serializer):
    step_ids = serializers.ListField(
        child=id_field(), allow_empty=False, max_length=1000, help_text="Every step of the sequence, in the new order."
    )


class SequenceSerializer(serializers.ModelSerializer):
    steps = StepSerializer(many=True, read_only=True)
    mailing_list_id = serializers.IntegerField(
        allow_null=True, read_only=True,
        help_text="Only subscribed members of this list receive the sequence; leaving the list exits it. "
        "Null: no list.",
    )  # fmt: skip

    class Meta:
        model = Sequence
        fields = [
            "id", "name", "description", "status", "send_days", "send_start_hour", "send_end_hour", "re_entry",
            "goal_event", "mailing_list_id", "steps", "created_at", "updated_at", "activated_at",
        ]  # fmt: skip
        read_only_fields = fields


class SequenceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    send_days = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, max_length=7,
        help_text="Days sending is allowed, 0 = Monday ... 6 = Sunday, in the subscriber's time zone.",
    )  # fmt: skip
    send_start_hour = serializers.IntegerField(min_value=0, max_value=24, required=False)
    send_end_hour = serializers.IntegerField(min_value=0, max_value=24, required=False)
    re_entry = serializers.ChoiceField(choices=ReEntry.choices, required=False)
    goal_event = serializers.CharField(max_length=100, required=False, allow_blank=True)
    mailing_list_id = id_field(
        required=False, allow_null=True,
        help_text="A list of this workspace: only its subscribed members receive the sequence, and a subscriber "
        "who leaves it exits. Null: no list.",
    )  # fmt: skip
    steps = SequenceStepInputSerializer(
        many=True, required=False, max_length=200,
        help_text="The whole step list, in order: steps with an `id` are kept, others created, missing ones deleted.",
    )  # type: ignore[call-arg]  # fmt: skip


class EnrollmentSerializer(serializers.ModelSerializer):
    subscriber_email = serializers.EmailField(source="subscriber.email", read_only=True)

    class Meta:
        model = Enrollment
        fields = [
            "id", "sequence", "subscriber", "subscriber_email", "status", "current_step", "next_run_at",
            "enrolled_at", "finished_at", "exit_reason", "source",
        ]  # fmt: skip
        read_only_fields = fields


class SequenceEnrollRequestSerializer(serializers.Serializer):
    subscriber_ids = serializers.ListField(child=id_field(), required=False, max_length=ENROLL_MAX_ITEMS)
    emails = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False, max_length=ENROLL_MAX_ITEMS
    )
    source = serializers.CharField(max_length=100, required=False, default="api")  # type: ignore[assignment]

    def validate(self, attrs: dict) -> dict:
        total = len(attrs.get("subscriber_ids", [])) + len(attrs.get("emails", []))
        if total == 0:
            raise serializers.ValidationError({"subscriber_ids": ["Give subscriber_ids or emails."]})
        if total > ENROLL_MAX_ITEMS:
            raise serializers.ValidationError({"subscriber_ids": [f"At most {ENROLL_MAX_ITEMS} items in all."]})
        return attrs


class EnrollResultSerializer(serializers.Serializer):
    subscriber_id = serializers.IntegerField(allow_null=True, help_text="The id given, or the one the email matched.")
    email = serializers.CharField(allow_null=True, help_text="The email given (items given by id: null).")
    status = serializers.ChoiceField(choices=[(choice, choice) for choice in EnrollOutcome.choices])
    enrollment_id = serializers.IntegerField(allow_null=True)


class SequenceEnrollResponseSerializer(serializers.Serializer):
    results = EnrollResultSerializer(many=True, help_text="One per item: ids first, then emails, in order.")
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Items per status.")


class EnrollmentExitSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


# Dry run and backfill


class SequenceDryRunRequestSerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1, max_value=DRY_RUN_MAX_DAYS, default=DRY_RUN_DEFAULT_DAYS, help_text="How far ahead, 1 to 90 days."
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=DRY_RUN_MAX_ROWS, required=False,
        help_text=f"At most this many rows (default {DRY_RUN_DEFAULT_ROWS}); whole enrollments only.",
    )  # fmt: skip
    subscriber_ids = serializers.ListField(
        child=id_field(), required=False, max_length=DRY_RUN_MAX_SUBSCRIBER_IDS,
        help_text="Only these subscribers' enrollments.",
    )  # fmt: skip
    after_enrollment_id = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, required=False,
        help_text="Continue after this enrollment: the previous page's `next_after_enrollment_id`.",
    )  # fmt: skip


class PlannedSendSerializer(serializers.Serializer):
    enrollment_id = serializers.IntegerField()
    subscriber_id = serializers.IntegerField()
    email = serializers.CharField()
    step_id = serializers.IntegerField()
    position = serializers.IntegerField()
    template_name = serializers.CharField()
    subject = serializers.CharField(help_text="The template's subject, merge tags not rendered.")
    planned_at = serializers.DateTimeField(help_text="UTC.")
    local_at = serializers.DateTimeField(help_text="The same instant on the subscriber's clock, with its offset.")
    time_zone = serializers.CharField(help_text="The subscriber's zone (the workspace's when they have none).")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # DRF renders every datetime in the project's zone; the local time keeps the subscriber's offset.
        data["local_at"] = instance.local_at.isoformat()
        return data


class DryRunStepCountSerializer(serializers.Serializer):
    step_id = serializers.IntegerField()
    position = serializers.IntegerField()
    template_name = serializers.CharField()
    count = serializers.IntegerField()


class DryRunDayCountSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="A UTC day.")
    count = serializers.IntegerField()


class DryRunSummarySerializer(serializers.Serializer):
    sends = serializers.IntegerField()
    per_step = DryRunStepCountSerializer(many=True)
    per_day = DryRunDayCountSerializer(many=True)
    blocked = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Enrollments that would send nothing, by reason: unsubscribed, bounced, complained, suppressed, "
        "left_list, goal_reached, empty_window, not_scheduled, no_step_left.",
    )
    enrollments_examined = serializers.IntegerField()


class SequenceDryRunResponseSerializer(serializers.Serializer):
    sequence_id = serializers.IntegerField()
    sequence_status = serializers.CharField()
    days = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    notes = serializers.ListField(child=serializers.CharField())
    rows = PlannedSendSerializer(many=True)
    summary = DryRunSummarySerializer(help_text="Counts over this page's rows and enrollments.")
    truncated = serializers.BooleanField(help_text="True when more enrollments are left for another page.")
    next_after_enrollment_id = serializers.IntegerField(allow_null=True)


class SequenceBackfillRequestSerializer(serializers.Serializer):
    list_id = id_field(
        required=False,
        help_text="A list of this workspace: its `subscribed` members are enrolled. Omitted: the sequence's own list.",
    )
    start_by_join_age = serializers.BooleanField(
        default=False,
        help_text="Start each member at the last step whose cumulative delay is at most the time since they "
        "joined the list, due now.",
    )
    dry_run = serializers.BooleanField(default=False, help_text="Count what would happen; write nothing.")


class SequenceBackfillResponseSerializer(serializers.Serializer):
    list_id = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    queued = serializers.BooleanField(help_text="True: the list is large, a worker enrolls it (202).")
    members = serializers.IntegerField(help_text="The list's subscribed members considered.")
    enrolled = serializers.IntegerField(help_text="Enrolled (or, in a dry run, would be).")
    skipped = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Members not enrolled, by reason: already_enrolled, re_entry_blocked, suppressed, not_on_list, "
        "unsubscribed, bounced, complained.",
    )
    starting_steps = serializers.DictField(
        child=serializers.IntegerField(), help_text="Enrolled members by the step id they start at."
    )
