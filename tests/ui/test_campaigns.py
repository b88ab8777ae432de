"""Campaign pages: compose (audience, schedule in the workspace's zone, send now), detail, actions, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from sequences.campaigns import campaign_create, campaign_start
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus, Template
from subscribers.models import Event, EventType, ListMembership, Segment
from tests.factories import (
    MailingListFactory,
    SubscriberFactory,
    TagFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(workspace):
    return TemplateFactory(workspace=workspace, name="November news")


@pytest.fixture
def news(workspace):
    """A list with three subscribed members."""
    mailing_list = MailingListFactory(workspace=workspace, name="News")
    for n in range(3):
        subscriber = SubscriberFactory(workspace=workspace, email=f"reader{n}@example.org")
        ListMembership.objects.create(mailing_list=mailing_list, subscriber=subscriber)
    return mailing_list


def fields(template, news, /, **change) -> dict:
    return {"name": "November", "template": str(template.pk), "lists": [str(news.pk)], **change}


def draft(workspace, template, news, **extra) -> Campaign:
    return campaign_create(workspace=workspace, name="Draft", template_id=template.pk, lists=[news.pk], **extra)


def test_list_and_compose_pages_render_with_the_nav_entry(ui_client, workspace, template, news):
    campaign = draft(workspace, template, news)
    client = ui_client()
    page = client.get("/app/campaigns/")
    assert page.status_code == 200
    assert b'aria-current="page">Campaigns</a>' in page.content
    assert b"Draft" in page.content and b"November news" in page.content and b"Lists: News" in page.content
    compose = client.get("/app/campaigns/new/")
    assert compose.status_code == 200
    for label in (b"Lists", b"Tags", b"Saved segments", b"Leave out members of these lists", b"Send at"):
        assert label in compose.content
    assert b'type="datetime-local"' in compose.content and b"time zone, UTC" in compose.content
    assert b"<script>" not in compose.content and b"style=" not in compose.content
    assert client.get(f"/app/campaigns/{campaign.pk}/").status_code == 200
    assert client.get(f"/app/campaigns/{campaign.pk}/edit/").status_code == 200


def test_save_draft_creates_the_campaign_with_its_whole_audience(ui_client, workspace, template, news):
    vip, gone = TagFactory(workspace=workspace, name="vip"), TagFactory(workspace=workspace, name="gone")
    blocked = MailingListFactory(workspace=workspace, name="Blocked")
    everyone = Segment.objects.create(workspace=workspace, name="Everyone", rules={"status": ["active"]})
    posted = fields(
        template, news, tags=[str(vip.pk)], segment_ids=[str(everyone.pk)], exclude_lists=[str(blocked.pk)],
        exclude_tags=[str(gone.pk)], high_priority="on", intent="save",
    )  # fmt: skip
    response = ui_client().post("/app/campaigns/new/", posted)
    campaign = Campaign.objects.get(workspace=workspace)
    assert response.status_code == 302 and response["Location"] == f"/app/campaigns/{campaign.pk}/"
    assert (campaign.name, campaign.template_id, campaign.status) == ("November", template.pk, CampaignStatus.DRAFT)
    assert campaign.high_priority and campaign.scheduled_at is None
    assert list(campaign.lists.all()) == [news] and list(campaign.tags.all()) == [vip]
    assert list(campaign.segments.all()) == [everyone] and list(campaign.exclude_lists.all()) == [blocked]
    assert list(campaign.exclude_tags.all()) == [gone]


def test_schedule_reads_the_time_in_the_workspace_zone_and_stores_it_in_utc(ui_client, workspace, template, news):
    workspace.time_zone = "America/New_York"
    workspace.save()
    client = ui_client()
    assert b"time zone, America/New_York" in client.get("/app/campaigns/new/").content
    response = client.post(
        "/app/campaigns/new/", fields(template, news, scheduled_at="2030-07-01T09:30", intent="schedule")
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(workspace=workspace)
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.scheduled_at == datetime(2030, 7, 1, 13, 30, tzinfo=UTC)  # EDT is UTC-4
    # The edit page shows it back in the workspace's zone.
    assert b'value="2030-07-01T09:30"' in client.get(f"/app/campaigns/{campaign.pk}/edit/").content
    # Winter time: UTC-5.
    moved = client.post(
        f"/app/campaigns/{campaign.pk}/edit/", fields(template, news, scheduled_at="2030-12-01T09:30", intent="save")
    )
    assert moved.status_code == 302
    campaign.refresh_from_db()
    assert campaign.scheduled_at == datetime(2030, 12, 1, 14, 30, tzinfo=UTC)
    assert campaign.status == CampaignStatus.SCHEDULED


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"scheduled_at": "2001-01-01T10:00", "intent": "schedule"}, "scheduled_at", "Must be in the future."),
        ({"intent": "schedule"}, "scheduled_at", "Pick a date and time to schedule"),
        ({"scheduled_at": "2030-03-10T02:30"}, "scheduled_at", "couldn’t be interpreted"),  # a DST gap
        ({"scheduled_at": "soon"}, "scheduled_at", "Enter a valid date/time."),
        ({"lists": []}, "lists", "Pick at least one list, tag or segment."),
        ({"template": ""}, "template", "This field is required."),
        ({"name": " "}, "name", "This field is required."),
        ({"intent": "explode"}, "intent", "Select a valid choice."),
    ],
)
def test_compose_errors_are_shown_on_their_field_and_nothing_is_lost(
    ui_client, workspace, template, news, change, field, text
):
    workspace.time_zone = "America/New_York"
    workspace.save()
    response = ui_client().post("/app/campaigns/new/", {**fields(template, news, name="Keep me"), **change})
    assert response.status_code == 400
    assert text in " ".join(response.context["form"].errors[field])
    assert text.replace("’", "&#x27;") in response.content.decode() or text in response.content.decode()
    if field != "name":
        assert b'value="Keep me"' in response.content
    assert not Campaign.objects.exists()


def test_another_workspaces_list_or_template_is_an_invalid_choice(
    ui_client, workspace, other_workspace, template, news
):
    foreign_list = MailingListFactory(workspace=other_workspace)
    foreign_template = TemplateFactory(workspace=other_workspace)
    client = ui_client()
    response = client.post("/app/campaigns/new/", fields(template, news, lists=[str(foreign_list.pk)]))
    assert response.status_code == 400 and response.context["form"].errors["lists"]
    response = client.post("/app/campaigns/new/", fields(template, news, template=str(foreign_template.pk)))
    assert response.status_code == 400 and response.context["form"].errors["template"]
    assert not Campaign.objects.exists()


def test_send_now_starts_the_campaign_in_the_request(ui_client, workspace, template, news):
    response = ui_client().post("/app/campaigns/new/", fields(template, news, intent="send"))
    campaign = Campaign.objects.get(workspace=workspace)
    assert response.status_code == 302
    assert campaign.status == CampaignStatus.SENDING and campaign.started_at is not None
    assert Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).count() == 3


def test_a_refused_send_now_keeps_no_half_made_draft(ui_client, workspace, template, news):
    Template.objects.filter(pk=template.pk).update(html="{% if %}")  # no longer compiles: start answers 409
    response = ui_client().post("/app/campaigns/new/", fields(template, news, intent="send"))
    assert response.status_code == 409
    assert "does not compile" in " ".join(response.context["form"].non_field_errors())
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_start_pause_resume_cancel_and_conflicts_as_messages(ui_client, workspace, template, news):
    campaign = draft(workspace, template, news)
    client = ui_client()
    url = f"/app/campaigns/{campaign.pk}"

    def status_after(action: str) -> str:
        response = client.post(f"{url}/{action}", follow=True)
        assert response.status_code == 200
        campaign.refresh_from_db()
        return campaign.status

    assert status_after("start") == CampaignStatus.SENDING
    assert Message.objects.filter(campaign=campaign).count() == 3
    assert status_after("pause") == CampaignStatus.PAUSED
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.DEFERRED}
    assert status_after("resume") == CampaignStatus.SENDING
    refused = client.post(f"{url}/delete", follow=True)
    assert "cannot be deleted" in refused.content.decode() and Campaign.objects.filter(pk=campaign.pk).exists()
    assert status_after("cancel") == CampaignStatus.CANCELLED
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SUPPRESSED}
    again = client.post(f"{url}/resume", follow=True)
    assert "cannot be resumed; only a paused one can." in again.content.decode()
    assert client.post(f"{url}/explode").status_code == 404


def test_a_draft_is_deleted_and_a_started_one_is_not_edited(ui_client, workspace, template, news):
    client = ui_client()
    doomed = draft(workspace, template, news)
    response = client.post(f"/app/campaigns/{doomed.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/app/campaigns/"
    assert not Campaign.objects.filter(pk=doomed.pk).exists()
    started = draft(workspace, template, news)
    campaign_start(workspace=workspace, campaign=started)
    assert client.get(f"/app/campaigns/{started.pk}/edit/")["Location"] == f"/app/campaigns/{started.pk}/"
    refused = client.post(f"/app/campaigns/{started.pk}/edit/", fields(template, news, name="Renamed"))
    assert refused.status_code == 409 and "cannot be edited" in refused.content.decode()
    started.refresh_from_db()
    assert started.name == "Draft"


def test_detail_shows_numbers_and_a_progress_bar_wired_to_the_campaign_socket(ui_client, workspace, template, news):
    campaign = draft(workspace, template, news)
    campaign_start(workspace=workspace, campaign=campaign)
    first = Message.objects.filter(campaign=campaign).order_by("pk").first()
    Message.objects.filter(pk=first.pk).update(status=MessageStatus.SENT, sent_at=timezone.now())
    for event_type in (EventType.DELIVERED, EventType.OPENED):
        Event.objects.create(
            workspace=workspace, subscriber_id=first.subscriber_id, type=event_type, name=event_type,
            campaign_id=campaign.pk,
        )  # fmt: skip
    page = ui_client(Role.VIEWER).get(f"/app/campaigns/{campaign.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert '<progress id="campaign-progress" max="3" value="1"' in html and "1 of 3 sent (33%)" in html
    assert f'data-workspace="{workspace.pk}" data-campaign="{campaign.pk}"' in html
    assert 'data-socket-path="/api/v1/ws/connect/campaign"' in html
    assert "realtime/live-socket.js" in html and "ui/campaign.js" in html
    assert "connect-src 'self' ws://testserver" in page["Content-Security-Policy"]
    stats = page.context["stats"]
    assert (stats.sent, stats.delivered, stats.opened, stats.clicked) == (1, 1, 1, 0)
    assert "Pause" not in html  # a viewer gets no actions


def test_the_estimate_counts_the_audience_with_its_exclusions(ui_client, workspace, news):
    blocked = MailingListFactory(workspace=workspace)
    one = ListMembership.objects.filter(mailing_list=news).first().subscriber
    ListMembership.objects.create(mailing_list=blocked, subscriber=one)
    client = ui_client(Role.VIEWER)
    response = client.get("/app/campaigns/estimate", {"lists": [news.pk], "exclude_lists": [blocked.pk]})
    assert response.status_code == 200 and b"<strong data-estimate>2</strong>" in response.content
    assert b"<strong data-estimate>0</strong>" in client.get("/app/campaigns/estimate").content
    assert client.get("/app/campaigns/estimate", {"lists": ["nope"]}).status_code == 400


def test_viewers_read_but_cannot_write(ui_client, workspace, template, news):
    campaign = draft(workspace, template, news)
    viewer = ui_client(Role.VIEWER)
    assert viewer.get("/app/campaigns/").status_code == 200
    assert viewer.get(f"/app/campaigns/{campaign.pk}/").status_code == 200
    assert viewer.post("/app/campaigns/new/", fields(template, news)).status_code == 403
    assert viewer.post(f"/app/campaigns/{campaign.pk}/edit/", fields(template, news, name="X")).status_code == 403
    for action in ("start", "cancel", "delete"):
        assert viewer.post(f"/app/campaigns/{campaign.pk}/{action}").status_code == 403
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status) == ("Draft", CampaignStatus.DRAFT)
    assert Campaign.objects.count() == 1


def test_another_workspaces_campaign_answers_404(ui_client, workspace, other_workspace):
    foreign_list = MailingListFactory(workspace=other_workspace)
    SubscriberFactory(workspace=other_workspace)
    theirs = campaign_create(
        workspace=other_workspace, name="Theirs", template_id=TemplateFactory(workspace=other_workspace).pk,
        lists=[foreign_list.pk],
    )  # fmt: skip
    client = ui_client(Role.OWNER)
    for path in ("", "edit/"):
        assert client.get(f"/app/campaigns/{theirs.pk}/{path}").status_code == 404
    for action in ("start", "cancel", "delete"):
        assert client.post(f"/app/campaigns/{theirs.pk}/{action}").status_code == 404
    assert client.get("/app/campaigns/estimate", {"lists": [foreign_list.pk]}).status_code == 400
    assert b"Theirs" not in client.get("/app/campaigns/").content
    theirs.refresh_from_db()
    assert theirs.status == CampaignStatus.DRAFT


def test_forms_need_the_csrf_token(ui_client, workspace, template, news):
    campaign = draft(workspace, template, news)
    client = ui_client(enforce_csrf_checks=True)
    assert client.post("/app/campaigns/new/", fields(template, news)).status_code == 403
    assert client.post(f"/app/campaigns/{campaign.pk}/start").status_code == 403
    page = client.get("/app/campaigns/new/")
    assert b"csrfmiddlewaretoken" in page.content
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT and Campaign.objects.count() == 1


def test_scheduled_campaigns_keep_a_future_time_when_edited(ui_client, workspace, template, news):
    at = timezone.now() + timedelta(days=2)
    campaign = draft(workspace, template, news, scheduled_at=at)
    client = ui_client()
    assert (
        client.post(f"/app/campaigns/{campaign.pk}/edit/", fields(template, news, intent="schedule")).status_code == 400
    )
    campaign.status = CampaignStatus.SCHEDULED
    campaign.save()
    response = client.post(f"/app/campaigns/{campaign.pk}/edit/", fields(template, news, scheduled_at=""))
    assert response.status_code == 400
    assert "needs a time" in " ".join(response.context["form"].errors["scheduled_at"])


def test_the_list_reads_a_pages_numbers_in_the_same_queries_whatever_its_length(ui_client, workspace, template, news):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(Role.VIEWER)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/app/campaigns/").status_code == 200
        return len(captured)

    draft(workspace, template, news)
    queries()  # the first request of a session also writes the session
    one = queries()
    for _ in range(5):
        draft(workspace, template, news)

    assert queries() == one
