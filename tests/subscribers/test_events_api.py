"""Event ingestion (single and batch, dedupe), the subscriber timeline and the event log."""

import pytest

from subscribers.models import Event, EventType, Subscriber
from subscribers.services import event_handler_register, event_record
from subscribers.services.events import _event_handlers
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_single_event_by_email_is_created_with_201(api, workspace):
    subscriber = SubscriberFactory(workspace=workspace, email="ada@example.org")
    response = api.post(
        "/api/v1/events",
        {"email": "ADA@example.org", "name": "purchase", "properties": {"sku": "A1"}, "revenue": "19.90",
         "currency": "eur", "occurred_at": "2026-01-02T03:04:05Z"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    result = response.json()["results"][0]
    event = Event.objects.get(pk=result["id"])
    assert (event.subscriber, event.type, event.name) == (subscriber, EventType.CUSTOM, "purchase")
    assert str(event.revenue) == "19.90" and event.currency == "EUR"
    assert event.occurred_at.isoformat() == "2026-01-02T03:04:05+00:00"


def test_single_event_for_an_unknown_subscriber_answers_404_naming_the_field(api):
    response = api.post("/api/v1/events", {"email": "nobody@example.org", "name": "x"}, format="json")
    assert response.status_code == 404
    assert list(response.json()["error"]["details"]) == ["email"]
    response = api.post("/api/v1/events", {"name": "x"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["subscriber_id"]


def test_batch_reports_created_duplicate_and_error_per_item(api, workspace):
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    events = [
        {"subscriber_id": ada.pk, "name": "login", "dedupe_key": "login-1"},
        {"subscriber_id": ada.pk, "name": "login", "dedupe_key": "login-1"},
        {"email": "new@example.org", "name": "signup", "create_subscriber": True},
        {"email": "new@example.org", "name": "visit", "create_subscriber": True},
        {"email": "unknown@example.org", "name": "visit"},
        {"subscriber_id": ada.pk},
        {"subscriber_id": "ada", "name": "x"},
        {"subscriber_id": ada.pk, "name": "x", "properties": "not an object"},
        {"subscriber_id": ada.pk, "name": "x", "occurred_at": "soon"},
        {"subscriber_id": 10**30, "name": "x"},
        [],
    ]
    response = api.post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created", "duplicate", "created", "created"] + ["error"] * 7
    assert body["results"][0]["id"] == body["results"][1]["id"]
    assert [r["error"]["field"] for r in body["results"][4:]] == [
        "email", "name", "subscriber_id", "properties", "occurred_at", "subscriber_id", "event",
    ]  # fmt: skip
    assert (body["created"], body["duplicates"], body["errors"]) == (3, 1, 7)
    new = Subscriber.objects.get(workspace=workspace, email="new@example.org")
    assert new.consent_source == "event"
    assert Event.objects.filter(subscriber=new, type=EventType.CUSTOM).count() == 2
    # A retry of the whole batch stores nothing twice that carries a dedupe key.
    again = api.post("/api/v1/events", {"events": events[:2]}, format="json").json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert Event.objects.filter(dedupe_key="login-1").count() == 1


def test_a_bare_json_array_is_a_batch_too(api, workspace):
    ada = SubscriberFactory(workspace=workspace)
    response = api.post("/api/v1/events", [{"subscriber_id": ada.pk, "name": "a"}], format="json")
    assert response.status_code == 200
    assert response.json()["created"] == 1


def test_batch_of_more_than_1000_events_is_refused(api, workspace):
    ada = SubscriberFactory(workspace=workspace)
    response = api.post("/api/v1/events", {"events": [{"subscriber_id": ada.pk, "name": "a"}] * 1001}, format="json")
    assert response.status_code == 400
    assert "events" in response.json()["error"]["details"]


def test_ingested_events_reach_registered_handlers_after_commit(api, workspace, django_capture_on_commit_callbacks):
    seen = []
    handler = event_handler_register(lambda events: seen.extend(event.name for event in events))
    try:
        ada = SubscriberFactory(workspace=workspace)
        with django_capture_on_commit_callbacks(execute=True):
            api.post("/api/v1/events", {"subscriber_id": ada.pk, "name": "purchase"}, format="json")
        assert seen == ["purchase"]
    finally:
        _event_handlers.remove(handler)


def test_timeline_lists_the_subscribers_events_newest_first_with_cursor_pages(api, workspace):
    ada = SubscriberFactory(workspace=workspace)
    other = SubscriberFactory(workspace=workspace)
    for day in range(1, 6):
        event_record(workspace=workspace, subscriber=ada, name=f"day{day}", occurred_at=f"2026-01-0{day}T00:00:00Z")
    event_record(workspace=workspace, subscriber=other, name="elsewhere")
    page = api.get(f"/api/v1/subscribers/{ada.pk}/events?page_size=3").json()
    assert [e["name"] for e in page["results"]] == ["day5", "day4", "day3"]
    rest = api.get(page["next"]).json()
    assert [e["name"] for e in rest["results"]] == ["day2", "day1"]
    assert api.get(f"/api/v1/subscribers/{ada.pk}/events?name=day2").json()["results"][0]["name"] == "day2"


def test_event_log_filters_by_type_name_subscriber_and_time(api, workspace):
    ada = SubscriberFactory(workspace=workspace)
    grace = SubscriberFactory(workspace=workspace)
    event_record(workspace=workspace, subscriber=ada, name="purchase", occurred_at="2026-01-01T00:00:00Z")
    event_record(workspace=workspace, subscriber=grace, name="purchase", occurred_at="2026-02-01T00:00:00Z")
    event_record(workspace=workspace, subscriber=grace, type=EventType.OPENED, occurred_at="2026-03-01T00:00:00Z")

    def names(query: str) -> list[tuple[str, int]]:
        response = api.get(f"/api/v1/events?{query}")
        assert response.status_code == 200, response.content
        return [(e["name"], e["subscriber_id"]) for e in response.json()["results"]]

    assert names("type=opened") == [("opened", grace.pk)]
    assert names("name=purchase") == [("purchase", grace.pk), ("purchase", ada.pk)]
    assert names(f"subscriber={ada.pk}") == [("purchase", ada.pk)]
    assert names("occurred_after=2026-01-15T00:00:00Z&occurred_before=2026-02-15T00:00:00Z") == [("purchase", grace.pk)]
    assert api.get("/api/v1/events?occurred_after=yesterday").status_code == 400
