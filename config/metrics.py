"""Delivery metrics at /metrics, computed from the database and the broker at scrape time.

A process-local counter would only know what its own process did; these numbers are read where the
truth is (the outbox, the enrollments, the broker's queues), so every web process answers the same.
Each part is one cheap query on an existing index; a part that fails is logged and left out (and
`email_sequence_metrics_errors{part=...}` says so) without breaking the rest of the scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client.core import REGISTRY, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from config.queues import Queue

logger = logging.getLogger(__name__)

# Seconds between due and sent; the last bucket is an hour, the window the histogram looks back over.
LATENCY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
LATENCY_WINDOW = timedelta(hours=1)
BROKER_TIMEOUT_SECONDS = 2


def _label(value: float) -> str:
    return str(float(value))


def messages_by_status(now: datetime) -> list[Metric]:
    from sequences.models import Message, MessageStatus

    counts = dict.fromkeys(MessageStatus.values, 0)
    for status, count in Message.objects.order_by().values_list("status").annotate(n=Count("*")):
        counts[status] = count
    family = GaugeMetricFamily("email_sequence_messages", "Messages in the outbox, by status.", labels=["status"])
    for status, count in sorted(counts.items()):
        family.add_metric([status], count)
    return [family]


def send_latency(now: datetime) -> list[Metric]:
    """Messages sent in the last hour by how long after their due time (`send_after`) they went out:
    one query of conditional counts (cumulative, as Prometheus buckets are), the count and the sum."""
    from sequences.models import Message, MessageStatus

    latency = ExpressionWrapper(F("sent_at") - F("send_after"), output_field=DurationField())
    sent = Message.objects.filter(status=MessageStatus.SENT, sent_at__gte=now - LATENCY_WINDOW).annotate(
        latency=latency
    )
    aggregates = {
        f"le_{index}": Count("pk", filter=Q(latency__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(LATENCY_BUCKETS)
    }
    row = sent.aggregate(count=Count("pk"), total=Sum("latency"), **aggregates)
    buckets = [(_label(bound), row[f"le_{index}"]) for index, bound in enumerate(LATENCY_BUCKETS)]
    buckets.append(("+Inf", row["count"]))
    total = row["total"].total_seconds() if row["total"] is not None else 0.0
    return [
        HistogramMetricFamily(
            "email_sequence_send_latency_seconds",
            "Seconds from a message's due time to its sending, for messages sent in the last hour.",
            buckets=buckets,
            sum_value=total,
        )
    ]


def queue_depth(now: datetime) -> list[Metric]:
    """Tasks waiting in each Celery queue of the broker (a Redis list per queue and priority)."""
    from kombu import Connection

    family = GaugeMetricFamily("email_sequence_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"])
    options = {"socket_timeout": BROKER_TIMEOUT_SECONDS, "socket_connect_timeout": BROKER_TIMEOUT_SECONDS}
    with Connection(
        settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options
    ) as connection:
        channel = connection.default_channel
        size = getattr(channel, "_size", None)  # the Redis transport's length of a queue over its priorities
        if size is None:
            raise RuntimeError(f"queue depth is not supported on the {connection.transport_cls} broker")
        for queue in Queue:
            family.add_metric([queue.value], size(queue.value))
    return [family]


def enrollments_due(now: datetime) -> list[Metric]:
    """Active enrollments of active sequences whose step is due: the scheduler's backlog."""
    from sequences.models import Enrollment, EnrollmentStatus, SequenceStatus

    due = Enrollment.objects.filter(
        status=EnrollmentStatus.ACTIVE, next_run_at__lte=now, sequence__status=SequenceStatus.ACTIVE
    ).count()
    return [GaugeMetricFamily("email_sequence_enrollments_due", "Enrollments due and not yet processed.", value=due)]


def deferrals_by_reason(now: datetime) -> list[Metric]:
    from sequences.models import Message, MessageStatus

    rows = (
        Message.objects.filter(status=MessageStatus.DEFERRED)
        .order_by()
        .values_list("deferred_reason")
        .annotate(n=Count("*"))
    )
    family = GaugeMetricFamily(
        "email_sequence_messages_deferred", "Deferred messages, by the reason they wait.", labels=["reason"]
    )
    for reason, count in sorted(rows):
        family.add_metric([reason or "unspecified"], count)
    return [family]


PARTS: dict[str, Callable[[datetime], list[Metric]]] = {
    "messages": messages_by_status,
    "send_latency": send_latency,
    "queue_depth": queue_depth,
    "enrollments_due": enrollments_due,
    "deferrals": deferrals_by_reason,
}


class DeliveryCollector(Collector):
    """The project's delivery metrics, read at each scrape (see the module docstring)."""

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not query the database; the names are checked at scrape time

    def collect(self) -> Iterable[Metric]:
        now = timezone.now()
        errors = GaugeMetricFamily(
            "email_sequence_metrics_errors", "1 when a part of these metrics failed in this scrape.", labels=["part"]
        )
        for name, part in PARTS.items():
            try:
                families = part(now)
            except Exception:  # one broken part (a broker down, a lock) must not take the scrape with it
                logger.exception("metrics part %s failed", name)
                errors.add_metric([name], 1)
                continue
            errors.add_metric([name], 0)
            yield from families
        yield errors


_collector: DeliveryCollector | None = None


def delivery_metrics_register() -> DeliveryCollector:
    """Register the collector with prometheus_client's registry (served by django_prometheus); once."""
    global _collector
    if _collector is None:
        _collector = DeliveryCollector()
        REGISTRY.register(_collector)
    return _collector
