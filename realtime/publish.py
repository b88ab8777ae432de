"""From the event log to the sockets: per-minute counters in Redis and coalesced pushes to the groups.

The event handler runs in whatever process committed the events (web, Celery worker) and stays cheap:
no database query and exactly one Redis round trip per batch (a Lua script) that
  * adds the batch to the workspace's per-minute counters (sent, delivered, opened, ... for 2 hours),
  * appends its newest events to the workspace's pending feed (bounded list),
  * marks the campaigns whose messages were sent, and
  * claims the workspace's "push scheduled" key (SET NX PX).
The one caller that claims the key schedules a flush after WEBSOCKET_PUSH_INTERVAL_MS on this process's
flusher thread; everyone else's events ride along in that flush. The flush atomically takes the pending
feed, releases the key and sends ONE message per group, so a burst of 1,000 events per second is
2 pushes per second per browser at the default 500 ms, whichever processes recorded the events.

Why a claim key plus a per-process thread rather than "whoever first passes the interval flushes":
the latter leaves the tail of a burst unsent until some later event arrives; a timer flushes it. If the
process holding the claim dies before flushing, the key expires (a few intervals) and the next batch
claims it again, so nothing is stuck for long.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from realtime import groups
from realtime.stats import counter_key, minute_of, redis_client
from subscribers.models import Event, EventType

logger = logging.getLogger(__name__)

COUNTED_TYPES = (
    EventType.SENT,
    EventType.DELIVERED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.BOUNCED,
    EventType.UNSUBSCRIBED,
)
# Events after which a subscriber may have entered or left a sequence.
ENROLLMENT_CHANGES = frozenset(
    {EventType.ENROLLED, EventType.EXITED, EventType.GOAL, EventType.UNSUBSCRIBED, EventType.BOUNCED,
     EventType.COMPLAINED}
)  # fmt: skip
COUNTER_TTL_SECONDS = 2 * 3600
CLAIM_TTL_INTERVALS = 6  # a crashed claimer blocks pushes of its workspace for at most this many intervals
MAX_CAMPAIGNS_PER_FLUSH = 50
# A flush takes milliseconds; one running this long is stuck (see Flusher).
FLUSH_STALL_SECONDS = 10.0

# KEYS: counter keys (one per minute touched), then pending, campaigns, claim.
# ARGV: n_counter_keys, ttl, claim_ms, feed_size, then per counter key "field count ..." as JSON,
#       then the feed entries (JSON strings), separated by the campaign ids after a "--" marker.
_RECORD_LUA = """
local n = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
for i = 1, n do
  local incs = cjson.decode(ARGV[4 + i])
  for field, count in pairs(incs) do
    redis.call('HINCRBY', KEYS[i], field, count)
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
local pending, campaigns, claim = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
local feed = cjson.decode(ARGV[5 + n])
for _, entry in ipairs(feed) do
  redis.call('LPUSH', pending, entry)
end
if #feed > 0 then
  redis.call('LTRIM', pending, 0, tonumber(ARGV[4]) - 1)
  redis.call('EXPIRE', pending, ttl)
end
local ids = cjson.decode(ARGV[6 + n])
for _, id in ipairs(ids) do
  redis.call('SADD', campaigns, id)
end
if #ids > 0 then
  redis.call('EXPIRE', campaigns, ttl)
end
if redis.call('SET', claim, '1', 'NX', 'PX', tonumber(ARGV[3])) then
  return 1
end
return 0
"""

# KEYS: pending, campaigns, claim. Takes the pending feed and the campaigns and releases the claim.
_TAKE_LUA = """
local feed = redis.call('LRANGE', KEYS[1], 0, -1)
local campaigns = redis.call('SPOP', KEYS[2], tonumber(ARGV[1]))
redis.call('DEL', KEYS[1], KEYS[3])
return {feed, campaigns}
"""


def _keys(workspace_id: int) -> tuple[str, str, str]:
    base = f"rt:ws:{workspace_id}"
    return f"{base}:pending", f"{base}:campaigns", f"{base}:claim"


def client_message(body: dict[str, Any]) -> dict[str, str]:
    """A group message carrying the client's JSON already encoded: one json.dumps per push, not one per
    socket (a push to 1,000 dashboards would otherwise encode the same body 1,000 times)."""
    return {"type": "client.message", "text": json.dumps(body, separators=(",", ":"))}


def _feed_entry(event: Event) -> dict[str, Any]:
    """What the live feed shows of an event: ids and names, no personal data beyond the subscriber id."""
    return {
        "id": event.pk,
        "type": event.type,
        "name": event.name,
        "subscriber_id": event.subscriber_id,
        "campaign_id": event.campaign_id,
        "sequence_id": event.sequence_id,
        "occurred_at": event.occurred_at.isoformat(),
    }


def events_record_live(*, workspace_id: int, events: Sequence[Event], now: datetime | None = None) -> bool:
    """Count and queue one workspace's events for the next push; True when this caller must schedule it.

    One Redis round trip. Events older than the dashboard's hour are not counted (no one would see them).
    """
    now = now or timezone.now()
    oldest = now - timedelta(minutes=60)
    by_minute: dict[int, dict[str, int]] = {}
    campaigns: set[int] = set()
    for event in events:
        if event.type in COUNTED_TYPES and event.occurred_at >= oldest:
            minute = minute_of(min(event.occurred_at, now))
            fields = by_minute.setdefault(minute, {})
            fields[event.type] = fields.get(event.type, 0) + 1
        if event.type == EventType.SENT and event.campaign_id:
            campaigns.add(event.campaign_id)
    feed_size = settings.WEBSOCKET_FEED_SIZE
    newest = sorted(events, key=lambda e: (e.occurred_at, e.pk or 0))[-feed_size:]
    feed = [json.dumps(_feed_entry(event)) for event in newest]
    pending, campaigns_key, claim = _keys(workspace_id)
    minutes = sorted(by_minute)
    keys = [counter_key(workspace_id, minute) for minute in minutes] + [pending, campaigns_key, claim]
    claim_ms = settings.WEBSOCKET_PUSH_INTERVAL_MS * CLAIM_TTL_INTERVALS
    args: list[Any] = [len(minutes), COUNTER_TTL_SECONDS, max(claim_ms, 1000), feed_size]
    args += [json.dumps(by_minute[minute]) for minute in minutes]
    # cjson decodes an empty JSON array as an empty object: both iterate to nothing.
    args += [json.dumps(feed), json.dumps(sorted(campaigns))]
    return bool(redis_client().eval(_RECORD_LUA, len(keys), *keys, *args))


def workspace_flush(*, workspace_id: int, now: datetime | None = None) -> int:
    """Push what is pending for the workspace: one dashboard update, one feed update, campaign progress.

    Returns the number of group messages sent.
    """
    from realtime.stats import active_enrollments, dashboard_counters, pushed_count, queue_depth

    pending, campaigns_key, claim = _keys(workspace_id)
    raw_feed, raw_campaigns = redis_client().eval(_TAKE_LUA, 3, pending, campaigns_key, claim, MAX_CAMPAIGNS_PER_FLUSH)
    feed = [json.loads(entry) for entry in reversed(raw_feed)]  # oldest first
    layer = get_channel_layer()
    if layer is None:
        return 0
    send = async_to_sync(layer.group_send)
    sent = 0
    update = {
        "type": "update",
        "counters": dashboard_counters(workspace_id=workspace_id, now=now, minutes=2),
        # Cached a few seconds, but counted again when this push carries an event that changes it: the
        # dashboard must not show the count from before the enrollments it is reporting.
        "active_enrollments": active_enrollments(
            workspace_id=workspace_id, fresh=any(entry["type"] in ENROLLMENT_CHANGES for entry in feed)
        ),
        "queue_depth": queue_depth(),
        "events": feed,
    }
    send(groups.group_name(workspace_id, groups.DASHBOARD), client_message(update))
    sent += pushed_count(workspace_id=workspace_id, kind=groups.DASHBOARD)
    if feed:
        send(groups.group_name(workspace_id, groups.EVENTS), client_message({"type": "events", "events": feed}))
        sent += pushed_count(workspace_id=workspace_id, kind=groups.EVENTS)
    campaign_ids = sorted(int(pk) for pk in raw_campaigns)
    if campaign_ids:
        for campaign_id, progress in campaigns_progress(workspace_id=workspace_id, campaign_ids=campaign_ids).items():
            send(
                groups.campaign_group_name(workspace_id, campaign_id), client_message({"type": "progress", **progress})
            )
            sent += pushed_count(workspace_id=workspace_id, kind=groups.CAMPAIGN)
    return sent


def campaigns_progress(*, workspace_id: int, campaign_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Sent of total messages for each campaign of the workspace: one query, run once per flush."""
    from sequences.campaigns import campaign_counts
    from sequences.models import Campaign, MessageStatus

    own = list(Campaign.objects.filter(workspace_id=workspace_id, pk__in=campaign_ids).values_list("pk", "status"))
    counts = campaign_counts(campaign_ids=[pk for pk, _ in own])
    return {
        pk: {
            "campaign_id": pk,
            "status": status,
            "sent": counts[pk].get(MessageStatus.SENT, 0),
            "total": sum(counts[pk].values()),
        }
        for pk, status in own
    }


def campaign_progress_push(workspace_id: int, campaign_id: int) -> int:
    """Push one campaign's progress to its watchers now (not coalesced): registered for the campaign's
    status changes, which send no event (start, pause, resume, cancel, and `sent` once nothing is left)."""
    from realtime.stats import pushed_count

    layer = get_channel_layer()
    progress = campaigns_progress(workspace_id=workspace_id, campaign_ids=[campaign_id]).get(campaign_id)
    if layer is None or progress is None:
        return 0
    async_to_sync(layer.group_send)(
        groups.campaign_group_name(workspace_id, campaign_id), client_message({"type": "progress", **progress})
    )
    return pushed_count(workspace_id=workspace_id, kind=groups.CAMPAIGN)


class Flusher:
    """One daemon thread per process that runs each workspace's flush when its interval has passed.

    A flush that hangs (a socket read that never returns) would otherwise stop every later push of the
    process, for every workspace: once the running flush is older than `stall_seconds`, the next
    `schedule` starts a fresh thread and the stuck one exits as soon as its flush returns.
    """

    def __init__(
        self, flush: Callable[[int], Any] | None = None, *, stall_seconds: float = FLUSH_STALL_SECONDS
    ) -> None:
        self._flush = flush or (lambda workspace_id: workspace_flush(workspace_id=workspace_id))
        self._stall_seconds = stall_seconds
        self._due: list[tuple[float, int]] = []
        self._scheduled: set[int] = set()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._generation = 0  # the one thread whose generation this is runs flushes; older ones exit
        self._busy_since: float | None = None  # when the current thread's flush started

    def schedule(self, workspace_id: int, delay: float) -> None:
        with self._condition:
            if workspace_id in self._scheduled:
                return
            self._scheduled.add(workspace_id)
            heapq.heappush(self._due, (time.monotonic() + delay, workspace_id))
            if self._needs_thread():
                self._generation += 1
                self._busy_since = None
                self._thread = threading.Thread(
                    target=self._run, args=(self._generation,), name="realtime-flusher", daemon=True
                )
                self._thread.start()
            self._condition.notify_all()

    def _needs_thread(self) -> bool:
        if self._thread is None or not self._thread.is_alive():
            return True
        if self._busy_since is not None and time.monotonic() - self._busy_since > self._stall_seconds:
            logger.error("realtime flush stuck for over %s s; starting another flusher thread", self._stall_seconds)
            return True
        return False

    def _run(self, generation: int) -> None:
        while True:
            with self._condition:
                while generation == self._generation and (not self._due or self._due[0][0] > time.monotonic()):
                    self._condition.wait(timeout=(self._due[0][0] - time.monotonic()) if self._due else None)
                if generation != self._generation:
                    return  # replaced while stuck: the newer thread owns the queue
                _, workspace_id = heapq.heappop(self._due)
                self._scheduled.discard(workspace_id)
                self._busy_since = time.monotonic()
            try:
                self._flush(workspace_id)
            except Exception:  # a Redis or database hiccup loses one push, never the thread
                logger.exception("realtime flush failed for workspace %s", workspace_id)
            finally:
                from django.db import connection

                connection.close()  # the thread's own connection: do not leave it open between flushes
                with self._condition:
                    if generation == self._generation:
                        self._busy_since = None


# Tests replace this with a recorder and call `workspace_flush` themselves (no timing in tests).
schedule_flush: Callable[[int, float], None] = Flusher().schedule


def realtime_events_handler(events: Sequence[Event]) -> None:
    """Registered in RealtimeConfig.ready(): count, queue and schedule a coalesced push per workspace."""
    by_workspace: dict[int, list[Event]] = {}
    for event in events:
        by_workspace.setdefault(event.workspace_id, []).append(event)
    for workspace_id, batch in by_workspace.items():
        if events_record_live(workspace_id=workspace_id, events=batch):
            schedule_flush(workspace_id, settings.WEBSOCKET_PUSH_INTERVAL_MS / 1000)


def workspace_broadcast(*, workspace_id: int, message: str, sender: str) -> int:
    """A message from an admin to the workspace's open dashboards, sent now (not coalesced)."""
    from realtime.stats import pushed_count

    layer = get_channel_layer()
    if layer is None:
        return 0
    async_to_sync(layer.group_send)(
        groups.group_name(workspace_id, groups.DASHBOARD),
        client_message(
            {"type": "broadcast", "message": message, "sender": sender, "sent_at": timezone.now().isoformat()}
        ),
    )
    return pushed_count(workspace_id=workspace_id, kind=groups.DASHBOARD)
