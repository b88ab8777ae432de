"""The sender through a real Celery worker consuming the email queue, delivering to a real SMTP server."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError

from config.queues import Queue
from sequences.delivery.tasks import messages_dispatch, messages_enqueue
from sequences.models import Message, MessageStatus
from tests.factories import SubscriberFactory, TemplateFactory
from tests.sequences.test_delivery_support import message_make, smtp_server  # noqa: F401


def _wait_until(condition, timeout: float = 60) -> None:
    """Poll `condition` (SMTP server state first, so the database is read as little as possible)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OperationalError:  # SQLite: the worker holds the table right now
            pass
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_enqueued_and_dispatched_messages_once(smtp, workspace):
    from celery.contrib.testing.worker import start_worker

    from config.celery_app import app

    template = TemplateFactory(workspace=workspace)
    made = [
        message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template).pk
        for _ in range(10)
    ]
    enqueued = made[:6]
    # Everything is written before the worker starts: SQLite's shared in-memory test database locks
    # whole tables, so a write here while the worker writes would fail one of the two.
    with start_worker(
        app, perform_ping_check=False, pool="solo", queues=[Queue.EMAIL.value, Queue.DEFAULT.value],
        shutdown_timeout=30,
    ):  # fmt: skip
        messages_enqueue(enqueued)
        messages_enqueue(enqueued)  # handed over twice: still sent once
        messages_dispatch.apply_async(queue=Queue.DEFAULT.value)  # the tick finds the other four
        _wait_until(lambda: len(smtp.envelopes) >= 10)
        _wait_until(lambda: Message.objects.filter(pk__in=made, status=MessageStatus.SENT).count() == 10)
    statuses = set(Message.objects.filter(pk__in=made).values_list("status", flat=True))
    assert statuses == {MessageStatus.SENT}
    ids = [str(m["Message-ID"]) for m in smtp.messages]
    assert len(ids) == 10 and len(set(ids)) == 10


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_enrolled_subscriber_receives_the_first_step_through_scheduler_and_sender(smtp, workspace):
    """Enroll → (after commit) the scheduler creates the message → the sender's enqueue → the SMTP server."""
    pytest.importorskip("sequences.scheduler")
    from celery.contrib.testing.worker import start_worker

    from config.celery_app import app
    from sequences.models import SequenceStatus
    from sequences.services import sequence_enroll
    from tests.factories import SequenceFactory, StepFactory

    template = TemplateFactory(workspace=workspace, subject="Welcome {{ subscriber.first_name }}")
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=0, delay_unit="minutes")
    subscriber = SubscriberFactory(workspace=workspace, first_name="Grace")
    with start_worker(
        app, perform_ping_check=False, pool="solo", queues=[Queue.EMAIL.value, Queue.DEFAULT.value],
        shutdown_timeout=30,
    ):  # fmt: skip
        sequence_enroll(workspace=workspace, sequence=sequence, subscriber_ids=[subscriber.pk])
        _wait_until(lambda: len(smtp.envelopes) >= 1)
        _wait_until(lambda: Message.objects.filter(status=MessageStatus.SENT).exists())
    message = Message.objects.get(subscriber=subscriber)
    assert message.status == MessageStatus.SENT
    [mime] = smtp.messages
    assert mime["Subject"] == "Welcome Grace" and mime["Message-ID"] == message.message_id_header
