"""Request and response shapes of the realtime endpoints."""

from __future__ import annotations

from rest_framework import serializers

from realtime.services import MAX_BROADCAST_LENGTH


class ByTypeSerializer(serializers.Serializer):
    dashboard = serializers.IntegerField()
    events = serializers.IntegerField()
    campaign = serializers.IntegerField()


class LiveStatsSerializer(serializers.Serializer):
    workspace = serializers.IntegerField()
    connections = ByTypeSerializer(help_text="Open sockets of this workspace, by type, across all live processes.")
    connections_total = serializers.IntegerField()
    processes = serializers.IntegerField(help_text="Processes holding at least one socket of this workspace.")
    messages_pushed = ByTypeSerializer(help_text="Group messages pushed to this workspace's sockets, by type.")
    messages_pushed_total = serializers.IntegerField()


class BroadcastSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=MAX_BROADCAST_LENGTH, help_text="Shown on the workspace's dashboards.")


class BroadcastResultSerializer(serializers.Serializer):
    pushed = serializers.IntegerField(help_text="Group messages sent (one per workspace dashboard group).")


class LiveEventSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="The custom event's name, e.g. `deploy`.")
    properties = serializers.DictField(required=False, help_text="Any JSON object up to 16 KB.")
    subscriber_id = serializers.IntegerField(
        required=False, min_value=1, max_value=10**18, help_text="Optional: the subscriber the event is about."
    )


class LiveEventResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    subscriber_id = serializers.IntegerField(allow_null=True)
    occurred_at = serializers.DateTimeField()
