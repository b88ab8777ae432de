"""Queues: a task sent to one queue is delivered to that queue only."""

import pytest

from config.celery_app import app
from config.queues import Queue


@pytest.fixture
def broker_channel():
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        # Declare every queue with its bindings, as a worker consuming all of them does at start-up.
        for declaration in app.amqp.queues.values():
            declaration.bind(channel).declare()
        for queue in Queue:
            channel.queue_purge(queue.value)
        yield channel
        for queue in Queue:
            channel.queue_purge(queue.value)


@pytest.mark.parametrize("target", list(Queue))
def test_a_task_sent_to_one_queue_lands_in_that_queue_only(broker_channel, target):
    app.send_task("config.tasks.worker_heartbeat", queue=target.value)

    depths = {queue: broker_channel.client.llen(queue.value) for queue in Queue}

    assert depths == {queue: int(queue == target) for queue in Queue}
