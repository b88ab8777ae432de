"""Request and response shapes of the sequences API."""

from __future__ import annotations

from rest_framework import serializers

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

    class Meta:
        model = Sequence
        fields = [
            "id", "name", "description", "status", "send_days", "send_start_hour", "send_end_hour", "re_entry",
            "goal_event", "steps", "created_at", "updated_at", "activated_at",
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
