"""Tasks of the scheduled triggers: date attributes, segment entry and exit, cron workflows."""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.utils.dateparse import parse_datetime

from automation import triggers
from automation.cron import workflow_periodic_task_remove
from automation.models import Workflow

logger = logging.getLogger(__name__)


def _moment(now: datetime | str | None) -> datetime | None:
    """`now` as tests pass it (a datetime) or as JSON carries it (an ISO string)."""
    if now is None or isinstance(now, datetime):
        return now
    return parse_datetime(now)


@shared_task
def workflow_date_triggers_tick(now: datetime | str | None = None) -> int:
    """Start the runs of date-triggered workflows whose day has come in the subscriber's time zone."""
    return triggers.workflow_date_triggers_evaluate(now=_moment(now))


@shared_task
def workflow_segment_triggers_tick(now: datetime | str | None = None) -> int:
    """Re-evaluate the segments of segment-triggered workflows; start runs for who entered or left."""
    return triggers.workflow_segment_triggers_evaluate(now=_moment(now))


@shared_task
def workflow_cron_fire(workflow_id: int, now: datetime | str | None = None) -> int:
    """Fired by the workflow's PeriodicTask: start its runs. A task left behind by a deleted workflow
    removes itself."""
    workflow = Workflow.objects.select_related("workspace").filter(pk=workflow_id).first()
    if workflow is None:
        logger.warning("cron fired for workflow %s, which no longer exists: removing its task", workflow_id)
        workflow_periodic_task_remove(Workflow(pk=workflow_id))
        return 0
    return triggers.workflow_cron_runs_start(workflow=workflow, now=_moment(now))
