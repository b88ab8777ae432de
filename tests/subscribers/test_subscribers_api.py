"""Subscribers through the API: create, validate, update, filter, paginate, unsubscribe, bulk upsert."""

import pytest

from accounts.models import Role
from accounts.services import api_key_create
from subscribers.models import Event, EventType, FieldType, ListMembership, Subscriber, SubscriberStatus
from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db


def test_create_normalizes_the_email_and_records_consent_and_a_subscribed_event(api, workspace):
    response = api.post(
        "/api/v1/subscribers",
        {"email": "  Ada.Lovelace@EXAMPLE.org ", "first_name": "Ada", "time_zone": "Europe/London"},
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "ada.lovelace@example.org"
    assert body["status"] == "active"
    assert body["consent_source"] == "api"
    assert body["consent_ip"] == "203.0.113.7"
    assert body["consent_at"] is not None
    event = Event.objects.get(subscriber_id=body["id"])
    assert event.type == EventType.SUBSCRIBED and event.workspace == workspace


def test_duplicate_email_in_another_case_answers_409_with_a_code(api, workspace):
    SubscriberFactory(workspace=workspace, email="ada@example.org")
    response = api.post("/api/v1/subscribers", {"email": "ADA@Example.org"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "subscriber_exists"
    assert Subscriber.objects.filter(workspace=workspace).count() == 1


def test_same_email_may_exist_in_two_workspaces(api, other_api):
    assert api.post("/api/v1/subscribers", {"email": "ada@example.org"}).status_code == 201
    assert other_api.post("/api/v1/subscribers", {"email": "ada@example.org"}).status_code == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "ada@"}, "email"),
        ({"email": 12345}, "email"),
        ({"email": "ada@example.org", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"email": "ada@example.org", "locale": "not a locale!"}, "locale"),
        ({"email": "ada@example.org", "attributes": {"plan": "pro"}}, "attributes.plan"),
        ({"email": "ada@example.org", "attributes": ["x"]}, "attributes"),
        ({"email": "ada@example.org", "list_ids": [10**30]}, "list_ids"),
    ],
)
def test_invalid_subscriber_answers_400_naming_the_field(api, payload, field):
    response = api.post("/api/v1/subscribers", payload, format="json")
    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert any(key == field or key.startswith(field) for key in details), details


def test_attributes_are_checked_and_coerced_against_field_definitions(api, workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.CHOICE, choices=["free", "pro"])
    FieldDefinitionFactory(workspace=workspace, key="seats", type=FieldType.NUMBER)
    FieldDefinitionFactory(workspace=workspace, key="trial", type=FieldType.BOOLEAN)
    FieldDefinitionFactory(workspace=workspace, key="renews", type=FieldType.DATE)
    FieldDefinitionFactory(workspace=workspace, key="seen", type=FieldType.DATETIME)
    good = {"plan": "pro", "seats": "12", "trial": "yes", "renews": "2026-12-01", "seen": "2026-01-02T03:04:05+01:00"}
    response = api.post("/api/v1/subscribers", {"email": "a@example.org", "attributes": good}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["attributes"] == {
        "plan": "pro", "seats": 12, "trial": True, "renews": "2026-12-01", "seen": "2026-01-02T02:04:05+00:00",
    }  # fmt: skip

    for key, value in [("plan", "enterprise"), ("seats", "many"), ("seats", 10**40), ("trial", "maybe"),
                       ("renews", "2026-13-45"), ("seen", "yesterday"), ("seats", True)]:  # fmt: skip
        response = api.post(
            "/api/v1/subscribers", {"email": "b@example.org", "attributes": {key: value}}, format="json"
        )
        assert response.status_code == 400, (key, value)
        assert list(response.json()["error"]["details"]) == [f"attributes.{key}"]


def test_update_merges_attributes_and_null_removes_one(api, workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan")
    FieldDefinitionFactory(workspace=workspace, key="company")
    subscriber = SubscriberFactory(workspace=workspace, attributes={"plan": "free", "company": "Acme"})
    response = api.patch(
        f"/api/v1/subscribers/{subscriber.pk}", {"attributes": {"plan": "pro", "company": None}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["attributes"] == {"plan": "pro"}


def test_update_to_an_address_taken_by_another_subscriber_answers_409(api, workspace):
    SubscriberFactory(workspace=workspace, email="taken@example.org")
    subscriber = SubscriberFactory(workspace=workspace, email="mine@example.org")
    response = api.patch(f"/api/v1/subscribers/{subscriber.pk}", {"email": "Taken@example.org"})
    assert response.status_code == 409
    response = api.patch(f"/api/v1/subscribers/{subscriber.pk}", {"email": "MINE@example.org", "last_name": "B"})
    assert response.status_code == 200 and response.json()["last_name"] == "B"


def test_delete_removes_the_subscriber(api, workspace):
    subscriber = SubscriberFactory(workspace=workspace)
    assert api.delete(f"/api/v1/subscribers/{subscriber.pk}").status_code == 204
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_list_filters_by_status_list_tag_search_and_created_range(api, workspace):
    newsletter = MailingListFactory(workspace=workspace)
    vip = TagFactory(workspace=workspace, name="vip")
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="Ada")
    grace = SubscriberFactory(workspace=workspace, email="grace@example.org", first_name="Grace")
    gone = SubscriberFactory(workspace=workspace, email="gone@example.org", status=SubscriberStatus.UNSUBSCRIBED)
    ListMembership.objects.create(mailing_list=newsletter, subscriber=ada)
    grace.tags.add(vip)

    def emails(query: str) -> set[str]:
        response = api.get(f"/api/v1/subscribers?{query}")
        assert response.status_code == 200, response.content
        return {row["email"] for row in response.json()["results"]}

    assert emails("status=unsubscribed") == {gone.email}
    assert emails(f"list={newsletter.pk}") == {ada.email}
    assert emails(f"tag={vip.pk}") == {grace.email}
    assert emails("search=GRACE") == {grace.email}
    assert emails("created_after=2999-01-01T00:00:00Z") == set()
    assert emails("created_before=2999-01-01T00:00:00Z") == {ada.email, grace.email, gone.email}
    assert api.get("/api/v1/subscribers?status=sleeping").status_code == 400
    assert api.get("/api/v1/subscribers?list=99999999999999999999999").status_code == 400


def test_list_and_list_status_filters_apply_to_the_same_membership(api, workspace):
    first, second = MailingListFactory(workspace=workspace), MailingListFactory(workspace=workspace)
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    ListMembership.objects.create(mailing_list=first, subscriber=ada, status="pending")
    ListMembership.objects.create(mailing_list=second, subscriber=ada, status="subscribed")
    ListMembership.objects.create(mailing_list=MailingListFactory(workspace=workspace), subscriber=ada)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in api.get(f"/api/v1/subscribers?{query}").json()["results"]]

    assert ids(f"list={second.pk}&list_status=pending") == []
    assert ids(f"list={first.pk}&list_status=pending") == [ada.pk]
    assert ids("list_status=subscribed") == [ada.pk]  # once, though on two lists


def test_list_is_cursor_paginated_newest_first(api, workspace):
    created = [SubscriberFactory(workspace=workspace) for _ in range(5)]
    first = api.get("/api/v1/subscribers?page_size=2").json()
    assert [row["id"] for row in first["results"]] == [created[4].pk, created[3].pk]
    assert "cursor=" in first["next"]
    second = api.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [created[2].pk, created[1].pk]


def test_unsubscribe_records_who_and_why_and_writes_an_event(client_for, workspace):
    marketer = client_for(workspace, Role.MARKETER)
    subscriber = SubscriberFactory(workspace=workspace)
    response = marketer.post(f"/api/v1/subscribers/{subscriber.pk}/unsubscribe", {"reason": "asked by phone"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "unsubscribed"
    assert body["status_reason"] == "asked by phone"
    assert body["status_changed_by"].startswith(f"user:{marketer.user.pk}")
    event = Event.objects.get(subscriber=subscriber, type=EventType.UNSUBSCRIBED)
    assert event.properties["reason"] == "asked by phone"
    assert event.properties["by"] == body["status_changed_by"]
    # Asking again changes nothing and writes no second event.
    marketer.post(f"/api/v1/subscribers/{subscriber.pk}/unsubscribe", {"reason": "again"})
    assert Event.objects.filter(subscriber=subscriber, type=EventType.UNSUBSCRIBED).count() == 1


def test_unsubscribe_through_an_api_key_records_the_key(workspace):
    from rest_framework.test import APIClient

    issued = api_key_create(workspace=workspace, name="crm", scope="write", created_by=None)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=issued.secret)
    subscriber = SubscriberFactory(workspace=workspace)
    response = client.post(f"/api/v1/subscribers/{subscriber.pk}/unsubscribe", {})
    assert response.status_code == 200, response.content
    assert response.json()["status_changed_by"] == f"key:{issued.api_key.pk} {issued.api_key.prefix}"


def test_subscriber_lists_and_tags_can_be_added_and_removed(api, workspace):
    subscriber = SubscriberFactory(workspace=workspace)
    plain = MailingListFactory(workspace=workspace, name="Plain")
    confirmed_only = MailingListFactory(workspace=workspace, name="Confirmed", double_opt_in=True)
    response = api.post(f"/api/v1/subscribers/{subscriber.pk}/lists", {"list_ids": [plain.pk, confirmed_only.pk]})
    assert response.status_code == 200, response.content
    assert {row["list_name"]: row["status"] for row in response.json()} == {
        "Plain": "subscribed",
        "Confirmed": "pending",
    }

    assert api.post(f"/api/v1/subscribers/{subscriber.pk}/confirm").status_code == 200
    memberships = api.get(f"/api/v1/subscribers/{subscriber.pk}/lists").json()
    assert {row["status"] for row in memberships} == {"subscribed"}

    assert api.delete(f"/api/v1/subscribers/{subscriber.pk}/lists/{plain.pk}").status_code == 204
    assert ListMembership.objects.get(subscriber=subscriber, mailing_list=plain).status == "unsubscribed"

    response = api.post(f"/api/v1/subscribers/{subscriber.pk}/tags", {"tags": ["vip", "beta"]}, format="json")
    assert response.status_code == 200, response.content
    assert [tag["name"] for tag in response.json()] == ["beta", "vip"]
    vip = subscriber.tags.get(name="vip")
    assert api.delete(f"/api/v1/subscribers/{subscriber.pk}/tags/{vip.pk}").status_code == 204
    assert list(subscriber.tags.values_list("name", flat=True)) == ["beta"]


def test_bulk_upsert_reports_a_result_per_item(api, workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan")
    existing = SubscriberFactory(workspace=workspace, email="old@example.org", first_name="Old")
    newsletter = MailingListFactory(workspace=workspace)
    items = [
        {"email": "new@example.org", "first_name": "New", "attributes": {"plan": "pro"}},
        {"email": "bad-address"},
        {"email": "OLD@example.org", "first_name": "Renamed"},
        {"email": "new@example.org"},
        {"email": "x@example.org", "attributes": {"unknown": 1}},
        "not an object",
        {"email": "tz@example.org", "time_zone": "Nowhere/Land"},
    ]
    response = api.post(
        "/api/v1/subscribers/bulk",
        {"subscribers": items, "list_id": newsletter.pk, "tags": ["imported"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    results = body["results"]
    assert [r["status"] for r in results] == ["created", "error", "updated", "error", "error", "error", "error"]
    assert [r["index"] for r in results] == list(range(7))
    assert results[1]["error"]["field"] == "email"
    assert results[3]["error"]["code"] == "duplicate"
    assert results[4]["error"]["field"] == "attributes.unknown"
    assert results[6]["error"]["field"] == "time_zone"
    assert (body["created"], body["updated"], body["errors"]) == (1, 1, 5)
    existing.refresh_from_db()
    assert existing.first_name == "Renamed"
    created = Subscriber.objects.get(pk=results[0]["id"])
    assert created.attributes == {"plan": "pro"} and created.consent_source == "api"
    subscribed = Event.objects.get(subscriber=created, type=EventType.SUBSCRIBED)
    assert subscribed.properties == {
        "source": "api",
        "list_id": newsletter.pk,
        "list": newsletter.name,
        "status": "subscribed",
    }
    # The known address is not "subscribed" again; its real changes are logged (rename, new tag).
    assert sorted(Event.objects.filter(subscriber=existing).values_list("type", "properties")) == [
        (EventType.FIELD_CHANGED, {"field": "first_name", "from": "Old", "to": "Renamed"}),
        (EventType.TAG_ADDED, {"tag": "imported", "tag_id": created.tags.get().pk}),
    ]
    assert set(ListMembership.objects.filter(mailing_list=newsletter).values_list("subscriber_id", flat=True)) == {
        created.pk, existing.pk,
    }  # fmt: skip
    assert list(created.tags.values_list("name", flat=True)) == ["imported"]


def test_bulk_without_update_existing_skips_known_addresses(api, workspace):
    existing = SubscriberFactory(workspace=workspace, email="old@example.org", first_name="Old")
    response = api.post(
        "/api/v1/subscribers/bulk",
        {"subscribers": [{"email": "old@example.org", "first_name": "New"}], "update_existing": False},
        format="json",
    )
    assert response.json()["results"][0]["status"] == "skipped"
    existing.refresh_from_db()
    assert existing.first_name == "Old"


def test_bulk_rejects_more_than_1000_items(api):
    items = [{"email": f"u{i}@example.org"} for i in range(1001)]
    response = api.post("/api/v1/subscribers/bulk", {"subscribers": items}, format="json")
    assert response.status_code == 400
    assert "subscribers" in response.json()["error"]["details"]


def test_bulk_with_an_idempotency_key_runs_once(api, workspace):
    payload = {"subscribers": [{"email": "once@example.org"}]}
    first = api.post("/api/v1/subscribers/bulk", payload, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    again = api.post("/api/v1/subscribers/bulk", payload, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["results"][0]["status"] == "created"


def test_export_streams_the_filtered_subscribers_as_csv(api, workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan")
    SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="=cmd()", attributes={"plan": "pro"})
    SubscriberFactory(workspace=workspace, email="gone@example.org", status=SubscriberStatus.UNSUBSCRIBED)
    response = api.get("/api/v1/subscribers/export?status=active")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("id,email,first_name") and lines[0].endswith("attributes.plan")
    assert len(lines) == 2
    assert "ada@example.org" in lines[1] and lines[1].endswith(",pro")
    assert "'=cmd()" in lines[1]  # no formula reaches a spreadsheet


def test_huge_or_malformed_ids_in_the_path_answer_404(api):
    assert api.get("/api/v1/subscribers/99999999999999999999999999").status_code == 404
    assert api.get("/api/v1/subscribers/abc").status_code == 404


def test_joining_lists_with_one_unknown_list_changes_nothing(api, workspace):
    subscriber = SubscriberFactory(workspace=workspace)
    good = MailingListFactory(workspace=workspace)
    response = api.post(f"/api/v1/subscribers/{subscriber.pk}/lists", {"list_ids": [good.pk, 987654]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["list_ids[1]"]
    assert not ListMembership.objects.filter(subscriber=subscriber).exists()


def test_create_with_an_idempotency_key_creates_once(api, workspace):
    first = api.post("/api/v1/subscribers", {"email": "once@example.org"}, HTTP_IDEMPOTENCY_KEY="create-1")
    again = api.post("/api/v1/subscribers", {"email": "once@example.org"}, HTTP_IDEMPOTENCY_KEY="create-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Subscriber.objects.filter(workspace=workspace).count() == 1


def test_export_answers_a_client_that_accepts_only_csv(api, workspace):
    SubscriberFactory(workspace=workspace, email="ada@example.org")
    response = api.get("/api/v1/subscribers/export", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert b"ada@example.org" in b"".join(response.streaming_content)
    response = api.get("/api/v1/subscribers/export?status=nonsense", HTTP_ACCEPT="text/csv")
    assert response.status_code == 400


def test_export_under_asgi_streams_without_collecting_the_rows_first(client_for, workspace):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    SubscriberFactory(workspace=workspace, email="ada@example.org")
    SubscriberFactory(workspace=workspace, email="grace@example.org")
    client = AsyncClient(headers={"X-Workspace": str(workspace.pk)})
    client.force_login(client_for(workspace, Role.VIEWER).user)

    async def export():
        response = await client.get("/api/v1/subscribers/export")
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(export)()
    assert response.status_code == 200
    assert response.is_async  # served from an async iterator: daphne sends it as it is produced
    body = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in chunks).decode()
    assert body.count("@example.org") == 2
