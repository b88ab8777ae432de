"""Lists and their members, tags, custom field definitions and suppressions."""

import pytest

from subscribers.models import EventType, ListMembership, MembershipStatus, Suppression
from subscribers.selectors import suppressed_emails, suppression_match
from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def test_lists_crud_with_member_counts_and_unique_names(api, workspace):
    response = api.post("/api/v1/lists", {"name": "Newsletter", "double_opt_in": True})
    assert response.status_code == 201, response.content
    list_id = response.json()["id"]
    assert response.json()["double_opt_in"] is True
    assert api.post("/api/v1/lists", {"name": "Newsletter"}).json()["error"]["code"] == "list_exists"
    ListMembership.objects.create(mailing_list_id=list_id, subscriber=SubscriberFactory(workspace=workspace))
    detail = api.get(f"/api/v1/lists/{list_id}").json()
    assert detail["subscribed_count"] == 1
    assert api.patch(f"/api/v1/lists/{list_id}", {"name": "Weekly"}).json()["name"] == "Weekly"
    assert api.delete(f"/api/v1/lists/{list_id}").status_code == 204
    assert not ListMembership.objects.filter(mailing_list_id=list_id).exists()


def test_adding_members_to_a_double_opt_in_list_makes_them_pending(api, workspace):
    mailing_list = MailingListFactory(workspace=workspace, double_opt_in=True)
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    SubscriberFactory(workspace=workspace, email="grace@example.org")
    response = api.post(
        f"/api/v1/lists/{mailing_list.pk}/members",
        {"subscriber_ids": [ada.pk, 987654], "emails": ["GRACE@example.org", "bad", "nobody@example.org"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["pending", "error", "pending", "error", "error"]
    assert results[1]["error"]["code"] == "not_found"
    assert results[3]["error"]["field"] == "email"
    assert set(ListMembership.objects.filter(mailing_list=mailing_list).values_list("status", flat=True)) == {
        MembershipStatus.PENDING
    }
    assert ada.events.filter(type=EventType.SUBSCRIBED).exists()
    # Adding again changes nothing.
    again = api.post(f"/api/v1/lists/{mailing_list.pk}/members", {"subscriber_ids": [ada.pk]}, format="json")
    assert again.json()["results"][0]["status"] == "unchanged"
    members = api.get(f"/api/v1/lists/{mailing_list.pk}/members?status=pending").json()["results"]
    assert {m["email"] for m in members} == {"ada@example.org", "grace@example.org"}


def test_removing_members_keeps_them_as_unsubscribed(api, workspace):
    mailing_list = MailingListFactory(workspace=workspace)
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    grace = SubscriberFactory(workspace=workspace, email="grace@example.org")
    api.post(f"/api/v1/lists/{mailing_list.pk}/members", {"subscriber_ids": [ada.pk, grace.pk]}, format="json")
    response = api.delete(f"/api/v1/lists/{mailing_list.pk}/members?subscriber_id={ada.pk}")
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["status"] == "unsubscribed"
    response = api.delete(f"/api/v1/lists/{mailing_list.pk}/members", {"emails": ["grace@example.org"]}, format="json")
    assert response.json()["results"][0]["status"] == "unsubscribed"
    statuses = set(ListMembership.objects.filter(mailing_list=mailing_list).values_list("status", flat=True))
    assert statuses == {MembershipStatus.UNSUBSCRIBED}
    assert api.delete(f"/api/v1/lists/{mailing_list.pk}/members").status_code == 400


def test_tags_crud_with_counts_and_unique_names(api, workspace):
    response = api.post("/api/v1/tags", {"name": "vip"})
    assert response.status_code == 201
    tag_id = response.json()["id"]
    assert api.post("/api/v1/tags", {"name": "vip"}).status_code == 409
    SubscriberFactory(workspace=workspace).tags.add(tag_id)
    assert api.get(f"/api/v1/tags/{tag_id}").json()["subscriber_count"] == 1
    assert api.patch(f"/api/v1/tags/{tag_id}", {"name": "gold"}).json()["name"] == "gold"
    assert api.delete(f"/api/v1/tags/{tag_id}").status_code == 204


def test_field_definitions_validate_key_type_and_choices(api):
    assert api.post("/api/v1/fields", {"key": "Plan Name"}).json()["error"]["details"].keys() == {"key"}
    assert api.post("/api/v1/fields", {"key": "email"}).json()["error"]["code"] == "reserved_key"
    response = api.post("/api/v1/fields", {"key": "plan", "type": "choice"}, format="json")
    assert list(response.json()["error"]["details"]) == ["choices"]
    response = api.post("/api/v1/fields", {"key": "plan", "type": "choice", "choices": ["free", "pro"]}, format="json")
    assert response.status_code == 201, response.content
    field_id = response.json()["id"]
    assert response.json()["label"] == "Plan"
    assert api.post("/api/v1/fields", {"key": "plan"}).status_code == 409
    response = api.patch(f"/api/v1/fields/{field_id}", {"choices": ["free", "pro", "team"]}, format="json")
    assert response.json()["choices"] == ["free", "pro", "team"]
    assert api.delete(f"/api/v1/fields/{field_id}").status_code == 204


def test_suppressions_crud_by_address_and_by_domain(api, workspace):
    response = api.post("/api/v1/suppressions", {"value": "Spam@Example.org", "reason": "complained"})
    assert response.status_code == 201, response.content
    assert response.json()["value"] == "spam@example.org" and response.json()["source"] == "api"
    assert api.post("/api/v1/suppressions", {"value": "spam@example.org"}).status_code == 409
    response = api.post("/api/v1/suppressions", {"kind": "domain", "value": "@Blocked.Example"})
    assert response.status_code == 201, response.content
    assert response.json()["value"] == "blocked.example"
    bad = api.post("/api/v1/suppressions", {"kind": "domain", "value": "not a domain"})
    assert bad.status_code == 400 and list(bad.json()["error"]["details"]) == ["value"]
    assert api.post("/api/v1/suppressions", {"value": "nope"}).status_code == 400

    assert suppression_match(workspace=workspace, email="someone@blocked.example") is not None
    checked = ["SPAM@example.org", "ok@example.org", "x@blocked.example"]
    assert suppressed_emails(workspace=workspace, emails=checked) == {"spam@example.org", "x@blocked.example"}
    listed = api.get("/api/v1/suppressions?kind=domain").json()["results"]
    assert [row["value"] for row in listed] == ["blocked.example"]
    suppression = Suppression.objects.get(value="spam@example.org")
    assert api.patch(f"/api/v1/suppressions/{suppression.pk}", {"reason": "manual"}).json()["reason"] == "manual"
    assert api.delete(f"/api/v1/suppressions/{suppression.pk}").status_code == 204


def test_deleting_a_field_definition_keeps_values_but_refuses_new_ones(api, workspace):
    definition = FieldDefinitionFactory(workspace=workspace, key="plan")
    subscriber = SubscriberFactory(workspace=workspace, attributes={"plan": "pro"})
    api.delete(f"/api/v1/fields/{definition.pk}")
    subscriber.refresh_from_db()
    assert subscriber.attributes == {"plan": "pro"}
    response = api.patch(f"/api/v1/subscribers/{subscriber.pk}", {"attributes": {"plan": "free"}}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["attributes.plan"]
