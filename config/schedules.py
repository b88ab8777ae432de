"""The one registry of beat schedules. `python manage.py sync_schedules` (run by migrate) stores
them as django-celery-beat PeriodicTasks, which the DatabaseScheduler reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from config.queues import Queue


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every_seconds: int
    queue: Queue = Queue.DEFAULT


def schedules() -> list[Schedule]:
    """Every periodic task of the project, declared here and nowhere else."""
    return [
        Schedule("worker heartbeat", "config.tasks.worker_heartbeat", settings.WORKER_HEARTBEAT_INTERVAL),
        Schedule("purge idempotency records", "accounts.tasks.idempotency_records_purge_task", 3600),
        Schedule("sequence scheduler", "sequences.tasks.scheduler_tick", settings.SCHEDULER_TICK_SECONDS),
        Schedule("campaigns", "sequences.tasks.campaigns_tick", settings.SCHEDULER_TICK_SECONDS),
        Schedule("dispatch messages", "sequences.delivery.tasks.messages_dispatch", settings.DELIVERY_TICK_SECONDS),
        Schedule("workflow runs", "automation.tasks.engine.workflow_runs_tick", settings.SCHEDULER_TICK_SECONDS),
        # Date triggers fire at a local hour in each subscriber's zone: checked every 5 minutes.
        Schedule("workflow date triggers", "automation.tasks.triggers.workflow_date_triggers_tick", 300),
        Schedule("workflow segment triggers", "automation.tasks.triggers.workflow_segment_triggers_tick", 300),
        Schedule("webhook deliveries", "automation.tasks.webhooks.webhook_deliveries_tick", 15),
    ]


def schedules_sync() -> None:
    """Create or update the PeriodicTasks of `schedules()`; disable ones this registry no longer names."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    managed_prefix = "es: "
    wanted = set()
    for schedule in schedules():
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=schedule.every_seconds, period=IntervalSchedule.SECONDS
        )
        name = managed_prefix + schedule.name
        wanted.add(name)
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": schedule.task, "interval": interval, "queue": schedule.queue.value, "enabled": True},
        )
    PeriodicTask.objects.filter(name__startswith=managed_prefix).exclude(name__in=wanted).update(enabled=False)
