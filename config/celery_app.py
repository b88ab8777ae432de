"""The Celery app: `celery -A config worker` and `celery -A config beat` find it here."""

import os

from celery import Celery
from kombu import Exchange
from kombu import Queue as KombuQueue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("email_sequence")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["config"], related_name="tasks")
app.autodiscover_tasks(["sequences.delivery"], related_name="tasks")


def _declare_queues() -> None:
    from config.queues import Queue

    # Each queue gets its own exchange and routing key. Left out, Celery binds every queue to the
    # "default" exchange with the "default" key, so anything published through that exchange (rather
    # than by queue name) would reach every queue.
    app.conf.task_queues = [
        KombuQueue(queue.value, Exchange(queue.value, type="direct"), routing_key=queue.value) for queue in Queue
    ]


_declare_queues()
