"""tag_added, tag_removed and field_changed events: recorded once per real change, with the right
properties, by the single-subscriber services and by the bulk paths (one insert per chunk)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subscribers.models import Event, EventType, FieldType, Subscriber, Tag
from subscribers.services import (
    event_handler_register,
    subscriber_create,
    subscriber_row_clean,
    subscriber_tag_remove,
    subscriber_tags_add,
    subscriber_update,
    subscribers_bulk_upsert,
    subscribers_upsert_chunk,
    tags_get_or_create,
)
from subscribers.services import events as events_module
from subscribers.services.validation import field_definitions_by_key
from tests.factories import FieldDefinitionFactory, SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db

CHANGE_TYPES = (EventType.TAG_ADDED, EventType.TAG_REMOVED, EventType.FIELD_CHANGED)


def changes(subscriber) -> list[tuple[str, dict]]:
    rows = Event.objects.filter(subscriber=subscriber, type__in=CHANGE_TYPES).order_by("pk")
    return [(row.type, row.properties) for row in rows]


@pytest.fixture
def fields(workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    FieldDefinitionFactory(workspace=workspace, key="score", type=FieldType.NUMBER)


def test_tag_added_once_per_tag_actually_added(workspace):
    subscriber = SubscriberFactory(workspace=workspace)
    vip = TagFactory(workspace=workspace, name="vip")
    subscriber.tags.add(vip)
    subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=["vip", "new", "new"])
    new = Tag.objects.get(workspace=workspace, name="new")
    assert changes(subscriber) == [(EventType.TAG_ADDED, {"tag": "new", "tag_id": new.pk})]
    assert sorted(subscriber.tags.values_list("name", flat=True)) == ["new", "vip"]
    # Adding tags it has is no change and no event.
    subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=["new", "vip"])
    assert len(changes(subscriber)) == 1
    event = Event.objects.get(subscriber=subscriber, type=EventType.TAG_ADDED)
    assert event.name == "tag_added" and event.workspace_id == workspace.pk


def test_tag_removed_only_when_the_subscriber_had_it(workspace):
    subscriber = SubscriberFactory(workspace=workspace)
    vip, other = TagFactory(workspace=workspace, name="vip"), TagFactory(workspace=workspace, name="other")
    subscriber.tags.add(vip)
    assert subscriber_tag_remove(workspace=workspace, subscriber=subscriber, tag=vip) is True
    assert subscriber_tag_remove(workspace=workspace, subscriber=subscriber, tag=vip) is False
    assert subscriber_tag_remove(workspace=workspace, subscriber=subscriber, tag=other) is False
    assert changes(subscriber) == [(EventType.TAG_REMOVED, {"tag": "vip", "tag_id": vip.pk})]
    assert not subscriber.tags.exists()


def test_a_new_subscribers_tags_are_added_events(workspace):
    subscriber = subscriber_create(workspace=workspace, email="new@example.org", tag_names=["a", "b"])
    assert [props["tag"] for kind, props in changes(subscriber)] == ["a", "b"]


def test_field_changed_once_per_changed_field_or_attribute(workspace, fields):
    subscriber = SubscriberFactory(
        workspace=workspace, first_name="Ada", last_name="L", time_zone="", attributes={"plan": "basic", "score": 1}
    )
    subscriber_update(
        workspace=workspace, subscriber=subscriber, first_name="Ada", last_name="Lovelace", time_zone="Europe/London",
        attributes={"plan": "pro", "score": 1},
    )  # fmt: skip
    assert changes(subscriber) == [
        (EventType.FIELD_CHANGED, {"field": "last_name", "from": "L", "to": "Lovelace"}),
        (EventType.FIELD_CHANGED, {"field": "time_zone", "from": "", "to": "Europe/London"}),
        (EventType.FIELD_CHANGED, {"field": "plan", "from": "basic", "to": "pro"}),
    ]
    # A key removed (null) and a key that appears: from / to are null.
    subscriber_update(workspace=workspace, subscriber=subscriber, attributes={"score": None})
    subscriber_update(workspace=workspace, subscriber=subscriber, attributes={"score": 7})
    assert changes(subscriber)[3:] == [
        (EventType.FIELD_CHANGED, {"field": "score", "from": 1, "to": None}),
        (EventType.FIELD_CHANGED, {"field": "score", "from": None, "to": 7}),
    ]


def test_no_event_when_nothing_changed(workspace, fields):
    subscriber = SubscriberFactory(workspace=workspace, first_name="Ada", attributes={"plan": "pro"})
    subscriber_update(workspace=workspace, subscriber=subscriber, first_name="Ada", attributes={"plan": "pro"})
    subscriber_update(workspace=workspace, subscriber=subscriber, consent_source="form")  # not a profile field
    subscriber_update(workspace=workspace, subscriber=subscriber, attributes={"score": None})  # absent already
    assert changes(subscriber) == []


def test_handlers_get_the_change_events_after_commit(
    workspace, fields, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(events_module, "_event_handlers", [])
    seen: list[tuple[str, dict]] = []
    event_handler_register(lambda batch: seen.extend((e.type, e.properties) for e in batch))
    subscriber = SubscriberFactory(workspace=workspace, first_name="Ada")
    with django_capture_on_commit_callbacks(execute=True):
        subscriber_update(workspace=workspace, subscriber=subscriber, first_name="Grace")
        subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=["vip"])
    assert [kind for kind, _ in seen] == [EventType.FIELD_CHANGED, EventType.TAG_ADDED]


# Bulk paths ---------------------------------------------------------------------------------------


def rows(workspace, items):
    definitions = field_definitions_by_key(workspace=workspace)
    return [subscriber_row_clean(data=item, definitions=definitions) for item in items]


def test_upsert_chunk_records_changes_and_new_tags_in_one_insert(workspace, fields):
    vip = TagFactory(workspace=workspace, name="vip")
    same = SubscriberFactory(workspace=workspace, email="same@example.org", first_name="Same")
    renamed = SubscriberFactory(workspace=workspace, email="renamed@example.org", first_name="Old")
    had_tag = SubscriberFactory(workspace=workspace, email="tagged@example.org", attributes={"plan": "pro"})
    had_tag.tags.add(vip)
    tags = tags_get_or_create(workspace=workspace, names=["vip", "import"])
    items = [
        {"email": "same@example.org", "first_name": "Same"},
        {"email": "renamed@example.org", "first_name": "New", "attributes": {"plan": "basic"}},
        {"email": "tagged@example.org", "attributes": {"plan": "pro"}},
        {"email": "fresh@example.org", "first_name": "Fresh"},
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = subscribers_upsert_chunk(
            workspace=workspace, rows=rows(workspace, items), update_existing=True, consent_source="import", tags=tags
        )
    assert [o.status for o in outcomes] == ["unchanged", "updated", "unchanged", "created"]
    event_inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "subscribers_event"')]
    assert len(event_inserts) == 1
    import_tag = tags[1]
    assert changes(same) == [(EventType.TAG_ADDED, {"tag": name, "tag_id": tag.pk}) for name, tag in
                             [("vip", vip), ("import", import_tag)]]  # fmt: skip
    assert changes(renamed) == [
        (EventType.FIELD_CHANGED, {"field": "first_name", "from": "Old", "to": "New"}),
        (EventType.FIELD_CHANGED, {"field": "plan", "from": None, "to": "basic"}),
        (EventType.TAG_ADDED, {"tag": "vip", "tag_id": vip.pk}),
        (EventType.TAG_ADDED, {"tag": "import", "tag_id": import_tag.pk}),
    ]
    assert changes(had_tag) == [(EventType.TAG_ADDED, {"tag": "import", "tag_id": import_tag.pk})]
    fresh = Subscriber.objects.get(email="fresh@example.org")
    assert [kind for kind, _ in changes(fresh)] == [EventType.TAG_ADDED, EventType.TAG_ADDED]
    assert Event.objects.filter(subscriber=fresh, type=EventType.SUBSCRIBED).count() == 1

    # The same chunk again: nothing changes, nothing is recorded.
    before = Event.objects.count()
    subscribers_upsert_chunk(
        workspace=workspace, rows=rows(workspace, items), update_existing=True, consent_source="import", tags=tags
    )
    assert Event.objects.count() == before


def test_bulk_upsert_without_update_existing_records_nothing_for_known_addresses(workspace, fields):
    known = SubscriberFactory(workspace=workspace, email="known@example.org", first_name="Known")
    results = subscribers_bulk_upsert(
        workspace=workspace, items=[{"email": "known@example.org", "first_name": "Other"}], update_existing=False,
        tag_names=["vip"],
    )  # fmt: skip
    assert [r.status for r in results] == ["skipped"]
    assert changes(known) == []


def test_prefetched_tags_are_read_again_after_a_change(workspace):
    SubscriberFactory(workspace=workspace, email="p@example.org")
    subscriber = Subscriber.objects.prefetch_related("tags").get(email="p@example.org")
    assert list(subscriber.tags.all()) == []
    subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=["vip"])
    assert [tag.name for tag in subscriber.tags.all()] == ["vip"]
    subscriber = Subscriber.objects.prefetch_related("tags").get(pk=subscriber.pk)
    subscriber_tag_remove(workspace=workspace, subscriber=subscriber, tag=subscriber.tags.all()[0])
    assert list(subscriber.tags.all()) == []
