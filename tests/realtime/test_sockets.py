"""WebSockets: who may connect (session, JWT, membership), isolation, coalescing, campaigns, limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from accounts.models import Role
from realtime import publish
from realtime.stats import dashboard_counters
from sequences.models import Campaign
from subscribers.models import Event, EventType
from subscribers.services import event_record, events_record_many
from tests.factories import MessageFactory, SubscriberFactory, TemplateFactory, WorkspaceFactory
from tests.realtime.conftest import ORIGIN, close_code, open_socket, session_headers, token_for

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/api/v1/ws/connect/dashboard"
EVENTS = "/api/v1/ws/connect/events"
CAMPAIGN = "/api/v1/ws/connect/campaign"


@pytest.fixture
def acme(transactional_db):
    return WorkspaceFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(transactional_db):
    return WorkspaceFactory(name="Globex", slug="globex")


flush = sync_to_async(publish.workspace_flush)


def test_session_user_is_accepted_and_gets_a_snapshot(acme, member):
    user = member(acme, Role.VIEWER)
    event_record(workspace=acme, subscriber=None, name="earlier")
    headers = session_headers(user)

    @async_to_sync
    async def run():
        socket, snapshot = await open_socket(f"{DASHBOARD}?workspace={acme.pk}", headers)
        await socket.disconnect()
        return snapshot

    snapshot = run()
    assert [event["name"] for event in snapshot["events"]] == ["earlier"]
    assert len(snapshot["counters"]["minutes"]) == 60
    assert snapshot["active_enrollments"] == 0


def test_jwt_in_the_query_string_is_accepted_without_an_origin(acme, member):
    user = member(acme, Role.VIEWER)

    @async_to_sync
    async def run():
        socket, snapshot = await open_socket(f"{EVENTS}?workspace={acme.pk}&token={token_for(user)}")
        await socket.disconnect()
        return snapshot

    assert run()["events"] == []


def test_the_only_workspace_is_used_when_none_is_named(acme, member):
    user = member(acme)

    @async_to_sync
    async def run():
        socket, _ = await open_socket(f"{DASHBOARD}?token={token_for(user)}")
        await socket.disconnect()

    run()


def test_unauthenticated_sockets_are_closed_with_4401(acme, member):
    user = member(acme)
    codes = [
        async_to_sync(close_code)(f"{DASHBOARD}?workspace={acme.pk}"),
        async_to_sync(close_code)(f"{DASHBOARD}?workspace={acme.pk}&token=not-a-jwt", [ORIGIN]),
        # A session cookie from a foreign page (cross-site WebSocket hijacking) does not authenticate.
        async_to_sync(close_code)(
            f"{DASHBOARD}?workspace={acme.pk}",
            [session_headers(user)[0], (b"origin", b"https://evil.example")],
        ),
        async_to_sync(close_code)(f"{DASHBOARD}?workspace={acme.pk}", [session_headers(user)[0]]),  # no Origin
    ]
    assert codes == [4401, 4401, 4401, 4401]


def test_a_workspace_the_user_is_not_a_member_of_is_closed_with_4403(acme, globex, member):
    user = member(acme)
    token = token_for(user)
    codes = [
        async_to_sync(close_code)(f"{DASHBOARD}?workspace={globex.pk}&token={token}"),
        async_to_sync(close_code)(f"{DASHBOARD}?workspace=999999999&token={token}"),
        async_to_sync(close_code)(f"{DASHBOARD}?workspace=acme%00&token={token}"),
    ]
    member(globex)
    other = member(globex)  # a user of two workspaces who names none
    from tests.factories import MembershipFactory

    MembershipFactory(workspace=acme, user=other)
    codes.append(async_to_sync(close_code)(f"{DASHBOARD}?token={token_for(other)}"))
    assert codes == [4403, 4403, 4403, 4403]


def test_a_campaign_socket_needs_a_campaign_of_the_workspace(acme, globex, member):
    token = token_for(member(acme))
    theirs = Campaign.objects.create(workspace=globex, name="Theirs", template=TemplateFactory(workspace=globex))
    codes = [
        async_to_sync(close_code)(f"{CAMPAIGN}?workspace={acme.pk}&token={token}"),
        async_to_sync(close_code)(f"{CAMPAIGN}?workspace={acme.pk}&campaign={theirs.pk}&token={token}"),
    ]
    assert codes == [4404, 4404]


def test_a_client_never_receives_another_workspaces_events(acme, globex, member, scheduled):
    token_a, token_b = token_for(member(acme)), token_for(member(globex))

    @async_to_sync
    async def run():
        a, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token_a}")
        a_feed, _ = await open_socket(f"{EVENTS}?workspace={acme.pk}&token={token_a}")
        b, _ = await open_socket(f"{DASHBOARD}?workspace={globex.pk}&token={token_b}")
        await sync_to_async(event_record)(workspace=globex, subscriber=None, name="globex-secret")
        await flush(workspace_id=globex.pk)
        b_update = await b.receive_json_from(timeout=10)
        # Acme's next event: if Globex's push had reached Acme's sockets it would come first (one
        # Redis list per channel keeps the order), so the first message each receives must be Acme's.
        await sync_to_async(event_record)(workspace=acme, subscriber=None, name="acme-own")
        await flush(workspace_id=acme.pk)
        a_update = await a.receive_json_from(timeout=10)
        a_events = await a_feed.receive_json_from(timeout=10)
        for socket in (a, a_feed, b):
            assert await socket.receive_nothing(timeout=0.2)
            await socket.disconnect()
        return a_update, a_events, b_update

    a_update, a_events, b_update = run()
    assert [e["name"] for e in b_update["events"]] == ["globex-secret"]
    assert [e["name"] for e in a_update["events"]] == ["acme-own"]
    assert a_events == {"type": "events", "events": a_update["events"]}
    assert scheduled == [(globex.pk, 0.5), (acme.pk, 0.5)]


def test_a_burst_of_events_becomes_one_push_with_the_right_counters(acme, member, scheduled):
    token = token_for(member(acme))
    subscriber = SubscriberFactory(workspace=acme)
    now = timezone.now()

    def burst():
        # 1,000 events committed as 20 batches, as the sender's chunks of `sent` events arrive.
        for chunk in range(20):
            kind = EventType.SENT if chunk % 2 == 0 else EventType.OPENED
            events_record_many(
                workspace=acme,
                events=[Event(workspace=acme, subscriber=subscriber, type=kind, occurred_at=now) for _ in range(50)],
            )

    @async_to_sync
    async def run():
        socket, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token}")
        await sync_to_async(burst)()
        pushed = await flush(workspace_id=acme.pk, now=now)
        update = await socket.receive_json_from(timeout=10)
        assert await socket.receive_nothing(timeout=0.2)  # one push for the burst, nothing after it
        await socket.disconnect()
        return pushed, update

    pushed, update = run()
    assert scheduled == [(acme.pk, 0.5)]  # 20 batches, one scheduled push
    assert pushed == 2  # the dashboard group and the events group, once each
    assert update["type"] == "update"
    assert update["counters"]["series"]["sent"][-1] == 500
    assert update["counters"]["series"]["opened"][-1] == 500
    assert len(update["events"]) == 50  # WEBSOCKET_FEED_SIZE newest of the burst
    assert dashboard_counters(workspace_id=acme.pk, now=now)["series"]["sent"][-1] == 500
    # The push released the claim: the next batch schedules the next push.
    event_record(workspace=acme, subscriber=subscriber, type=EventType.CLICKED, occurred_at=now)
    assert scheduled == [(acme.pk, 0.5), (acme.pk, 0.5)]


def test_counters_go_to_the_minute_of_the_event_and_ignore_events_older_than_the_hour(acme, scheduled):
    now = timezone.now().replace(second=30)
    subscriber = SubscriberFactory(workspace=acme)
    for occurred_at in (now, now - timedelta(minutes=5), now - timedelta(minutes=90)):
        event_record(workspace=acme, subscriber=subscriber, type=EventType.SENT, occurred_at=occurred_at)
    series = dashboard_counters(workspace_id=acme.pk, now=now)["series"]["sent"]
    assert series[-1] == 1 and series[-6] == 1 and sum(series) == 2


def test_campaign_sockets_see_progress_when_its_messages_are_sent(acme, member, scheduled):
    token = token_for(member(acme))
    campaign = Campaign.objects.create(workspace=acme, name="News", template=TemplateFactory(workspace=acme))
    messages = [MessageFactory(workspace=acme, campaign=campaign, status="queued") for _ in range(3)]

    @async_to_sync
    async def run():
        socket, snapshot = await open_socket(f"{CAMPAIGN}?workspace={acme.pk}&campaign={campaign.pk}&token={token}")

        def send_two():
            for message in messages[:2]:
                type(message).objects.filter(pk=message.pk).update(status="sent")
                event_record(
                    workspace=acme, subscriber=message.subscriber, type=EventType.SENT,
                    message_id=message.pk, campaign_id=campaign.pk,
                )  # fmt: skip

        await sync_to_async(send_two)()
        await flush(workspace_id=acme.pk)
        progress = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        return snapshot, progress

    snapshot, progress = run()
    assert (snapshot["sent"], snapshot["total"]) == (0, 3)
    assert progress["type"] == "progress"
    assert (progress["campaign_id"], progress["sent"], progress["total"]) == (campaign.pk, 2, 3)


@override_settings(WEBSOCKET_MAX_CONNECTIONS=1)
def test_past_the_per_process_limit_sockets_are_closed_with_4429(acme, member):
    token = token_for(member(acme))

    @async_to_sync
    async def run():
        first, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token}")
        code = await close_code(f"{DASHBOARD}?workspace={acme.pk}&token={token}")
        await first.disconnect()
        again, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token}")  # a slot is free again
        await again.disconnect()
        return code

    assert run() == 4429


@override_settings(WEBSOCKET_HEARTBEAT_SECONDS=0.05)
def test_heartbeats_keep_answering_clients_and_close_silent_ones(acme, member):
    token = token_for(member(acme))

    @async_to_sync
    async def run():
        socket, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token}")
        first = await socket.receive_json_from(timeout=10)
        await socket.send_json_to({"type": "pong"})
        second = await socket.receive_json_from(timeout=10)
        # No pong this time: the next beat closes the socket.
        closed = await socket.receive_output(timeout=10)
        await socket.wait()
        return first, second, closed

    first, second, closed = run()
    assert first == second == {"type": "ping"}
    assert closed == {"type": "websocket.close", "code": 4408}


def test_the_channel_layer_does_not_time_out_its_own_blocking_receive():
    # redis-py 8 reads with a 5 s socket timeout by default, as long as channels_redis's BZPOPMIN blocks:
    # every idle socket would be torn down (django/channels_redis#422).
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    options = layer.create_pool(0).connection_kwargs
    assert options["socket_timeout"] is None or options["socket_timeout"] > layer.brpop_timeout
    assert layer.create_pool(0).max_connections > settings.WEBSOCKET_MAX_CONNECTIONS


def test_a_push_after_enrollments_counts_them_again_instead_of_the_cached_count(acme, member, scheduled):
    from sequences.models import SequenceStatus
    from sequences.services import sequence_enroll
    from tests.factories import SequenceFactory, StepFactory

    token = token_for(member(acme))
    sequence = SequenceFactory(workspace=acme, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, position=1)
    subscriber = SubscriberFactory(workspace=acme)

    @async_to_sync
    async def run():
        socket, snapshot = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token}")  # caches 0
        await sync_to_async(sequence_enroll)(workspace=acme, sequence=sequence, subscriber_ids=[subscriber.pk])
        await flush(workspace_id=acme.pk)
        update = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        return snapshot, update

    snapshot, update = run()
    assert snapshot["active_enrollments"] == 0
    assert [event["type"] for event in update["events"]] == ["enrolled"]
    assert update["active_enrollments"] == 1


def test_campaign_sockets_hear_of_status_changes_that_send_no_event(acme, member, scheduled):
    from sequences.campaigns import campaign_pause, campaigns_tick
    from sequences.models import CampaignStatus

    token = token_for(member(acme))
    campaign = Campaign.objects.create(
        workspace=acme, name="News", template=TemplateFactory(workspace=acme), status=CampaignStatus.SENDING
    )
    message = MessageFactory(workspace=acme, campaign=campaign, status="queued")

    @async_to_sync
    async def run():
        socket, _ = await open_socket(f"{CAMPAIGN}?workspace={acme.pk}&campaign={campaign.pk}&token={token}")
        await sync_to_async(campaign_pause)(workspace=acme, campaign=campaign)
        paused = await socket.receive_json_from(timeout=10)

        def last_one_sent_then_tick():
            type(message).objects.filter(pk=message.pk).update(status="sent")
            Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)  # as a resume would
            return campaigns_tick()

        ticked = await sync_to_async(last_one_sent_then_tick)()
        finished = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        return paused, ticked, finished

    paused, ticked, finished = run()
    assert (paused["type"], paused["status"]) == ("progress", "paused")
    assert ticked.finished == [campaign.pk]
    assert (finished["status"], finished["sent"], finished["total"]) == ("sent", 1, 1)
