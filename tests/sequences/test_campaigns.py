"""Broadcast campaigns: audience math, materializing once, the tick, and sending through the real sender."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.errors import Conflict, ValidationFailed
from sequences import campaigns
from sequences.campaigns import (
    campaign_audience_count,
    campaign_audience_estimate,
    campaign_cancel,
    campaign_create,
    campaign_pause,
    campaign_recipients,
    campaign_resume,
    campaign_schedule,
    campaign_start,
    campaign_stats,
    campaign_update,
    campaigns_tick,
)
from sequences.delivery.claim import messages_claim
from sequences.delivery.send import messages_send
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus
from sequences.services import template_delete
from sequences.tracking import message_click_record, message_open_record, message_subscriber_unsubscribe
from subscribers.models import Event, EventType, ListMembership, SubscriberStatus
from tests.factories import MailingListFactory, SubscriberFactory, SuppressionFactory, TagFactory, TemplateFactory
from tests.sequences.test_delivery_support import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


def member(mailing_list, status="subscribed", **fields):
    subscriber = SubscriberFactory(workspace=mailing_list.workspace, **fields)
    ListMembership.objects.create(mailing_list=mailing_list, subscriber=subscriber, status=status)
    return subscriber


def tagged(tag, **fields):
    subscriber = SubscriberFactory(workspace=tag.workspace, **fields)
    subscriber.tags.add(tag)
    return subscriber


def campaign_for(workspace, template, **audience):
    return campaign_create(workspace=workspace, name="November news", template_id=template.pk, **audience)


def audience_of(campaign) -> set:
    return {pk for chunk in campaign_recipients(campaign=campaign) for pk, _ in chunk}


def send_some(limit: int, worker: str = "w1") -> dict[int, str]:
    ids = messages_claim(worker=worker, limit=limit, lease_seconds=300)
    return messages_send(message_ids=ids, worker=worker).outcomes


def emails_by_recipient(smtp) -> Counter:
    return Counter(str(mime["To"]) for mime in smtp.messages)


@pytest.fixture
def news(workspace):
    return MailingListFactory(workspace=workspace, name="News")


@pytest.fixture
def audience(workspace, news):
    """Six subscribed members of News, each one email."""
    return [member(news, email=f"reader{n}@example.org") for n in range(6)]


# Audience ---------------------------------------------------------------------------------------


def test_audience_is_lists_or_tags_minus_exclusions_inactive_and_suppressed(workspace, other_workspace, template):
    news, offers, customers = (MailingListFactory(workspace=workspace, name=n) for n in ("News", "Offers", "Cust"))
    vip, churned = TagFactory(workspace=workspace, name="vip"), TagFactory(workspace=workspace, name="churned")
    in_news = member(news, email="news@example.org")
    in_offers_only = member(offers, email="offers@example.org")  # a list the campaign does not use
    tagged_vip = tagged(vip, email="vip@example.org")
    in_both = member(news, email="both@example.org")
    in_both.tags.add(vip)
    pending = member(news, status="pending", email="pending@example.org")
    left_list = member(news, status="unsubscribed", email="left@example.org")
    unsubscribed = member(news, email="unsub@example.org", status=SubscriberStatus.UNSUBSCRIBED)
    bounced = tagged(vip, email="bounced@example.org", status=SubscriberStatus.BOUNCED)
    excluded_by_list = member(news, email="customer@example.org")
    ListMembership.objects.create(mailing_list=customers, subscriber=excluded_by_list, status="pending")
    left_exclusion = member(news, email="ex-customer@example.org")
    ListMembership.objects.create(mailing_list=customers, subscriber=left_exclusion, status="unsubscribed")
    excluded_by_tag = tagged(vip, email="churned@example.org")
    excluded_by_tag.tags.add(churned)
    suppressed = member(news, email="Blocked@Example.org")
    SuppressionFactory(workspace=workspace, kind="email", value="blocked@example.org")
    whole_domain = tagged(vip, email="someone@spamtrap.test")
    SuppressionFactory(workspace=workspace, kind="domain", value="spamtrap.test")
    # Another workspace's subscriber put (wrongly) on our list and tag, and suppressions elsewhere.
    theirs = SubscriberFactory(workspace=other_workspace, email="theirs@example.org")
    ListMembership.objects.create(mailing_list=news, subscriber=theirs)
    theirs.tags.add(vip)
    SuppressionFactory(workspace=other_workspace, kind="email", value="news@example.org")

    campaign = campaign_for(
        workspace, template, lists=[news.pk], tags=[vip.pk], exclude_lists=[customers.pk], exclude_tags=[churned.pk]
    )

    expected = {in_news.pk, tagged_vip.pk, in_both.pk, left_exclusion.pk}
    assert audience_of(campaign) == expected
    assert campaign_audience_count(workspace=workspace, campaign=campaign) == len(expected)
    # The compose page's estimate of the same ids, not saved: the same rules.
    assert campaign_audience_estimate(
        workspace=workspace, lists=[news.pk], tags=[vip.pk], exclude_lists=[customers.pk], exclude_tags=[churned.pk]
    ) == len(expected)
    for outsider in (in_offers_only, pending, left_list, unsubscribed, bounced, excluded_by_list, excluded_by_tag,
                     suppressed, whole_domain, theirs):  # fmt: skip
        assert outsider.pk not in expected
    assert not Message.objects.exists()  # counting creates nothing


def test_the_estimate_checks_its_ids_and_an_empty_audience_is_zero(workspace, other_workspace, news):
    member(news)
    assert campaign_audience_estimate(workspace=workspace, lists=[news.pk]) == 1
    assert campaign_audience_estimate(workspace=workspace) == 0
    assert campaign_audience_estimate(workspace=workspace, exclude_lists=[news.pk]) == 0
    theirs = MailingListFactory(workspace=other_workspace)
    with pytest.raises(ValidationFailed) as refused:
        campaign_audience_estimate(workspace=workspace, lists=[news.pk], exclude_lists=[theirs.pk])
    assert "exclude_lists" in refused.value.details


def test_a_list_only_campaign_ignores_tags_and_a_tag_only_one_ignores_lists(workspace, template, news):
    vip = TagFactory(workspace=workspace)
    reader, fan = member(news), tagged(vip)
    assert audience_of(campaign_for(workspace, template, lists=[news.pk])) == {reader.pk}
    assert audience_of(campaign_for(workspace, template, tags=[vip.pk])) == {fan.pk}


def test_recipients_come_in_chunks_by_id_across_lists_and_tags(workspace, template, news):
    vip = TagFactory(workspace=workspace)
    subscribers = [member(news) if n % 3 else tagged(vip) for n in range(11)]
    subscribers[4].tags.add(vip)  # in both: once
    campaign = campaign_for(workspace, template, lists=[news.pk], tags=[vip.pk])
    chunks = list(campaign_recipients(campaign=campaign, chunk_size=4))
    assert [len(chunk) for chunk in chunks] == [4, 4, 3]
    assert [pk for chunk in chunks for pk, _ in chunk] == sorted(s.pk for s in subscribers)


# Validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "field"),
    [
        ({}, "lists"),
        ({"lists": ["other"]}, "lists"),
        ({"tags": ["other"]}, "tags"),
        ({"lists": ["ours"], "exclude_lists": ["other"]}, "exclude_lists"),
        ({"lists": ["ours"], "exclude_tags": ["other"]}, "exclude_tags"),
        ({"lists": ["ours"], "scheduled_at": "past"}, "scheduled_at"),
    ],
)
def test_invalid_campaigns_are_refused_naming_the_field(workspace, other_workspace, template, news, audience, field):
    other_list, other_tag = MailingListFactory(workspace=other_workspace), TagFactory(workspace=other_workspace)
    values = {"ours": news.pk}
    kwargs = {}
    for key, value in audience.items():
        if key == "scheduled_at":
            kwargs[key] = timezone.now() - timedelta(minutes=1)
        else:
            kwargs[key] = [values.get(v) or (other_list.pk if "list" in key else other_tag.pk) for v in value]
    with pytest.raises(ValidationFailed) as caught:
        campaign_for(workspace, template, **kwargs)
    assert list(caught.value.details) == [field]
    assert not Campaign.objects.exists()


def test_another_workspaces_template_is_refused(workspace, other_template, news):
    with pytest.raises(ValidationFailed) as caught:
        campaign_for(workspace, other_template, lists=[news.pk])
    assert list(caught.value.details) == ["template"]


def test_update_only_while_draft_or_scheduled(workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    later = timezone.now() + timedelta(days=1)
    campaign = campaign_update(workspace=workspace, campaign=campaign, name="Renamed", scheduled_at=later)
    assert (campaign.name, campaign.scheduled_at) == ("Renamed", later)
    with pytest.raises(ValidationFailed) as caught:
        campaign_update(workspace=workspace, campaign=campaign, lists=[])
    assert list(caught.value.details) == ["lists"]
    campaign_start(workspace=workspace, campaign=campaign)
    with pytest.raises(Conflict):
        campaign_update(workspace=workspace, campaign=campaign, name="Too late")


def test_a_template_used_by_a_campaign_is_kept(workspace, template, news):
    campaign_for(workspace, template, lists=[news.pk])
    with pytest.raises(Conflict) as caught:
        template_delete(workspace=workspace, template=template)
    assert caught.value.details == {"campaigns": ["November news"]}


# Start ------------------------------------------------------------------------------------------


def test_start_creates_one_queued_message_per_recipient_and_starting_again_adds_none(
    workspace, template, news, audience
):
    campaign = campaign_for(workspace, template, lists=[news.pk])

    result = campaign_start(workspace=workspace, campaign=campaign)
    again = campaign_start(workspace=workspace, campaign=campaign)

    assert (result.created, again.created) == (6, 0)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING and campaign.started_at is not None
    messages = Message.objects.filter(campaign=campaign)
    assert sorted(messages.values_list("subscriber_id", flat=True)) == sorted(s.pk for s in audience)
    assert set(messages.values_list("status", flat=True)) == {MessageStatus.QUEUED}
    assert all(m.template_id == template.pk and m.step_id is None and m.enrollment_id is None for m in messages)
    # Even materializing again past the status check inserts nothing: the unique key holds.
    assert campaigns._materialize(campaign, timezone.now()) == 0
    assert messages.count() == 6


def test_materializing_reads_the_audience_in_chunks(workspace, template, news, audience, monkeypatch):
    monkeypatch.setattr(campaigns, "MATERIALIZE_CHUNK_SIZE", 4)
    campaign = campaign_for(workspace, template, lists=[news.pk])
    with CaptureQueriesContext(connection) as queries:
        result = campaign_start(workspace=workspace, campaign=campaign)
    assert result.created == 6
    inserts = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("INSERT") and '"sequences_message"' in q["sql"]
    ]
    assert len(inserts) == 2  # 4 + 2 rows: one INSERT per chunk, never one per subscriber
    # Conflicts on the (campaign, subscriber) key are skipped by the database, not by a read first.
    assert all("ON CONFLICT DO NOTHING" in sql or sql.startswith("INSERT OR IGNORE") for sql in inserts)


def test_a_campaign_with_nobody_to_send_to_is_sent_at_once(workspace, template, news):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign = campaign_start(workspace=workspace, campaign=campaign).campaign
    assert campaign.status == CampaignStatus.SENT and campaign.finished_at is not None


def test_a_campaign_with_a_broken_template_does_not_start(workspace, news, audience):
    broken = TemplateFactory(workspace=workspace, html="{% if %}")
    campaign = campaign_for(workspace, broken, lists=[news.pk])
    with pytest.raises(Conflict):
        campaign_start(workspace=workspace, campaign=campaign)
    assert not Message.objects.exists()


# The tick ---------------------------------------------------------------------------------------


def test_the_tick_starts_a_scheduled_campaign_when_its_time_comes_and_only_once(workspace, template, news, audience):
    at = timezone.now() + timedelta(hours=1)
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign = campaign_schedule(workspace=workspace, campaign=campaign, at=at)
    assert campaign.status == CampaignStatus.SCHEDULED

    assert campaigns_tick(now=at - timedelta(seconds=1)).started == []
    assert not Message.objects.exists()
    assert campaigns_tick(now=at).started == [campaign.pk]
    assert campaigns_tick(now=at + timedelta(seconds=5)).started == []

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    assert Message.objects.filter(campaign=campaign).count() == 6


def test_scheduling_without_a_time_means_now(workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign = campaign_schedule(workspace=workspace, campaign=campaign)
    assert campaign.status == CampaignStatus.SCHEDULED and campaign.scheduled_at <= timezone.now()
    assert campaigns_tick().started == [campaign.pk]


def test_scheduling_in_the_past_is_refused_naming_the_field(workspace, template, news):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    with pytest.raises(ValidationFailed) as caught:
        campaign_schedule(workspace=workspace, campaign=campaign, at=timezone.now() - timedelta(seconds=1))
    assert list(caught.value.details) == ["scheduled_at"]


# Sending through the real sender ----------------------------------------------------------------


def test_every_recipient_gets_exactly_one_email_and_the_campaign_becomes_sent(
    smtp, workspace, template, news, audience
):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)

    assert campaigns_tick().finished == []  # messages still queued
    assert set(send_some(100).values()) == {"sent"}
    assert send_some(100) == {}

    assert emails_by_recipient(smtp) == Counter({s.email: 1 for s in audience})
    for mime in smtp.messages:
        assert "/u/" in mime["List-Unsubscribe"] and mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mime["Subject"] == "Hello Ada"
    assert campaigns_tick().finished == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT and campaign.finished_at is not None


def test_pause_mid_way_then_resume_sends_each_recipient_exactly_once(smtp, workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    assert len(send_some(2)) == 2
    in_flight = messages_claim(worker="w2", limit=1, lease_seconds=300)  # a batch already claimed

    campaign = campaign_pause(workspace=workspace, campaign=campaign)
    assert campaign_pause(workspace=workspace, campaign=campaign).status == CampaignStatus.PAUSED  # idempotent

    # The claimed batch is held by the sender's check before its chunk, like the rest.
    assert messages_send(message_ids=in_flight, worker="w2").outcomes == {in_flight[0]: "deferred"}
    assert messages_claim(worker="w3", limit=100, lease_seconds=300) == []  # the rest waits
    paused = Message.objects.filter(campaign=campaign, status=MessageStatus.DEFERRED)
    assert paused.count() == 4
    assert set(paused.values_list("deferred_reason", flat=True)) == {campaigns.PAUSED_REASON}
    assert campaigns_tick().finished == []  # a paused campaign is not finished

    campaign = campaign_resume(workspace=workspace, campaign=campaign)
    assert campaign.status == CampaignStatus.SENDING
    assert campaign_resume(workspace=workspace, campaign=campaign).status == CampaignStatus.SENDING  # idempotent
    assert len(send_some(100)) == 4

    assert emails_by_recipient(smtp) == Counter({s.email: 1 for s in audience})
    assert campaigns_tick().finished == [campaign.pk]


def test_cancel_stops_the_rest_for_good_and_keeps_what_was_sent(smtp, workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    sent = send_some(2)

    campaign = campaign_cancel(workspace=workspace, campaign=campaign)
    assert campaign_cancel(workspace=workspace, campaign=campaign).status == CampaignStatus.CANCELLED  # idempotent

    assert send_some(100) == {}
    assert len(smtp.messages) == 2
    messages = Message.objects.filter(campaign=campaign)
    assert set(messages.filter(pk__in=sent).values_list("status", flat=True)) == {MessageStatus.SENT}
    rest = messages.exclude(pk__in=sent)
    assert set(rest.values_list("status", "last_error")) == {(MessageStatus.SUPPRESSED, "campaign cancelled")}
    with pytest.raises(Conflict):
        campaign_resume(workspace=workspace, campaign=campaign)
    with pytest.raises(Conflict):
        campaign_start(workspace=workspace, campaign=campaign)
    assert campaigns_tick().finished == []
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED and campaign.finished_at is not None


def test_a_paused_campaign_can_be_cancelled_and_its_paused_messages_never_go(smtp, workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    campaign_pause(workspace=workspace, campaign=campaign)
    campaign_cancel(workspace=workspace, campaign=campaign)
    Message.objects.update(send_after=timezone.now() - timedelta(seconds=1))  # even if their time came
    assert send_some(100) == {}
    assert smtp.messages == []


def test_messages_claimed_before_a_pause_are_held_by_the_sender_and_sent_once_after_resume(
    smtp, workspace, template, news, audience
):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    claimed = messages_claim(worker="w1", limit=100, lease_seconds=300)
    campaign_pause(workspace=workspace, campaign=campaign)

    # The sender's check right before the chunk sees the pause: nothing goes out, nothing is lost.
    outcomes = messages_send(message_ids=claimed, worker="w1").outcomes
    assert set(outcomes.values()) == {"deferred"}
    assert smtp.messages == []
    assert set(Message.objects.values_list("deferred_reason", flat=True)) == {"campaign_paused"}

    campaign_resume(workspace=workspace, campaign=campaign)
    assert len(send_some(100)) == len(audience)
    assert emails_by_recipient(smtp) == Counter({s.email: 1 for s in audience})


@pytest.mark.parametrize(
    ("status", "transition"),
    [
        (CampaignStatus.DRAFT, campaign_pause),
        (CampaignStatus.SCHEDULED, campaign_pause),
        (CampaignStatus.SENT, campaign_pause),
        (CampaignStatus.DRAFT, campaign_resume),
        (CampaignStatus.SENT, campaign_resume),
        (CampaignStatus.CANCELLED, campaign_resume),
        (CampaignStatus.SENT, campaign_cancel),
        (CampaignStatus.PAUSED, campaign_start),
        (CampaignStatus.SENT, campaign_start),
        (CampaignStatus.SENDING, campaign_schedule),
    ],
)
def test_wrong_state_transitions_are_conflicts(workspace, template, news, status, transition):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.refresh_from_db()
    with pytest.raises(Conflict) as caught:
        transition(workspace=workspace, campaign=campaign)
    assert status in caught.value.message
    campaign.refresh_from_db()
    assert campaign.status == status


# Numbers ----------------------------------------------------------------------------------------


def test_stats_count_unique_subscribers_from_the_event_log_and_rates_over_sent(smtp, workspace, news):
    readers = [member(news, email=f"r{n}@example.org") for n in range(4)]
    template = TemplateFactory(workspace=workspace, html='<p>Read <a href="https://example.com/news">this</a></p>')
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)

    before = campaign_stats(workspace=workspace, campaign=campaign)
    assert (before.recipients, before.by_status["queued"], before.sent) == (4, 4, 0)
    assert before.open_rate is None and before.click_rate is None and before.note

    send_some(100)
    messages = {m.subscriber_id: m for m in Message.objects.filter(campaign=campaign).select_related(
        "workspace", "subscriber", "enrollment")}  # fmt: skip
    first, second, third = (messages[r.pk] for r in readers[:3])
    later = timezone.now() + timedelta(hours=1)
    message_open_record(message=first, user_agent="Thunderbird", now=later)
    message_open_record(message=first, user_agent="Thunderbird", now=later)  # a repeat: one subscriber
    message_click_record(message=second, link_index=0, now=later)  # an inferred open too
    message_subscriber_unsubscribe(message=third, source="one-click")
    Event.objects.create(
        workspace=workspace, subscriber_id=first.subscriber_id, type=EventType.DELIVERED, name="delivered",
        message_id=first.pk,
    )  # fmt: skip

    stats = campaign_stats(workspace=workspace, campaign=campaign)
    assert (stats.recipients, stats.sent, stats.by_status["sent"]) == (4, 4, 4)
    assert (stats.opened, stats.clicked, stats.unsubscribed, stats.bounced) == (2, 1, 1, 0)
    assert stats.delivered == 1
    assert (stats.open_rate, stats.click_rate, stats.unsubscribe_rate, stats.bounce_rate) == (0.5, 0.25, 0.25, 0.0)
    assert stats.note == ""
    # Opens and clicks carry the campaign's id in the event log.
    assert set(
        Event.objects.filter(type__in=[EventType.OPENED, EventType.CLICKED]).values_list("campaign_id", flat=True)
    ) == {campaign.pk}


def test_list_numbers_of_many_campaigns_agree_with_each_campaigns_stats(smtp, workspace, news):
    from sequences.campaigns import campaigns_list_numbers

    readers = [member(news, email=f"r{n}@example.org") for n in range(3)]
    template = TemplateFactory(workspace=workspace, html='<p>Read <a href="https://example.com/news">this</a></p>')
    first_campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=first_campaign)
    send_some(100)
    second_campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=second_campaign)  # queued: nothing sent yet
    messages = {m.subscriber_id: m for m in Message.objects.filter(campaign=first_campaign).select_related(
        "workspace", "subscriber", "enrollment")}  # fmt: skip
    later = timezone.now() + timedelta(hours=1)
    message_open_record(message=messages[readers[0].pk], user_agent="Thunderbird", now=later)
    message_open_record(message=messages[readers[0].pk], user_agent="Thunderbird", now=later)
    message_click_record(message=messages[readers[1].pk], link_index=0, now=later)
    # An ESP's open, known by the message only (no campaign id on the event).
    Event.objects.create(
        workspace=workspace, subscriber_id=readers[2].pk, type=EventType.OPENED, name="opened",
        message_id=messages[readers[2].pk].pk,
    )  # fmt: skip

    numbers = campaigns_list_numbers(workspace=workspace, campaign_ids=[first_campaign.pk, second_campaign.pk])

    for campaign in (first_campaign, second_campaign):
        stats = campaign_stats(workspace=workspace, campaign=campaign)
        listed = numbers[campaign.pk]
        assert (listed.recipients, listed.sent, listed.opened, listed.clicked) == (
            stats.recipients, stats.sent, stats.opened, stats.clicked,
        )  # fmt: skip
    assert (numbers[first_campaign.pk].sent, numbers[first_campaign.pk].opened) == (3, 3)
    assert (numbers[second_campaign.pk].recipients, numbers[second_campaign.pk].opened) == (3, 0)


# Admin (pytest-django's admin_client: a signed-in superuser) ------------------------------------


def test_admin_lists_campaigns_with_counts_and_opens_their_pages(admin_client, workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    Message.objects.filter(pk__in=Message.objects.order_by("pk").values("pk")[:2]).update(status=MessageStatus.SENT)

    listing = admin_client.get("/admin/sequences/campaign/")
    assert listing.status_code == 200
    row = listing.content.decode().split("November news", 1)[1].split("</tr>", 1)[0]
    assert [cell for cell in ("6", "2", "4") if f">{cell}</td>" in row] == ["6", "2", "4"]  # recipients, sent, unsent
    for page in ("/admin/sequences/campaign/add/", f"/admin/sequences/campaign/{campaign.pk}/change/"):
        assert admin_client.get(page).status_code == 200, page


def test_admin_actions_pause_resume_and_cancel_through_the_services(admin_client, workspace, template, news, audience):
    campaign = campaign_for(workspace, template, lists=[news.pk])
    draft = campaign_for(workspace, template, lists=[news.pk])
    campaign_start(workspace=workspace, campaign=campaign)
    url = "/admin/sequences/campaign/"

    admin_client.post(url, {"action": "pause", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert set(Message.objects.values_list("deferred_reason", flat=True)) == {campaigns.PAUSED_REASON}

    admin_client.post(url, {"action": "resume", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING

    response = admin_client.post(url, {"action": "pause", "_selected_action": [draft.pk]}, follow=True)
    assert "cannot be paused" in response.content.decode()  # the refusal is shown, nothing changes
    admin_client.post(url, {"action": "cancel", "_selected_action": [campaign.pk, draft.pk]})
    assert set(Campaign.objects.values_list("status", flat=True)) == {CampaignStatus.CANCELLED}
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SUPPRESSED}


def test_admin_form_refuses_another_workspaces_template_and_an_empty_audience(
    admin_client, workspace, other_template, news
):
    response = admin_client.post(
        "/admin/sequences/campaign/add/", {"workspace": workspace.pk, "name": "x", "template": other_template.pk}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"template", "lists"}
    assert not Campaign.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not connection.features.has_select_for_update_skip_locked, reason="needs SKIP LOCKED")
def test_a_tick_skips_a_campaign_another_tick_is_starting(workspace, template, news, audience):
    import threading

    from django.db import close_old_connections, transaction

    at = timezone.now() + timedelta(hours=1)
    campaign = campaign_schedule(
        workspace=workspace, campaign=campaign_for(workspace, template, lists=[news.pk]), at=at
    )
    results = []

    def other_tick() -> None:
        try:
            results.append(campaigns_tick(now=at))
        finally:
            close_old_connections()

    with transaction.atomic():
        Campaign.objects.select_for_update().get(pk=campaign.pk)  # "another tick" holds the row
        thread = threading.Thread(target=other_tick)
        thread.start()
        thread.join(timeout=120)  # a guard against hanging, not a measurement
        assert not thread.is_alive()  # it did not wait for the lock
    assert results[0].started == []
    assert not Message.objects.exists()
    assert campaigns_tick(now=at).started == [campaign.pk]
    assert Message.objects.filter(campaign=campaign).count() == 6
