"""/metrics: delivery numbers read from the database and the broker at scrape time, exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from config.celery_app import app as celery_app
from config.queues import Queue
from sequences.models import SequenceStatus
from tests.factories import EnrollmentFactory, MessageFactory, SequenceFactory, StepFactory

pytestmark = pytest.mark.django_db


def scrape(client) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} of the email_sequence_* families."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        if not family.name.startswith("email_sequence_"):
            continue
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by(label: str, values: dict[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in values.items()}


@pytest.fixture
def empty_queues():
    """The broker's queues, empty before and after (a test's tasks never reach another test's worker)."""

    def purge():
        with Connection(settings.CELERY_BROKER_URL) as connection:
            for queue in Queue:
                connection.default_channel.queue_purge(queue.value)

    purge()
    yield
    purge()


def sent(workspace, *, latency_seconds: float, minutes_ago: float = 10, **fields):
    sent_at = timezone.now() - timedelta(minutes=minutes_ago)
    return MessageFactory(
        workspace=workspace, status="sent", sent_at=sent_at, send_after=sent_at - timedelta(seconds=latency_seconds),
        **fields,
    )  # fmt: skip


def test_messages_by_status_are_counted_with_every_status_present(client, workspace, other_workspace):
    for _ in range(3):
        sent(workspace, latency_seconds=1)
    sent(other_workspace, latency_seconds=1)
    MessageFactory(workspace=workspace, status="queued", sent_at=None)
    MessageFactory(workspace=workspace, status="failed", sent_at=None)
    MessageFactory(workspace=other_workspace, status="failed", sent_at=None)

    messages = by("status", scrape(client)["email_sequence_messages"])

    assert messages == {
        "queued": 1, "sending": 0, "sent": 4, "failed": 2, "suppressed": 0, "deferred": 0,
    }  # fmt: skip


def test_send_latency_is_a_cumulative_histogram_of_the_last_hour(client, workspace):
    for seconds in (0.05, 0.3, 0.3, 4, 45, 200, 1000, 5000):
        sent(workspace, latency_seconds=seconds)
    sent(workspace, latency_seconds=1, minutes_ago=90)  # sent before the hour: left out
    MessageFactory(workspace=workspace, status="queued", sent_at=None)

    samples = scrape(client)

    buckets = by("le", samples["email_sequence_send_latency_seconds_bucket"])
    assert buckets == {
        "0.1": 1, "0.5": 3, "1.0": 3, "2.0": 3, "5.0": 4, "10.0": 4, "30.0": 4, "60.0": 5, "300.0": 6,
        "900.0": 6, "3600.0": 7, "+Inf": 8,
    }  # fmt: skip
    assert samples["email_sequence_send_latency_seconds_count"][()] == 8
    assert samples["email_sequence_send_latency_seconds_sum"][()] == pytest.approx(6249.65)


def test_due_enrollments_count_only_active_ones_of_active_sequences_whose_time_has_come(client, workspace):
    active = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    step = StepFactory(sequence=active)
    paused = SequenceFactory(workspace=workspace, status=SequenceStatus.PAUSED)
    now = timezone.now()
    for minutes in (1, 5, 60):
        EnrollmentFactory(sequence=active, current_step=step, next_run_at=now - timedelta(minutes=minutes))
    EnrollmentFactory(sequence=active, current_step=step, next_run_at=now + timedelta(hours=1))
    EnrollmentFactory(sequence=active, current_step=step, next_run_at=now - timedelta(hours=1), status="completed")
    EnrollmentFactory(sequence=paused, next_run_at=now - timedelta(hours=1))

    assert scrape(client)["email_sequence_enrollments_due"][()] == 3


def test_deferred_messages_are_counted_by_reason(client, workspace):
    for reason in ("frequency_cap", "frequency_cap", "rate_limit", ""):
        MessageFactory(workspace=workspace, status="deferred", sent_at=None, deferred_reason=reason)
    MessageFactory(workspace=workspace, status="queued", sent_at=None, deferred_reason="rate_limit")

    deferred = by("reason", scrape(client)["email_sequence_messages_deferred"])

    assert deferred == {"frequency_cap": 2, "rate_limit": 1, "unspecified": 1}


def test_queue_depth_is_read_from_the_broker(client, empty_queues):
    for queue, count in ((Queue.EMAIL, 3), (Queue.ML, 1)):
        for _ in range(count):
            celery_app.send_task("config.tasks.nothing", queue=queue.value)
    celery_app.send_task("config.tasks.nothing", queue=Queue.EMAIL.value, priority=6)

    depth = by("queue", scrape(client)["email_sequence_queue_depth"])

    assert depth == {"default": 0, "email": 4, "ml": 1}


def test_a_failing_part_is_reported_and_the_rest_of_the_scrape_still_answers(client, workspace):
    sent(workspace, latency_seconds=1)
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):  # nothing listens on port 1
        samples = scrape(client)

    assert "email_sequence_queue_depth" not in samples
    assert by("status", samples["email_sequence_messages"])["sent"] == 1
    assert by("part", samples["email_sequence_metrics_errors"]) == {
        "messages": 0, "send_latency": 0, "queue_depth": 1, "enrollments_due": 0, "deferrals": 0,
    }  # fmt: skip
