"""Campaigns API: create and edit with field-named errors, the state actions, stats, roles and tenancy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Role
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus
from subscribers.models import ListMembership
from tests.factories import MailingListFactory, SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def news(workspace):
    mailing_list = MailingListFactory(workspace=workspace, name="News")
    for n in range(3):
        subscriber = SubscriberFactory(workspace=workspace, email=f"reader{n}@example.org")
        ListMembership.objects.create(mailing_list=mailing_list, subscriber=subscriber)
    return mailing_list


def payload(template_, news, **overrides):
    return {"name": "November news", "template": template_.pk, "lists": [news.pk], **overrides}


def create(api, template_, news, **overrides):
    response = api.post("/api/v1/campaigns", payload(template_, news, **overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_list_retrieve_and_edit_a_draft(api, workspace, template, news):
    vip = TagFactory(workspace=workspace, name="vip")
    body = create(api, template, news, tags=[vip.pk], exclude_tags=[], high_priority=True)
    assert body["status"] == "draft"
    assert (body["template"], body["template_name"], body["lists"], body["tags"]) == (
        template.pk, "Welcome", [news.pk], [vip.pk],
    )  # fmt: skip
    assert body["high_priority"] is True and body["scheduled_at"] is None

    url = f"/api/v1/campaigns/{body['id']}"
    assert [c["id"] for c in api.get("/api/v1/campaigns").json()["results"]] == [body["id"]]
    assert api.get(url).json()["name"] == "November news"
    changed = api.patch(url, {"name": "December news", "tags": []}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["name"], changed.json()["tags"], changed.json()["lists"]) == ("December news", [], [news.pk])
    assert api.get("/api/v1/campaigns?status=sent").json()["results"] == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lists": []}, "lists"),
        ({"name": " "}, "name"),
        ({"template": 0}, "template"),
        ({"lists": ["x"]}, "lists"),
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"high_priority": "maybe"}, "high_priority"),
    ],
)
def test_validation_errors_name_the_field(api, template, news, overrides, field):
    response = api.post("/api/v1/campaigns", payload(template, news, **overrides), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["details"]) == [field]
    assert error["message"].startswith(f"{field}")
    assert not Campaign.objects.exists()


def test_another_workspaces_template_list_and_tag_are_refused_naming_the_field(
    api, template, news, other_workspace, other_template
):
    other_list, other_tag = MailingListFactory(workspace=other_workspace), TagFactory(workspace=other_workspace)
    for overrides, field in [
        ({"template": other_template.pk}, "template"),
        ({"lists": [other_list.pk]}, "lists"),
        ({"tags": [other_tag.pk]}, "tags"),
        ({"exclude_lists": [other_list.pk]}, "exclude_lists"),
    ]:
        response = api.post("/api/v1/campaigns", payload(template, news, **overrides), format="json")
        assert response.status_code == 400 and list(response.json()["error"]["details"]) == [field]


def test_recipients_count_previews_the_audience_without_creating_anything(api, template, news):
    campaign = create(api, template, news)
    response = api.get(f"/api/v1/campaigns/{campaign['id']}/recipients/count")
    assert response.status_code == 200 and response.json() == {"count": 3}
    assert not Message.objects.exists()


def test_start_pause_resume_cancel_and_stats(api, template, news):
    url = f"/api/v1/campaigns/{create(api, template, news)['id']}"

    started = api.post(f"{url}/start")
    assert started.status_code == 200 and started.json()["status"] == "sending"
    assert api.post(f"{url}/start").json()["status"] == "sending"  # idempotent
    assert Message.objects.count() == 3
    assert api.patch(url, {"name": "x"}, format="json").status_code == 409
    assert api.delete(url).status_code == 409

    stats = api.get(f"{url}/stats").json()
    assert stats["recipients"] == 3 and stats["by_status"]["queued"] == 3 and stats["sent"] == 0
    assert stats["delivered"] == 0
    assert stats["open_rate"] is None and stats["note"]

    assert api.post(f"{url}/pause").json()["status"] == "paused"
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.DEFERRED}
    assert api.post(f"{url}/resume").json()["status"] == "sending"
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.QUEUED}
    cancelled = api.post(f"{url}/cancel")
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SUPPRESSED}

    conflict = api.post(f"{url}/resume")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "campaign_not_paused"
    assert "cancelled" in conflict.json()["error"]["message"]


def test_schedule_at_a_time_or_now(api, template, news):
    url = f"/api/v1/campaigns/{create(api, template, news)['id']}"
    at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    response = api.post(f"{url}/schedule", {"scheduled_at": at.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "scheduled"
    assert response.json()["scheduled_at"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))

    past = api.post(f"{url}/schedule", {"scheduled_at": "2001-01-01T00:00:00Z"}, format="json")
    assert past.status_code == 400 and list(past.json()["error"]["details"]) == ["scheduled_at"]

    now = api.post(f"{url}/schedule", {}, format="json")
    assert now.status_code == 200
    # Still ahead: the stored time is kept.
    assert now.json()["scheduled_at"] == response.json()["scheduled_at"]


def test_delete_a_draft(api, template, news):
    url = f"/api/v1/campaigns/{create(api, template, news)['id']}"
    assert api.delete(url).status_code == 204
    assert not Campaign.objects.exists()


def test_idempotency_key_on_create_makes_one_campaign(api, template, news):
    body = payload(template, news)
    first = api.post("/api/v1/campaigns", body, format="json", HTTP_IDEMPOTENCY_KEY="news-1")
    again = api.post("/api/v1/campaigns", body, format="json", HTTP_IDEMPOTENCY_KEY="news-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Campaign.objects.count() == 1


def test_another_workspaces_campaign_is_invisible(api, other_api, template, news):
    url = f"/api/v1/campaigns/{create(api, template, news)['id']}"
    assert other_api.get("/api/v1/campaigns").json()["results"] == []
    assert other_api.get(url).status_code == 404
    assert other_api.patch(url, {"name": "x"}, format="json").status_code == 404
    assert other_api.delete(url).status_code == 404
    for action in ("schedule", "start", "pause", "resume", "cancel"):
        assert other_api.post(f"{url}/{action}", {}, format="json").status_code == 404
    for action in ("stats", "recipients/count"):
        assert other_api.get(f"{url}/{action}").status_code == 404
    assert Campaign.objects.get().status == CampaignStatus.DRAFT
    assert not Message.objects.exists()


def test_viewer_reads_campaigns_but_cannot_change_them(client_for, workspace, api, template, news):
    url = f"/api/v1/campaigns/{create(api, template, news)['id']}"
    viewer = client_for(workspace, Role.VIEWER)
    assert viewer.get("/api/v1/campaigns").status_code == 200
    assert viewer.get(url).status_code == 200
    assert viewer.get(f"{url}/stats").status_code == 200
    assert viewer.get(f"{url}/recipients/count").status_code == 200
    assert viewer.post("/api/v1/campaigns", payload(template, news), format="json").status_code == 403
    assert viewer.patch(url, {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(url).status_code == 403
    for action in ("schedule", "start", "pause", "resume", "cancel"):
        assert viewer.post(f"{url}/{action}", {}, format="json").status_code == 403
    assert Campaign.objects.get().status == CampaignStatus.DRAFT


def test_marketer_runs_campaigns(client_for, workspace, template, news):
    marketer = client_for(workspace, Role.MARKETER)
    url = f"/api/v1/campaigns/{create(marketer, template, news)['id']}"
    assert marketer.post(f"{url}/start").json()["status"] == "sending"


finite = st.floats(allow_nan=False, allow_infinity=False)
dates = st.sampled_from(
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2999-01-01T00:00:00Z", "2001-01-01", "now", ""]
)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=20) | dates
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
FIELDS = ["name", "template", "lists", "tags", "exclude_lists", "exclude_tags", "high_priority", "scheduled_at"]
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5) | json_values


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(body=bodies)
def test_arbitrary_json_never_causes_a_server_error(api, template, news, body):
    cache.clear()  # many requests: stay under the throttle
    draft = Campaign.objects.create(workspace=template.workspace, name="Draft", template=template)
    draft.lists.set([news.pk])
    calls = [
        ("post", "/api/v1/campaigns"),
        ("patch", f"/api/v1/campaigns/{draft.pk}"),
        ("put", f"/api/v1/campaigns/{draft.pk}"),
        ("post", f"/api/v1/campaigns/{draft.pk}/schedule"),
    ]
    for method, url in calls:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code < 500, (method, url, body, response.content)
