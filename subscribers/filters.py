"""Query filters shared by the API list views, the CSV export and the selectors."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from subscribers.models import (
    Event,
    EventType,
    ImportJob,
    ImportStatus,
    ListMembership,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionKind,
)

MAX_ID = 2**63 - 1


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 moment compared in UTC: PostgreSQL refuses UTC offsets beyond 15:59 that Python
    accepts (a 500 while streaming the CSV export), and a moment outside the calendar is a 400."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("Enter a date and time within the calendar.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class IdFilter(django_filters.NumberFilter):
    """An integer id: anything else (or out of the database's range) is a 400, never a 500."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class SubscriberFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SubscriberStatus.choices)
    list = IdFilter(method="filter_list", help_text="Members of this list (id), in any state unless `list_status`.")
    list_status = django_filters.ChoiceFilter(
        method="filter_list_status", choices=MembershipStatus.choices,
        help_text="Membership state: of the `list` if given, else of any list.",
    )  # fmt: skip
    tag = IdFilter(field_name="tags__id", help_text="Tagged with this tag (id).")
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Part of email or name.")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Subscriber
        fields = ["status", "list", "list_status", "tag", "search", "created_after", "created_before"]

    def filter_list(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        # One filter() call, so the list and the state apply to the same membership row.
        lookup: dict[str, object] = {"list_memberships__mailing_list_id": value}
        if self.form.cleaned_data.get("list_status"):
            lookup["list_memberships__status"] = self.form.cleaned_data["list_status"]
        return queryset.filter(**lookup)

    def filter_list_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if self.form.cleaned_data.get("list"):
            return queryset  # applied together with `list`
        return queryset.filter(list_memberships__status=value).distinct()

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(email__icontains=value) | Q(first_name__icontains=value) | Q(last_name__icontains=value)
        )


class EventFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=EventType.choices)
    name = django_filters.CharFilter(max_length=100)
    subscriber = IdFilter(field_name="subscriber_id")
    occurred_after = UtcIsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = UtcIsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["type", "name", "subscriber", "occurred_after", "occurred_before"]


class TimelineFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=EventType.choices)
    name = django_filters.CharFilter(max_length=100)

    class Meta:
        model = Event
        fields = ["type", "name"]


class MembershipFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=MembershipStatus.choices)

    class Meta:
        model = ListMembership
        fields = ["status"]


class SuppressionFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=SuppressionKind.choices)
    search = django_filters.CharFilter(field_name="value", lookup_expr="icontains", max_length=254)

    class Meta:
        model = Suppression
        fields = ["kind", "search"]


class ImportJobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ImportStatus.choices)

    class Meta:
        model = ImportJob
        fields = ["status"]
