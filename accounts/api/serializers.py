"""Request and response shapes of the accounts API."""

from rest_framework import serializers

from accounts.models import ApiKey, ApiKeyScope, Membership, Role, Workspace


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = [
            "id", "name", "slug", "time_zone", "from_name", "from_email", "reply_to", "postal_address",
            "sending_rate_per_second", "track_opens", "quiet_hours_start", "quiet_hours_end", "frequency_cap_count",
            "frequency_cap_hours", "sending_paused_at", "sending_paused_reason", "role", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "slug", "role", "sending_paused_at", "sending_paused_reason", "created_at", "updated_at",
        ]  # fmt: skip

    def get_role(self, workspace: Workspace) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(workspace.pk)


class WorkspaceWriteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workspace
        fields = [
            "name", "time_zone", "from_name", "from_email", "reply_to", "postal_address", "sending_rate_per_second",
            "track_opens", "quiet_hours_start", "quiet_hours_end", "frequency_cap_count", "frequency_cap_hours",
        ]  # fmt: skip
        extra_kwargs = {"frequency_cap_hours": {"max_value": 24 * 366}}


class WorkspaceSendingPauseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, help_text="Shown wherever the pause is, until sending resumes.")


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = ["id", "email", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    password = serializers.CharField(required=False, write_only=True, min_length=8)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=ApiKeyScope.choices, default=ApiKeyScope.READ)


class ApiKeyIssuedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key. Shown once: store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields
