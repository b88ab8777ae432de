"""Celery tasks of sequences: the scheduler's beat tick, enrollments due now, and the campaigns tick."""

from __future__ import annotations

from celery import shared_task

from sequences.campaigns import campaigns_tick
from sequences.scheduler import enrollments_process, enrollments_process_due


@shared_task(name="sequences.tasks.scheduler_tick", ignore_result=True)
def scheduler_tick() -> dict[str, int]:
    """Claim and process every due enrollment (scheduled in config.schedules)."""
    return enrollments_process_due().as_dict()


@shared_task(name="sequences.tasks.enrollments_process_task", ignore_result=True)
def enrollments_process_task(enrollment_ids: list[int]) -> dict[str, int]:
    """Process these enrollments now if they are still due (enqueued after a zero-delay enrollment commits)."""
    return enrollments_process(enrollment_ids=enrollment_ids).as_dict()


@shared_task(name="sequences.tasks.campaigns_tick", ignore_result=True)
def campaigns_tick_task() -> dict[str, list[int]]:
    """Start due scheduled campaigns and mark finished ones sent (scheduled in config.schedules)."""
    return campaigns_tick().as_dict()
