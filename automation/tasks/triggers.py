"""Tasks of the scheduled triggers: date attributes, segment entry and exit, cron workflows."""

from __future__ import annotations

from celery import shared_task


@shared_task
def workflow_date_triggers_tick() -> int:
    """Start the runs of date-triggered workflows whose day has come in the subscriber's time zone."""
    return 0


@shared_task
def workflow_segment_triggers_tick() -> int:
    """Re-evaluate the segments of segment-triggered workflows; start runs for who entered or left."""
    return 0
