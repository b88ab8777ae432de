"""Campaign audiences by saved segments: include, exclude, union with lists, evaluated once at the
start, tenancy of the ids, the API fields, the count endpoint, the admin, and a used segment kept."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from core.errors import Conflict, ValidationFailed
from sequences.campaigns import (
    campaign_audience_count,
    campaign_cancel,
    campaign_create,
    campaign_recipients,
    campaign_start,
    campaign_update,
    campaigns_tick,
)
from sequences.models import Campaign, CampaignStatus, Message
from subscribers.models import ListMembership, Segment, SubscriberStatus
from subscribers.segments import segment_create, segment_delete, segment_update, segment_usages
from subscribers.services import tag_delete
from tests.factories import (
    FieldDefinitionFactory,
    MailingListFactory,
    SubscriberFactory,
    SuppressionFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db


def audience_of(campaign) -> set[int]:
    return {pk for chunk in campaign_recipients(campaign=campaign) for pk, _ in chunk}


def campaign_for(workspace, template, name="Black Friday", **audience):
    return campaign_create(workspace=workspace, name=name, template_id=template.pk, **audience)


@pytest.fixture
def people(workspace, other_workspace):
    """Pro and basic plans, a list, and a twin of a pro subscriber in another workspace."""
    vip = TagFactory(workspace=workspace, name="vip")
    pros = [SubscriberFactory(workspace=workspace, email=f"pro{n}@example.org", attributes={}) for n in range(3)]
    for subscriber in pros:
        subscriber.tags.add(vip)
    basics = [SubscriberFactory(workspace=workspace, email=f"basic{n}@example.org") for n in range(2)]
    inactive = SubscriberFactory(workspace=workspace, email="gone@example.org", status=SubscriberStatus.UNSUBSCRIBED)
    inactive.tags.add(vip)
    suppressed = SubscriberFactory(workspace=workspace, email="blocked@example.org")
    suppressed.tags.add(vip)
    SuppressionFactory(workspace=workspace, kind="email", value="blocked@example.org")
    news = MailingListFactory(workspace=workspace, name="News")
    for subscriber in basics[:1]:
        ListMembership.objects.create(mailing_list=news, subscriber=subscriber)
    theirs = SubscriberFactory(workspace=other_workspace, email="pro@example.org")
    theirs.tags.add(TagFactory(workspace=other_workspace, name="vip"))
    segment = segment_create(workspace=workspace, name="VIPs", rules={"tag": vip.pk})
    return {"vip": vip, "pros": pros, "basics": basics, "news": news, "segment": segment}


def test_audience_by_a_segment_only(workspace, template, people):
    campaign = campaign_for(workspace, template, segment_ids=[people["segment"].pk])
    # The unsubscribed and the suppressed VIPs are left out, as for lists and tags.
    assert audience_of(campaign) == {s.pk for s in people["pros"]}
    assert campaign_audience_count(workspace=workspace, campaign=campaign) == 3
    assert list(campaign.segments.all()) == [people["segment"]]


def test_a_segment_and_a_list_are_a_union_and_nobody_comes_twice(workspace, template, people):
    both = people["pros"][0]
    ListMembership.objects.create(mailing_list=people["news"], subscriber=both)
    campaign = campaign_for(workspace, template, lists=[people["news"].pk], segment_ids=[people["segment"].pk])
    chunks = list(campaign_recipients(campaign=campaign, chunk_size=2))
    ids = [pk for chunk in chunks for pk, _ in chunk]
    assert ids == sorted({s.pk for s in people["pros"]} | {people["basics"][0].pk})
    assert [len(chunk) for chunk in chunks] == [2, 2]


def test_an_excluded_segment_leaves_its_members_out(workspace, template, people):
    FieldDefinitionFactory(workspace=workspace, key="plan")
    gold = people["pros"][0]
    gold.attributes = {"plan": "gold"}
    gold.save()
    golds = segment_create(workspace=workspace, name="Gold", rules={"attribute": "plan", "op": "eq", "value": "gold"})
    campaign = campaign_for(workspace, template, tags=[people["vip"].pk], exclude_segment_ids=[golds.pk])
    assert audience_of(campaign) == {s.pk for s in people["pros"][1:]}
    campaign_update(workspace=workspace, campaign=campaign, exclude_segment_ids=[people["segment"].pk])
    assert audience_of(campaign) == set()


def test_exclusions_of_segments_apply_to_list_members_too(workspace, template, people):
    basics = segment_create(workspace=workspace, name="Basics", rules={"not": {"tag": people["vip"].pk}})
    campaign = campaign_for(
        workspace, template, lists=[people["news"].pk], segment_ids=[people["segment"].pk],
        exclude_segment_ids=[basics.pk],
    )  # fmt: skip
    assert audience_of(campaign) == {s.pk for s in people["pros"]}


def test_another_workspaces_segment_is_refused_naming_the_field(workspace, other_workspace, template, people):
    theirs = Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": "active"})
    for field in ("segment_ids", "exclude_segment_ids"):
        audience = {"lists": [people["news"].pk], field: [theirs.pk]}
        with pytest.raises(ValidationFailed) as caught:
            campaign_for(workspace, template, **audience)
        assert list(caught.value.details) == [field]
        assert str(theirs.pk) in caught.value.details[field][0]
    assert not Campaign.objects.exists()


def test_a_started_campaign_is_not_changed_by_a_later_segment_edit(workspace, template, people):
    segment = people["segment"]
    campaign = campaign_for(workspace, template, segment_ids=[segment.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    sent_to = set(Message.objects.filter(campaign=campaign).values_list("subscriber_id", flat=True))
    assert sent_to == {s.pk for s in people["pros"]}

    # The segment now means "everyone active": the started campaign keeps its audience, and neither
    # the beat tick nor starting again adds anyone.
    segment_update(workspace=workspace, segment=segment, rules={"status": "active"})
    campaigns_tick()
    campaign_start(workspace=workspace, campaign=campaign)
    assert set(Message.objects.filter(campaign=campaign).values_list("subscriber_id", flat=True)) == sent_to
    # A draft using the same segment does see the change.
    draft = campaign_for(workspace, template, name="Later", segment_ids=[segment.pk])
    assert audience_of(draft) == {s.pk for s in [*people["pros"], *people["basics"]]}


def test_segments_are_compiled_into_the_audience_query_not_looped(workspace, template, people):
    # More subscribers in the segment must not mean more queries: the segment is one SQL filter.
    campaign = campaign_for(workspace, template, segment_ids=[people["segment"].pk])
    with CaptureQueriesContext(connection) as few:
        audience_of(campaign)
    for n in range(20):
        SubscriberFactory(workspace=workspace, email=f"more{n}@example.org").tags.add(people["vip"])
    with CaptureQueriesContext(connection) as many:
        assert len(audience_of(campaign)) == 23
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_campaign_whose_segment_no_longer_validates_does_not_start(workspace, template, people):
    doomed = TagFactory(workspace=workspace, name="doomed")
    segment = segment_create(workspace=workspace, name="Doomed", rules={"tag": doomed.pk})
    campaign = campaign_for(workspace, template, segment_ids=[segment.pk])
    tag_delete(workspace=workspace, tag=doomed)
    with pytest.raises(Conflict) as caught:
        campaign_start(workspace=workspace, campaign=campaign)
    assert caught.value.code == "segment_invalid" and "'Doomed'" in caught.value.message
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT and not Message.objects.exists()


def test_a_segment_used_by_any_campaign_cannot_be_deleted(workspace, template, people):
    segment = people["segment"]
    campaign = campaign_for(workspace, template, segment_ids=[segment.pk])
    campaign_for(workspace, template, name="Winback", lists=[people["news"].pk], exclude_segment_ids=[segment.pk])
    assert segment_usages(segment=segment) == ["campaign 'Black Friday'", "campaign 'Winback'"]
    with pytest.raises(Conflict) as caught:
        segment_delete(workspace=workspace, segment=segment)
    assert caught.value.code == "segment_in_use"
    assert caught.value.details == {"used_by": ["campaign 'Black Friday'", "campaign 'Winback'"]}
    # Even a cancelled (or sent) campaign keeps its segment: its audience is history.
    campaign_start(workspace=workspace, campaign=campaign)
    campaign_cancel(workspace=workspace, campaign=campaign)
    Campaign.objects.filter(name="Winback").delete()
    with pytest.raises(Conflict):
        segment_delete(workspace=workspace, segment=segment)
    assert Segment.objects.filter(pk=segment.pk).exists()


# API ----------------------------------------------------------------------------------------------


def test_api_creates_and_edits_segment_audiences_and_counts_them(api, workspace, template, people):
    segment = people["segment"]
    body = {"name": "Black Friday", "template": template.pk, "segment_ids": [segment.pk]}
    response = api.post("/api/v1/campaigns", body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["segment_ids"], created["exclude_segment_ids"], created["lists"]) == ([segment.pk], [], [])
    url = f"/api/v1/campaigns/{created['id']}"
    assert api.get(f"{url}/recipients/count").json() == {"count": 3}

    basics = Segment.objects.create(workspace=workspace, name="No VIP", rules={"not": {"tag": people["vip"].pk}})
    response = api.patch(url, {"lists": [people["news"].pk], "exclude_segment_ids": [basics.pk]}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["segment_ids"], response.json()["exclude_segment_ids"]) == ([segment.pk], [basics.pk])
    assert api.get(f"{url}/recipients/count").json() == {"count": 3}
    response = api.patch(url, {"exclude_segment_ids": []}, format="json")
    assert api.get(f"{url}/recipients/count").json() == {"count": 4}  # the News reader comes back

    response = api.delete(f"/api/v1/segments/{segment.pk}")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "segment_in_use" and "campaign 'Black Friday'" in error["message"]


def test_api_refuses_another_workspaces_segment_naming_the_field(api, other_workspace, template, people):
    theirs = Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": "active"})
    for field in ("segment_ids", "exclude_segment_ids"):
        body = {"name": "x", "template": template.pk, "lists": [people["news"].pk], field: [theirs.pk]}
        response = api.post("/api/v1/campaigns", body, format="json")
        assert response.status_code == 400, response.content
        assert list(response.json()["error"]["details"]) == [field]
    response = api.post(
        "/api/v1/campaigns", {"name": "x", "template": template.pk, "segment_ids": ["a"]}, format="json"
    )
    assert response.status_code == 400 and list(response.json()["error"]["details"]) == ["segment_ids"]
    assert not Campaign.objects.exists()


def test_api_viewer_cannot_set_segments_and_outsiders_cannot_see_them(
    client_for, workspace, other_api, template, people
):
    viewer = client_for(workspace, Role.VIEWER)
    body = {"name": "x", "template": template.pk, "segment_ids": [people["segment"].pk]}
    assert viewer.post("/api/v1/campaigns", body, format="json").status_code == 403
    campaign = campaign_for(workspace, template, segment_ids=[people["segment"].pk])
    assert viewer.get(f"/api/v1/campaigns/{campaign.pk}").json()["segment_ids"] == [people["segment"].pk]
    assert viewer.patch(f"/api/v1/campaigns/{campaign.pk}", {"segment_ids": []}, format="json").status_code == 403
    assert other_api.get(f"/api/v1/campaigns/{campaign.pk}/recipients/count").status_code == 404
    assert other_api.delete(f"/api/v1/segments/{people['segment'].pk}").status_code == 404


# Admin --------------------------------------------------------------------------------------------


def test_admin_shows_segments_and_refuses_another_workspaces(
    admin_client, workspace, other_workspace, template, people
):
    campaign = campaign_for(workspace, template, segment_ids=[people["segment"].pk])
    page = admin_client.get(f"/admin/sequences/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert {"segments", "exclude_segments"} <= set(form.fields)
    assert list(form.initial["segments"]) == [people["segment"]]
    theirs = Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": "active"})
    response = admin_client.post(
        "/admin/sequences/campaign/add/",
        {"workspace": workspace.pk, "name": "x", "template": template.pk, "segments": [theirs.pk]},
    )
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"segments", "lists"}
    response = admin_client.post(
        "/admin/sequences/campaign/add/",
        {"workspace": workspace.pk, "name": "By segment", "template": template.pk, "segments": [people["segment"].pk]},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(Campaign.objects.get(name="By segment").segments.all()) == [people["segment"]]


def test_admin_keeps_a_segment_a_campaign_uses(admin_client, workspace, template, people):
    segment = people["segment"]
    campaign_for(workspace, template, segment_ids=[segment.pk])
    response = admin_client.post(f"/admin/subscribers/segment/{segment.pk}/delete/", {"post": "yes"}, follow=True)
    assert "used by campaign &#x27;Black Friday&#x27;" in response.content.decode()
    response = admin_client.post(
        "/admin/subscribers/segment/",
        {"action": "delete_selected", "_selected_action": [segment.pk], "post": "yes"},
        follow=True,
    )
    assert "used by campaign &#x27;Black Friday&#x27;" in response.content.decode()
    assert Segment.objects.filter(pk=segment.pk).exists()
    unused = Segment.objects.create(workspace=workspace, name="Unused", rules={"status": "active"})
    admin_client.post(f"/admin/subscribers/segment/{unused.pk}/delete/", {"post": "yes"})
    assert not Segment.objects.filter(pk=unused.pk).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs row locks")
def test_deleting_a_segment_while_a_campaign_takes_it_waits_and_answers_409(workspace, template, people):
    import threading

    from django.db import close_old_connections, transaction

    segment = people["segment"]
    outcome: list[object] = []

    def delete_meanwhile() -> None:
        try:
            segment_delete(workspace=workspace, segment=segment)
            outcome.append("deleted")
        except Conflict as exc:
            outcome.append(exc.code)
        finally:
            close_old_connections()

    with transaction.atomic():
        campaign_for(workspace, template, segment_ids=[segment.pk])  # holds the segment's row until commit
        thread = threading.Thread(target=delete_meanwhile)
        thread.start()
        # Wait (bounded) until the delete is blocked on the row lock; then commit the campaign.
        with connection.cursor() as cursor:
            for _ in range(600):
                cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction the view is cached
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    break
                thread.join(timeout=0.05)
        assert not outcome  # it waited for the campaign's transaction
    thread.join(timeout=120)  # a guard against hanging, not a measurement
    assert outcome == ["segment_in_use"]
    assert Segment.objects.filter(pk=segment.pk).exists()
