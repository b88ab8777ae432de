"""Live numbers: per-minute counters and open connections in Redis, plus a few cached database counts.

Counters: a hash per workspace and minute (`rt:ws:<id>:m:<epoch minute>`, field = event type), kept two
hours. Connections: one hash per process (field `<workspace>:<type>` = open sockets) that expires unless
the process refreshes it with its heartbeats, so a crashed process stops being counted on its own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from sequences.delivery.pace import redis_client  # the one Redis client per process (re-exported for publish)

logger = logging.getLogger(__name__)

SERIES_TYPES = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")
CACHE_SECONDS = 5  # active enrollments and queue depth: a count query at most every few seconds
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
PUSHED_KEY = "rt:pushed"
CONNECTIONS_PATTERN = "rt:conn:*"


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


def counter_key(workspace_id: int, minute: int) -> str:
    return f"rt:ws:{int(workspace_id)}:m:{minute}"


def dashboard_counters(*, workspace_id: int, now: datetime | None = None, minutes: int = 60) -> dict[str, Any]:
    """The last `minutes` minutes (oldest first, the current one last) of each counted event type."""
    now = now or timezone.now()
    last = minute_of(now)
    span = list(range(last - minutes + 1, last + 1))
    pipe = redis_client().pipeline(transaction=False)
    for minute in span:
        pipe.hgetall(counter_key(workspace_id, minute))
    rows = pipe.execute()
    series = {name: [int(row.get(name.encode(), 0)) for row in rows] for name in SERIES_TYPES}
    return {
        "minutes": [datetime.fromtimestamp(minute * 60, tz=UTC).isoformat() for minute in span],
        "series": series,
    }


def active_enrollments(*, workspace_id: int, fresh: bool = False) -> int:
    """Active enrollments, counted at most every CACHE_SECONDS unless `fresh` (the caller saw them change)."""
    from sequences.models import Enrollment, EnrollmentStatus

    key = f"rt:active-enrollments:{int(workspace_id)}"
    count = None if fresh else cache.get(key)
    if count is None:
        count = Enrollment.objects.filter(workspace_id=workspace_id, status=EnrollmentStatus.ACTIVE).count()
        cache.set(key, count, CACHE_SECONDS)
    return int(count)


def queue_depth() -> dict[str, int] | None:
    """Tasks waiting per Celery queue (shared by all workspaces), from config.metrics; None if unknown."""
    from config.metrics import queue_depth as metrics_queue_depth

    depth = cache.get("rt:queue-depth")
    if depth is None:
        try:
            families = metrics_queue_depth(timezone.now())
        except Exception:  # a broker that does not answer must not break the dashboard
            logger.warning("queue depth unavailable", exc_info=True)
            return None
        depth = {sample.labels["queue"]: int(sample.value) for family in families for sample in family.samples}
        cache.set("rt:queue-depth", depth, CACHE_SECONDS)
    return dict(depth)


def recent_events(*, workspace_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The newest events of the workspace for a fresh feed (the pushes carry the ones after it)."""
    from realtime.publish import _feed_entry
    from subscribers.models import Event

    events = Event.objects.filter(workspace_id=workspace_id).order_by("-occurred_at", "-id")[:limit]
    return [_feed_entry(event) for event in reversed(list(events))]


def dashboard_snapshot(*, workspace_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Everything a dashboard shows, sent on connect so a reconnect needs no reload."""
    now = now or timezone.now()
    return {
        "counters": dashboard_counters(workspace_id=workspace_id, now=now),
        "queue_depth": queue_depth(),
        "active_enrollments": active_enrollments(workspace_id=workspace_id),
        "events": recent_events(workspace_id=workspace_id),
        "at": now.isoformat(),
    }


def pushed_count(*, workspace_id: int, kind: str) -> int:
    """Count one group message pushed (shared by all processes); returns 1 for the caller's sums."""
    redis_client().hincrby(PUSHED_KEY, f"{int(workspace_id)}:{kind}", 1)
    return 1


class ConnectionRegistry:
    """This process's open sockets by workspace and type: in memory, mirrored to its Redis hash."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str], int] = {}
        self.total = 0
        self._refreshed = 0.0
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        return f"rt:conn:{PROCESS_ID}"

    def _ttl(self) -> int:
        return max(3 * settings.WEBSOCKET_HEARTBEAT_SECONDS, 10)

    def try_add(self, workspace_id: int, kind: str) -> bool:
        """Count a new socket unless the process already holds WEBSOCKET_MAX_CONNECTIONS."""
        with self._lock:
            if self.total >= settings.WEBSOCKET_MAX_CONNECTIONS:
                return False
            self.total += 1
            self.counts[(workspace_id, kind)] = self.counts.get((workspace_id, kind), 0) + 1
        self._write(workspace_id, kind, 1)
        return True

    def remove(self, workspace_id: int, kind: str) -> None:
        with self._lock:
            self.total -= 1
            left = self.counts.get((workspace_id, kind), 1) - 1
            if left:
                self.counts[(workspace_id, kind)] = left
            else:
                self.counts.pop((workspace_id, kind), None)
        self._write(workspace_id, kind, -1)

    def _write(self, workspace_id: int, kind: str, delta: int) -> None:
        pipe = redis_client().pipeline(transaction=False)
        pipe.hincrby(self.key, f"{workspace_id}:{kind}", delta)
        pipe.expire(self.key, self._ttl())
        pipe.execute()

    def refresh(self) -> None:
        """Called from heartbeats: keep this process's hash alive, at most once per half heartbeat."""
        now = time.monotonic()
        if now - self._refreshed < settings.WEBSOCKET_HEARTBEAT_SECONDS / 2:
            return
        self._refreshed = now
        with self._lock:
            mapping = {f"{ws}:{kind}": n for (ws, kind), n in self.counts.items()}
        pipe = redis_client().pipeline()
        pipe.delete(self.key)  # rewrite from memory: heals a hash that expired while the process lagged
        for field, count in mapping.items():
            pipe.hset(self.key, field, count)
        if mapping:
            pipe.expire(self.key, self._ttl())
        pipe.execute()


connections = ConnectionRegistry()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def connections_stats(*, workspace_id: int) -> dict[str, Any]:
    """Open sockets of the workspace by type across all live processes, and group messages pushed."""
    client = redis_client()
    prefix = f"{int(workspace_id)}:"
    by_type = dict.fromkeys(("dashboard", "events", "campaign"), 0)
    processes = 0
    for key in client.scan_iter(match=CONNECTIONS_PATTERN, count=500):
        counted = False
        for field, value in client.hgetall(key).items():
            name = _text(field)
            if name.startswith(prefix) and int(value) > 0:
                kind = name[len(prefix) :]
                by_type[kind] = by_type.get(kind, 0) + int(value)
                counted = True
        processes += counted
    pushed = dict.fromkeys(by_type, 0)
    for field, value in client.hgetall(PUSHED_KEY).items():
        name = _text(field)
        if name.startswith(prefix):
            kind = name[len(prefix) :]
            pushed[kind] = pushed.get(kind, 0) + int(value)
    return {
        "workspace": int(workspace_id),
        "connections": by_type,
        "connections_total": sum(by_type.values()),
        "processes": processes,
        "messages_pushed": pushed,
        "messages_pushed_total": sum(pushed.values()),
    }
