"""Cron-triggered workflows: each one's django-celery-beat PeriodicTask, kept in step by the service.

One beat only: the DatabaseScheduler that runs the project's schedules (config/schedules.py) also reads
these rows. Their names start "workflow <id>: ", never "es: ", so `schedules_sync` leaves them alone.
"""

from __future__ import annotations

import json
import zoneinfo
from typing import Any

from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.validators import crontab_validator

from automation.models import TriggerType, Workflow, WorkflowStatus
from config.queues import Queue
from core.errors import ValidationFailed

CRON_FIRE_TASK = "automation.tasks.triggers.workflow_cron_fire"
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def periodic_task_name(workflow: Workflow) -> str:
    return f"workflow {workflow.pk}: {workflow.name}"[:200]


def _name_prefix(workflow_id: int) -> str:
    return f"workflow {workflow_id}: "


def cron_config_clean(*, config: Any, field: str = "trigger_config") -> dict[str, str]:
    """Validate a cron trigger's config ({"cron": "m h dom mon dow", "timezone": IANA name, optional})
    and return the CrontabSchedule fields it stands for, plus "timezone". Errors name the field
    (`trigger_config.cron`, `trigger_config.timezone`)."""
    if not isinstance(config, dict):
        raise ValidationFailed.for_field(field, "Must be an object.")
    expression = config.get("cron")
    if not isinstance(expression, str) or len(expression.split()) != 5:
        raise ValidationFailed.for_field(f"{field}.cron", 'Must be a cron expression "m h dom mon dow".')
    parts = expression.split()
    try:
        crontab_validator(" ".join(parts))
        crontab(**dict(zip(CRON_FIELDS, parts, strict=True)))  # what beat will parse
    except (ValidationError, ValueError) as error:
        message = error.messages[0] if isinstance(error, ValidationError) else str(error)
        raise ValidationFailed.for_field(f"{field}.cron", f"Not a valid cron expression: {message}") from None
    zone = config.get("timezone") or "UTC"
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationFailed.for_field(f"{field}.timezone", "Must be an IANA time zone, e.g. Europe/Paris.") from None
    return {**dict(zip(CRON_FIELDS, parts, strict=True)), "timezone": zone}


def workflow_periodic_task_remove(workflow: Workflow) -> None:
    """Delete the workflow's PeriodicTask (and its crontab when nothing else uses it). Safe on a
    workflow about to be deleted, already deleted (Django then leaves `pk` None but keeps
    `periodic_task_id` on the instance), or that never had one."""
    tasks = PeriodicTask.objects.none()
    if workflow.pk is not None:
        tasks = PeriodicTask.objects.filter(name__startswith=_name_prefix(workflow.pk), task=CRON_FIRE_TASK)
    if workflow.periodic_task_id is not None:
        tasks = tasks | PeriodicTask.objects.filter(pk=workflow.periodic_task_id, task=CRON_FIRE_TASK)
    with transaction.atomic():
        crontab_ids = {task.crontab_id for task in tasks if task.crontab_id}
        for task in tasks:
            task.delete()  # one by one: PeriodicTask's delete signal tells beat the schedule changed
        CrontabSchedule.objects.filter(pk__in=crontab_ids, periodictask__isnull=True).delete()
        if workflow.pk is not None:
            Workflow.objects.filter(pk=workflow.pk).update(periodic_task=None)
    workflow.periodic_task = None


def workflow_periodic_task_sync(workflow: Workflow, *, deleting: bool = False) -> None:
    """Create, update, enable or disable the workflow's PeriodicTask to match it (cron trigger only).

    A workflow whose trigger is not cron (any more) loses its task, and so does one being deleted
    (`deleting=True`, before the delete) or already deleted (no row any more). The task is enabled only
    while the workflow is active. Call it after every change of the workflow. A cron config that does
    not validate raises ValidationFailed naming `trigger_config.cron` or `trigger_config.timezone`.
    """
    if (
        deleting
        or workflow.pk is None
        or workflow.trigger_type != TriggerType.CRON
        or not Workflow.objects.filter(pk=workflow.pk).exists()
    ):
        workflow_periodic_task_remove(workflow)
        return
    fields = cron_config_clean(config=workflow.trigger_config)
    with transaction.atomic():
        schedule = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(**fields)
        task = PeriodicTask.objects.filter(pk=workflow.periodic_task_id).first() if workflow.periodic_task_id else None
        if task is None:
            task = PeriodicTask.objects.filter(name__startswith=_name_prefix(workflow.pk), task=CRON_FIRE_TASK).first()
        if task is None:
            task = PeriodicTask(task=CRON_FIRE_TASK)
        previous_crontab_id = task.crontab_id
        task.name = periodic_task_name(workflow)
        task.task = CRON_FIRE_TASK
        task.crontab = schedule
        task.interval = None
        task.kwargs = json.dumps({"workflow_id": workflow.pk})
        task.queue = Queue.DEFAULT.value
        task.enabled = workflow.status == WorkflowStatus.ACTIVE
        task.description = f"Fires the cron trigger of workflow {workflow.pk} (kept in step by automation.cron)."
        task.save()  # save(), not update(): its signal tells beat the schedule changed
        if previous_crontab_id and previous_crontab_id != schedule.pk:
            CrontabSchedule.objects.filter(pk=previous_crontab_id, periodictask__isnull=True).delete()
        if workflow.periodic_task_id != task.pk:
            Workflow.objects.filter(pk=workflow.pk).update(periodic_task=task)
            workflow.periodic_task = task
