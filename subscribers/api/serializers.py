"""Request and response shapes of the subscribers API. Validation of meaning lives in the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from subscribers.links import mailing_list_subscribe_url
from subscribers.models import (
    Event,
    EventType,
    FieldDefinition,
    FieldType,
    ImportJob,
    ImportStatus,
    ListMembership,
    MailingList,
    MembershipStatus,
    Segment,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionKind,
    Tag,
)

MAX_ID = 2**63 - 1
MAX_ITEMS = 1000


def IdField(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class HtmlSafeBooleanField(serializers.BooleanField):
    """A boolean whose default also applies to multipart forms (DRF treats a missing checkbox as False)."""

    default_empty_html = serializers.empty


# Subscribers ---------------------------------------------------------------------------------


class SubscriberSerializer(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)
    attributes = serializers.DictField(read_only=True, help_text="Custom fields, keyed by field key.")
    tags = serializers.SlugRelatedField[Tag](many=True, read_only=True, slug_field="name")
    status = serializers.ChoiceField(choices=SubscriberStatus.choices, read_only=True)

    class Meta:
        model = Subscriber
        fields = [
            "id", "email", "first_name", "last_name", "full_name", "attributes", "time_zone", "locale", "status",
            "status_changed_at", "status_reason", "status_changed_by", "consent_source", "consent_ip", "consent_at",
            "confirmed_at", "tags", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class SubscriberWriteSerializer(serializers.Serializer):
    """Shape only: the service normalizes the address, checks the time zone and the attributes."""

    email = serializers.CharField(max_length=320, help_text="Normalized and lower-cased; unique per workspace.")
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    attributes = serializers.DictField(
        required=False, help_text="Custom fields by key (see /api/v1/fields). On update, null removes a key."
    )
    time_zone = serializers.CharField(max_length=64, required=False, allow_blank=True, help_text="IANA zone name.")
    locale = serializers.CharField(max_length=16, required=False, allow_blank=True)
    consent_source = serializers.CharField(max_length=100, required=False, allow_blank=True)
    consent_ip = serializers.IPAddressField(required=False, allow_null=True)
    consent_at = serializers.DateTimeField(required=False, allow_null=True)
    confirmed_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Double opt-in confirmed.")


class SubscriberCreateSerializer(SubscriberWriteSerializer):
    list_ids = serializers.ListField(child=IdField(), required=False, max_length=100, help_text="Lists to join.")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=100, help_text="Tag names."
    )


class SubscriberUpdateSerializer(SubscriberWriteSerializer):
    email = serializers.CharField(max_length=320, required=False)


class ItemErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The failing field, e.g. `email` or `attributes.plan`.")
    code = serializers.CharField()
    message = serializers.CharField()


class BulkItemsField(serializers.ListField):
    """Items are validated one by one by the service, so one bad item cannot fail the whole batch."""

    child = serializers.JSONField()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.JSONField(), min_length=1, max_length=MAX_ITEMS, **kwargs)


@extend_schema_field(SubscriberWriteSerializer(many=True))
class SubscriberItemsField(BulkItemsField):
    pass


class SubscriberBulkSerializer(serializers.Serializer):
    subscribers = SubscriberItemsField(help_text="1 to 1,000 subscribers, matched by email.")
    update_existing = serializers.BooleanField(default=True, help_text="Update subscribers that exist already.")
    list_id = IdField(required=False, allow_null=True, help_text="Add created and updated subscribers to this list.")
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=100)


class BulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "skipped", "error"])
    id = serializers.IntegerField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    error = ItemErrorSerializer(allow_null=True)


class BulkResultSerializer(serializers.Serializer):
    results = BulkItemResultSerializer(many=True)
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    skipped = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field, not Serializer.errors


class UnsubscribeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class SubscriberMembershipSerializer(serializers.ModelSerializer):
    list_id = serializers.IntegerField(source="mailing_list_id", read_only=True)
    list_name = serializers.CharField(source="mailing_list.name", read_only=True)
    status = serializers.ChoiceField(choices=MembershipStatus.choices, read_only=True)

    class Meta:
        model = ListMembership
        fields = ["list_id", "list_name", "status", "subscribed_at", "unsubscribed_at"]
        read_only_fields = fields


class SubscriberListsAddSerializer(serializers.Serializer):
    list_ids = serializers.ListField(child=IdField(), min_length=1, max_length=100)


class SubscriberTagsAddSerializer(serializers.Serializer):
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=100,
        help_text="Tag names; missing tags are created.",
    )  # fmt: skip


# Lists, tags, fields, suppressions -----------------------------------------------------------


class MailingListSerializer(serializers.ModelSerializer):
    subscribed_count = serializers.IntegerField(read_only=True, default=0)
    pending_count = serializers.IntegerField(read_only=True, default=0)
    unsubscribed_count = serializers.IntegerField(read_only=True, default=0)
    subscribe_url = serializers.SerializerMethodField(
        help_text="The list's public subscribe form: link to it, or POST `email` to it from any site."
    )

    class Meta:
        model = MailingList
        fields = [
            "id", "name", "description", "double_opt_in", "subscribed_count", "pending_count", "unsubscribed_count",
            "subscribe_url", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_subscribe_url(self, mailing_list: MailingList) -> str:
        return mailing_list_subscribe_url(list_id=mailing_list.pk)


class MailingListWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    double_opt_in = serializers.BooleanField(required=False, help_text="New members stay pending until they confirm.")


class ListMemberSerializer(serializers.ModelSerializer):
    subscriber_id = serializers.IntegerField(read_only=True)
    email = serializers.CharField(source="subscriber.email", read_only=True)
    status = serializers.ChoiceField(choices=MembershipStatus.choices, read_only=True)

    class Meta:
        model = ListMembership
        fields = ["subscriber_id", "email", "status", "subscribed_at", "unsubscribed_at"]
        read_only_fields = fields


class ListMembersChangeSerializer(serializers.Serializer):
    subscriber_ids = serializers.ListField(child=IdField(), required=False, max_length=MAX_ITEMS)
    emails = serializers.ListField(child=serializers.CharField(max_length=320), required=False, max_length=MAX_ITEMS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("subscriber_ids") and not attrs.get("emails"):
            raise serializers.ValidationError({"subscriber_ids": ["Give subscriber_ids, emails or both."]})
        if len(attrs.get("subscriber_ids", [])) + len(attrs.get("emails", [])) > MAX_ITEMS:
            raise serializers.ValidationError({"subscriber_ids": [f"At most {MAX_ITEMS} subscribers per request."]})
        return attrs


class MemberResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position: subscriber_ids first, then emails.")
    status = serializers.ChoiceField(choices=["subscribed", "pending", "unsubscribed", "unchanged", "error"])
    subscriber_id = serializers.IntegerField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    error = ItemErrorSerializer(allow_null=True)


class MemberResultsSerializer(serializers.Serializer):
    results = MemberResultSerializer(many=True)


class TagSerializer(serializers.ModelSerializer):
    subscriber_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Tag
        fields = ["id", "name", "subscriber_count", "created_at"]
        read_only_fields = fields


class TagWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class FieldDefinitionSerializer(serializers.ModelSerializer):
    choices = serializers.ListField(child=serializers.CharField(), read_only=True)
    type = serializers.ChoiceField(choices=FieldType.choices, read_only=True)

    class Meta:
        model = FieldDefinition
        fields = ["id", "key", "label", "type", "choices", "created_at"]
        read_only_fields = fields


class FieldDefinitionCreateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=64, help_text="Lower-case identifier, e.g. `plan`; fixed once created.")
    label = serializers.CharField(max_length=100, required=False, allow_blank=True)  # type: ignore[assignment]
    type = serializers.ChoiceField(choices=FieldType.choices, default=FieldType.TEXT)
    choices = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=500)


class FieldDefinitionUpdateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False)  # type: ignore[assignment]
    choices = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=500)


class SuppressionSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=SuppressionKind.choices, read_only=True)

    class Meta:
        model = Suppression
        fields = ["id", "kind", "value", "reason", "source", "created_at"]
        read_only_fields = fields


class SuppressionCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SuppressionKind.choices, default=SuppressionKind.EMAIL)
    value = serializers.CharField(max_length=320, help_text="An address, or a domain when kind is `domain`.")
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)


class SuppressionUpdateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, allow_blank=True)


# Events --------------------------------------------------------------------------------------


class EventSerializer(serializers.ModelSerializer):
    subscriber_id = serializers.IntegerField(read_only=True, allow_null=True)
    properties = serializers.DictField(read_only=True)
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, allow_null=True)
    type = serializers.ChoiceField(choices=EventType.choices, read_only=True)

    class Meta:
        model = Event
        fields = [
            "id", "subscriber_id", "type", "name", "properties", "occurred_at", "recorded_at", "message_id",
            "sequence_id", "step_id", "campaign_id", "revenue", "currency", "dedupe_key",
        ]  # fmt: skip
        read_only_fields = fields


class EventInSerializer(serializers.Serializer):
    """One incoming custom event (documentation of the shape; the service checks each item)."""

    subscriber_id = IdField(required=False, help_text="Identify the subscriber by id...")
    email = serializers.CharField(required=False, help_text="...or by address.")
    create_subscriber = serializers.BooleanField(
        required=False, default=False, help_text="Create a subscriber for an unknown address."
    )
    name = serializers.CharField(max_length=100, help_text="The event's name, e.g. `purchase`.")
    properties = serializers.DictField(required=False, help_text="Any JSON object up to 16 KB.")
    occurred_at = serializers.DateTimeField(required=False, help_text="Defaults to now.")
    dedupe_key = serializers.CharField(
        max_length=200, required=False, help_text="An event with a key seen before is a duplicate, not stored twice."
    )
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2, required=False)
    currency = serializers.CharField(min_length=3, max_length=3, required=False)


@extend_schema_field(EventInSerializer(many=True))
class EventItemsField(BulkItemsField):
    pass


class EventBatchSerializer(serializers.Serializer):
    events = EventItemsField(help_text="1 to 1,000 events.")


class EventItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "error"])
    id = serializers.IntegerField(allow_null=True, help_text="The event's id (the existing one for a duplicate).")
    subscriber_id = serializers.IntegerField(allow_null=True)
    error = ItemErrorSerializer(allow_null=True)


class EventIngestResultSerializer(serializers.Serializer):
    results = EventItemResultSerializer(many=True)
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # a field, not Serializer.errors


# Imports -------------------------------------------------------------------------------------


class ImportJobSerializer(serializers.ModelSerializer):
    list_id = serializers.IntegerField(source="mailing_list_id", read_only=True, allow_null=True)
    tags = serializers.ListField(source="tag_names", child=serializers.CharField(), read_only=True)
    column_mapping = serializers.DictField(child=serializers.CharField(), read_only=True)
    has_error_report = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ImportStatus.choices, read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "status", "original_filename", "column_mapping", "list_id", "tags", "update_existing",
            "total_bytes", "processed_bytes", "processed_rows", "created_count", "updated_count", "skipped_count",
            "error_count", "has_error_report", "failure_reason", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_has_error_report(self, job: ImportJob) -> bool:
        return bool(job.error_report)


class ImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A UTF-8 CSV whose first row names the columns.")
    column_mapping = serializers.JSONField(
        required=False,
        help_text="JSON object: CSV column -> email | first_name | last_name | time_zone | locale | attributes.KEY "
        "(empty string ignores a column). Without it, columns are matched by name.",
    )
    list_id = IdField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=100)
    update_existing = HtmlSafeBooleanField(default=True)

    def validate_tags(self, tags: list[str]) -> list[str]:
        # A form field may carry "a,b" as one value.
        return [name.strip() for value in tags for name in value.split(",") if name.strip()]


class SegmentSerializer(serializers.ModelSerializer):
    rules = serializers.JSONField(help_text="The rule tree; see docs/subscribers.md, Segments.")

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rules", "created_at", "updated_at"]
        read_only_fields = fields


class SegmentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    rules = serializers.JSONField(help_text="The rule tree: all / any / not over leaf conditions.")


class SegmentRulesSerializer(serializers.Serializer):
    rules = serializers.JSONField(help_text="An unsaved rule tree to count or preview.")


class SegmentCountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class SegmentPreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = SubscriberSerializer(many=True)
