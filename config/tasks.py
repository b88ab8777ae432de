"""Project-wide tasks: the worker heartbeat that /health/ready looks for."""

from celery import shared_task
from celery.signals import worker_ready

from config.health import heartbeat_record


@shared_task(name="config.tasks.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    heartbeat_record()


@worker_ready.connect
def _heartbeat_on_start(**_: object) -> None:
    heartbeat_record()
