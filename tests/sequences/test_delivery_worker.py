"""The sender through a real Celery worker consuming the email queue, delivering to a real SMTP server."""

from __future__ import annotations

import time

import pytest

from config.queues import Queue
from sequences.delivery.tasks import messages_dispatch, messages_enqueue
from sequences.models import Message, MessageStatus
from tests.factories import SubscriberFactory, TemplateFactory
from tests.sequences.test_delivery_support import message_make, smtp_server  # noqa: F401


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_enqueued_and_dispatched_messages_once(smtp, workspace):
    from celery.contrib.testing.worker import start_worker

    from config.celery_app import app

    template = TemplateFactory(workspace=workspace)
    enqueued = [
        message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template).pk
        for _ in range(6)
    ]
    with start_worker(
        app, perform_ping_check=False, pool="solo", queues=[Queue.EMAIL.value, Queue.DEFAULT.value],
        shutdown_timeout=30,
    ):  # fmt: skip
        messages_enqueue(enqueued)
        messages_enqueue(enqueued)  # handed over twice: still sent once
        ticked = [
            message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template).pk
            for _ in range(4)
        ]
        messages_dispatch.apply_async(queue=Queue.DEFAULT.value)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Message.objects.filter(pk__in=enqueued + ticked, status=MessageStatus.SENT).count() == 10:
                break
            time.sleep(0.1)
    statuses = set(Message.objects.filter(pk__in=enqueued + ticked).values_list("status", flat=True))
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
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not Message.objects.filter(status=MessageStatus.SENT).exists():
            time.sleep(0.1)
    message = Message.objects.get(subscriber=subscriber)
    assert message.status == MessageStatus.SENT
    [mime] = smtp.messages
    assert mime["Subject"] == "Welcome Grace" and mime["Message-ID"] == message.message_id_header
