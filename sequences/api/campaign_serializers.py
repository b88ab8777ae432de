"""Request and response shapes of the campaigns API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from sequences.api.serializers import id_field
from sequences.campaigns import IDS_MAX
from sequences.models import Campaign, MessageStatus


def _ids(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=id_field(), required=False, max_length=IDS_MAX, help_text=help_text)


class CampaignSerializer(serializers.ModelSerializer):
    template_name = serializers.CharField(source="template.name", read_only=True)
    lists: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    tags: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    exclude_lists: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )
    exclude_tags: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )
    segment_ids: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        source="segments", many=True, read_only=True
    )
    exclude_segment_ids: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        source="exclude_segments", many=True, read_only=True
    )

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "template", "template_name", "status", "lists", "tags", "exclude_lists", "exclude_tags",
            "segment_ids", "exclude_segment_ids", "high_priority", "scheduled_at", "started_at", "finished_at",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class CampaignWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    template = id_field(help_text="A template of the same workspace.")
    lists = _ids("Send to subscribed members of any of these lists (of the workspace).")
    tags = _ids("... and to subscribers with any of these tags.")
    segment_ids = _ids(
        "... and to subscribers in any of these saved segments (of the workspace), evaluated when the campaign "
        "starts. At least one list, tag or segment in all."
    )
    exclude_lists = _ids("Leave out members (subscribed or pending) of these lists.")
    exclude_tags = _ids("Leave out subscribers with any of these tags.")
    exclude_segment_ids = _ids("Leave out subscribers in any of these saved segments (evaluated at the start).")
    high_priority = serializers.BooleanField(
        required=False, help_text="Sent even to subscribers who reached the workspace's frequency cap."
    )
    scheduled_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When to send once scheduled; must be in the future."
    )


class CampaignScheduleSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="A future time. Omitted or null: the campaign's own `scheduled_at` if still ahead, else now.",
    )  # fmt: skip


class CampaignStatsSerializer(serializers.Serializer):
    recipients = serializers.IntegerField(help_text="Messages the campaign created (one per recipient).")
    by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text=f"Messages per status: {', '.join(MessageStatus.values)}."
    )
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField(help_text="Unique subscribers whose provider reported the message delivered.")
    opened = serializers.IntegerField(help_text="Unique subscribers who opened.")
    clicked = serializers.IntegerField(help_text="Unique subscribers who clicked.")
    unsubscribed = serializers.IntegerField(help_text="Unique subscribers who unsubscribed from it.")
    bounced = serializers.IntegerField(help_text="Unique subscribers whose message bounced.")
    complained = serializers.IntegerField(help_text="Unique subscribers who marked it as spam.")
    open_rate = serializers.FloatField(allow_null=True, help_text="opened / sent; null while sent is 0.")
    click_rate = serializers.FloatField(allow_null=True, help_text="clicked / sent; null while sent is 0.")
    unsubscribe_rate = serializers.FloatField(allow_null=True, help_text="unsubscribed / sent; null while sent is 0.")
    bounce_rate = serializers.FloatField(allow_null=True, help_text="bounced / sent; null while sent is 0.")
    note = serializers.CharField(help_text="Why rates are null, when they are.")


class RecipientCountSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Subscribers the campaign would go to if it started now.")
