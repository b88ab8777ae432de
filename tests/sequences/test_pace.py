"""Pace: workspace and domain token buckets in a real Redis, domain backoff, and the frequency cap."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sequences.delivery.claim import messages_claim
from sequences.delivery.pace import PaceItem, Pacer, Reason, domain_rate_current
from sequences.delivery.send import messages_send
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus
from tests.factories import MessageFactory, SequenceFactory, StepFactory, SubscriberFactory
from tests.sequences.test_delivery_support import message_make, smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db

T0 = 1024.0  # a fixed clock for the bucket tests (tokens are counted, not timed); eighths are exact


def items(workspace_id: int, n: int, *, start: int = 0, rate: float = 4, domain: str = "example.org") -> list:
    return [
        PaceItem(message_id=start + i, workspace_id=workspace_id, workspace_rate=rate, domain=domain) for i in range(n)
    ]


def granted(pacer: Pacer, batch: list) -> int:
    return len(batch) - len(pacer.acquire(batch))


def test_two_workers_share_one_workspace_bucket_and_never_exceed_its_rate():
    first, second = Pacer(now=T0), Pacer(now=T0)
    # Both workers ask for 8 at the same instant: the bucket holds one second of the rate (4), in total.
    assert granted(first, items(1, 8)) + granted(second, items(1, 8, start=100)) == 4
    assert granted(first, items(1, 3, start=200)) == 0
    # Half a second later, 2 tokens have come back: two messages may go, whoever asks.
    first.now = second.now = T0 + 0.5
    assert granted(second, items(1, 4, start=300)) == 2
    assert granted(first, items(1, 4, start=400)) == 0
    # Over ten more seconds of both asking every eighth of a second, exactly the rate goes through.
    total = 0
    for tick in range(1, 81):
        for pacer in (first, second):
            pacer.now = T0 + 0.5 + tick / 8
            total += granted(pacer, items(1, 3, start=1000 * tick))
    assert total == 40
    # Another workspace has its own bucket.
    assert granted(first, items(2, 8, start=5000)) == 4


def test_a_denied_message_is_told_how_long_to_wait_and_later_ones_queue_behind_it():
    pacer = Pacer(now=T0)
    denials = pacer.acquire(items(1, 8, rate=2))
    assert sorted(denials) == [2, 3, 4, 5, 6, 7]
    assert {d.reason for d in denials.values()} == {Reason.RATE_LIMIT}
    assert [denials[i].wait for i in range(2, 8)] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    pacer.handed_back(items(1, 6, start=2, rate=2))
    # The next chunk of the batch queues behind the six handed back.
    assert pacer.acquire(items(1, 1, start=50, rate=2))[50].wait == 3.5


def test_a_domain_limit_is_shared_by_every_workspace(settings):
    settings.DELIVERY_DOMAIN_LIMITS = {"gmail.com": 3}
    pacer = Pacer(now=T0)
    batch = items(1, 2, rate=100, domain="gmail.com") + items(2, 2, start=10, rate=100, domain="gmail.com")
    denials = pacer.acquire(batch + items(3, 5, start=20, rate=100, domain="other.test"))
    assert list(denials) == [11]
    assert denials[11].reason == Reason.DOMAIN_RATE


def test_a_451_halves_the_domains_rate_and_successes_win_it_back(smtp, settings, workspace, template):
    settings.DELIVERY_DOMAIN_LIMITS = {"example.org": 8}
    settings.DELIVERY_DOMAIN_BACKOFF_FLOOR = 1
    settings.DELIVERY_DOMAIN_RECOVERY_STEP = 0.5
    settings.DELIVERY_RATE_WAIT_MAX_SECONDS = 0
    workspace.sending_rate_per_second = 1000
    workspace.save()
    greylisted = SubscriberFactory(workspace=workspace, email="grey@example.org")
    smtp.rcpt_replies[greylisted.email] = ["451 4.7.1 Too many messages, slow down"]
    message_make(workspace=workspace, subscriber=greylisted, template=template)
    assert domain_rate_current("example.org") == 8

    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert set(messages_send(message_ids=ids, worker="w1").outcomes.values()) == {"deferred"}
    assert domain_rate_current("example.org") == 4

    # The domain now allows 4 per second: of 6 messages asked at once, the rest wait, as backed off.
    others = [SubscriberFactory(workspace=workspace, email=f"s{i}@example.org") for i in range(6)]
    for subscriber in others:
        message_make(workspace=workspace, subscriber=subscriber, template=template)
    ids = messages_claim(worker="w2", limit=10, lease_seconds=300)
    outcomes = messages_send(message_ids=ids, worker="w2").outcomes
    sent = [pk for pk, outcome in outcomes.items() if outcome == "sent"]
    assert 1 <= len(sent) <= 4 + 1  # 4 tokens, and at most one more refilled while the batch ran
    held = Message.objects.filter(deferred_reason=Reason.DOMAIN_BACKOFF)
    assert held.count() == 6 - len(sent)
    # Each accepted message gave 0.5 msg/s back.
    assert domain_rate_current("example.org") == 4 + 0.5 * len(sent)

    pacer = Pacer()
    pacer.feedback(failures={}, successes={"example.org": 100})  # only a backed-off domain is told
    assert pacer.backed_off == set()
    Pacer(backed_off={"example.org"}).feedback(failures={}, successes={"example.org": 100})
    assert domain_rate_current("example.org") == 8  # back to its limit, and no further


def test_the_rate_is_kept_across_two_workers_sending(smtp, settings, workspace, template):
    """Two lease owners send from one workspace at 3 per second; whatever they cannot send is handed back
    with reason rate_limit, its attempt given back. Sent + still-allowed tokens never exceed the rate."""
    settings.DELIVERY_RATE_WAIT_MAX_SECONDS = 0
    workspace.sending_rate_per_second = 3
    workspace.save()
    for _ in range(10):
        message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template)
    first = messages_claim(worker="w1", limit=5, lease_seconds=300)
    second = messages_claim(worker="w2", limit=5, lease_seconds=300)
    started = time.monotonic()
    outcomes = {
        **messages_send(message_ids=first, worker="w1").outcomes,
        **messages_send(message_ids=second, worker="w2").outcomes,
    }
    elapsed = time.monotonic() - started
    sent = sum(1 for outcome in outcomes.values() if outcome == "sent")
    # A bucket of one second (3 tokens) plus what came back while the two batches ran.
    assert 3 <= sent <= 3 + int(3 * elapsed) + 1
    assert len(smtp.envelopes) == sent
    held = Message.objects.filter(status=MessageStatus.DEFERRED)
    assert held.count() == 10 - sent
    now = timezone.now()
    for message in held:
        assert message.deferred_reason == Reason.RATE_LIMIT
        assert message.attempts == 0  # not an attempt: it never reached the server
        assert now < message.send_after <= now + timedelta(seconds=4)


def test_a_short_wait_for_tokens_is_waited_for(smtp, settings, workspace, template):
    settings.DELIVERY_RATE_WAIT_MAX_SECONDS = 1
    workspace.sending_rate_per_second = 20
    workspace.save()
    for _ in range(25):
        message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template)
    ids = messages_claim(worker="w1", limit=100, lease_seconds=300)
    assert set(messages_send(message_ids=ids, worker="w1").outcomes.values()) == {"sent"}
    assert len(smtp.envelopes) == 25


def _sent_before(workspace, subscriber, hours_ago: float) -> None:
    MessageFactory(workspace=workspace, subscriber=subscriber, sent_at=timezone.now() - timedelta(hours=hours_ago))


def test_the_frequency_cap_defers_to_when_the_oldest_send_leaves_the_window(smtp, workspace, subscriber, template):
    workspace.frequency_cap_count = 2
    workspace.frequency_cap_hours = 24
    workspace.save()
    _sent_before(workspace, subscriber, 30)  # outside the window: not counted
    _sent_before(workspace, subscriber, 20)
    _sent_before(workspace, subscriber, 5)
    fresh = SubscriberFactory(workspace=workspace)
    _sent_before(workspace, fresh, 3)
    capped = message_make(workspace=workspace, subscriber=subscriber, template=template)
    free = message_make(workspace=workspace, subscriber=fresh, template=template)

    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert messages_send(message_ids=ids, worker="w1").outcomes == {capped.pk: "deferred", free.pk: "sent"}

    capped.refresh_from_db()
    oldest_in_window = Message.objects.filter(subscriber=subscriber, status="sent").order_by("sent_at")[1].sent_at
    assert capped.status == MessageStatus.DEFERRED and capped.deferred_reason == Reason.FREQUENCY_CAP
    assert capped.send_after == oldest_in_window + timedelta(hours=24)
    assert capped.attempts == 0
    # Never dropped: at that time it goes.
    ids = messages_claim(worker="w2", limit=10, lease_seconds=300, now=capped.send_after)
    assert ids == [capped.pk]


def test_the_cap_counts_two_messages_of_one_chunk(smtp, workspace, subscriber, template):
    workspace.frequency_cap_count = 1
    workspace.save()
    first = message_make(workspace=workspace, subscriber=subscriber, template=template)
    second = message_make(workspace=workspace, subscriber=subscriber, template=template)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert messages_send(message_ids=ids, worker="w1").outcomes == {first.pk: "sent", second.pk: "deferred"}


def test_high_priority_steps_and_campaigns_bypass_the_cap(smtp, workspace, subscriber, template):
    workspace.frequency_cap_count = 1
    workspace.save()
    _sent_before(workspace, subscriber, 1)
    sequence = SequenceFactory(workspace=workspace)
    urgent_step = StepFactory(sequence=sequence, template=template, high_priority=True)
    normal_step = StepFactory(sequence=sequence, template=template)
    campaign = Campaign.objects.create(
        workspace=workspace, name="Outage", template=template, status=CampaignStatus.SENDING, high_priority=True
    )
    urgent = message_make(workspace=workspace, subscriber=subscriber, template=template, step=urgent_step)
    normal = message_make(workspace=workspace, subscriber=subscriber, template=template, step=normal_step)
    broadcast = message_make(workspace=workspace, subscriber=subscriber, template=template, campaign=campaign)

    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    outcomes = messages_send(message_ids=ids, worker="w1").outcomes
    assert outcomes == {urgent.pk: "sent", normal.pk: "deferred", broadcast.pk: "sent"}
    assert Message.objects.get(pk=normal.pk).deferred_reason == Reason.FREQUENCY_CAP


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [(CampaignStatus.PAUSED, "deferred", Reason.CAMPAIGN_PAUSED), (CampaignStatus.CANCELLED, "suppressed", "")],
)
def test_a_campaign_paused_or_cancelled_after_the_claim_stops_its_messages(
    smtp, workspace, subscriber, template, status, outcome, reason
):
    campaign = Campaign.objects.create(workspace=workspace, name="Spring", template=template, status="sending")
    message = message_make(workspace=workspace, subscriber=subscriber, template=template, campaign=campaign)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    Campaign.objects.filter(pk=campaign.pk).update(status=status)

    assert messages_send(message_ids=ids, worker="w1").outcomes == {message.pk: outcome}
    assert smtp.envelopes == []
    message.refresh_from_db()
    assert message.deferred_reason == reason
    if status == CampaignStatus.PAUSED:
        assert message.send_after > timezone.now() + timedelta(hours=12) and message.attempts == 0
    else:
        assert message.last_error == "campaign cancelled"


def test_without_redis_nothing_is_sent_and_nothing_is_lost(smtp, settings, workspace, subscriber, template, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path}/nobody-listens.sock"
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert messages_send(message_ids=ids, worker="w1").outcomes == {message.pk: "deferred"}
    assert smtp.envelopes == []
    message.refresh_from_db()
    assert message.deferred_reason == Reason.RATE_LIMIT and message.attempts == 0
