"""Cron workflows: a django-celery-beat PeriodicTask kept in step with the workflow, and firing it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from automation.cron import (
    CRON_FIRE_TASK,
    cron_config_clean,
    workflow_periodic_task_remove,
    workflow_periodic_task_sync,
)
from automation.models import ReEntry, TriggerType, Workflow, WorkflowRun, WorkflowStatus
from automation.tasks.triggers import workflow_cron_fire
from config.schedules import schedules_sync
from core.errors import ValidationFailed
from subscribers.models import SubscriberStatus
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 7, 30, 12, tzinfo=UTC)


def cron_workflow(workspace, cron="30 9 * * 1-5", timezone="Europe/Paris", **extra) -> Workflow:
    config = {"cron": cron} | ({"timezone": timezone} if timezone else {})
    return Workflow.objects.create(
        workspace=workspace, name=extra.pop("name", "Weekday digest"),
        status=extra.pop("status", WorkflowStatus.ACTIVE), trigger_type=TriggerType.CRON, trigger_config=config,
        re_entry=ReEntry.ALWAYS, **extra,
    )  # fmt: skip


def test_sync_creates_the_periodic_task_with_its_crontab_and_time_zone(workspace):
    workflow = cron_workflow(workspace)
    workflow_periodic_task_sync(workflow)

    task = PeriodicTask.objects.get(pk=Workflow.objects.get(pk=workflow.pk).periodic_task_id)
    assert task.name == f"workflow {workflow.pk}: Weekday digest"
    assert task.task == CRON_FIRE_TASK == "automation.tasks.triggers.workflow_cron_fire"
    assert json.loads(task.kwargs) == {"workflow_id": workflow.pk}
    assert task.enabled is True
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "30", "9", "*", "*", "1-5",
    )  # fmt: skip
    assert str(crontab.timezone) == "Europe/Paris"
    # The project's own schedule sync leaves workflow tasks alone (it only manages "es: " names).
    schedules_sync()
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True


def test_changes_pause_and_delete_keep_the_task_in_step(workspace):
    workflow = cron_workflow(workspace, timezone=None)
    workflow_periodic_task_sync(workflow)
    assert str(PeriodicTask.objects.get(name__startswith=f"workflow {workflow.pk}:").crontab.timezone) == "UTC"

    workflow.trigger_config = {"cron": "0 */2 * * *", "timezone": "America/New_York"}
    workflow.name = "Every two hours"
    workflow_periodic_task_sync(workflow)
    task = PeriodicTask.objects.get(name__startswith=f"workflow {workflow.pk}:")
    assert task.name == f"workflow {workflow.pk}: Every two hours"
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0", "*/2", "America/New_York")
    assert PeriodicTask.objects.filter(task=CRON_FIRE_TASK).count() == 1
    assert not CrontabSchedule.objects.filter(timezone="UTC", minute="30", hour="9").exists()  # old one cleaned

    workflow.status = WorkflowStatus.PAUSED
    workflow_periodic_task_sync(workflow)
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    workflow.status = WorkflowStatus.ACTIVE
    workflow_periodic_task_sync(workflow)
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True

    workflow_periodic_task_remove(workflow)
    workflow.delete()
    assert not PeriodicTask.objects.filter(task=CRON_FIRE_TASK).exists()


def test_syncing_a_workflow_being_deleted_or_already_deleted_removes_its_task(workspace):
    deleting = cron_workflow(workspace, name="Deleting")
    workflow_periodic_task_sync(deleting)
    workflow_periodic_task_sync(deleting, deleting=True)
    assert not PeriodicTask.objects.filter(task=CRON_FIRE_TASK).exists()

    deleted = cron_workflow(workspace, name="Deleted")
    workflow_periodic_task_sync(deleted)
    deleted.delete()
    workflow_periodic_task_sync(deleted)  # pk is None now; the instance still knows its task
    assert not PeriodicTask.objects.filter(task=CRON_FIRE_TASK).exists()
    assert not CrontabSchedule.objects.exists()


def test_a_trigger_that_is_no_longer_cron_loses_its_task(workspace):
    workflow = cron_workflow(workspace)
    workflow_periodic_task_sync(workflow)
    workflow.trigger_type = TriggerType.WEBHOOK
    workflow.trigger_config = {}
    workflow.save()
    workflow_periodic_task_sync(workflow)
    assert not PeriodicTask.objects.filter(task=CRON_FIRE_TASK).exists()
    assert Workflow.objects.get(pk=workflow.pk).periodic_task_id is None


def test_bad_cron_configs_name_the_field():
    with pytest.raises(ValidationFailed) as error:
        cron_config_clean(config={"cron": "61 * * * *"})
    assert list(error.value.details) == ["trigger_config.cron"]
    with pytest.raises(ValidationFailed) as error:
        cron_config_clean(config={"cron": "* * *"})
    assert list(error.value.details) == ["trigger_config.cron"]
    with pytest.raises(ValidationFailed) as error:
        cron_config_clean(config={"cron": "0 9 * * *", "timezone": "Mars/Olympus"})
    assert list(error.value.details) == ["trigger_config.timezone"]


def test_firing_starts_runs_for_the_audience_once_per_minute(workspace, other_workspace):
    workflow = cron_workflow(workspace)
    SubscriberFactory(workspace=workspace, email="a@x.org")
    SubscriberFactory(workspace=workspace, email="b@x.org")
    SubscriberFactory(workspace=workspace, email="gone@x.org", status=SubscriberStatus.UNSUBSCRIBED)
    SubscriberFactory(workspace=other_workspace, email="elsewhere@x.org")

    assert workflow_cron_fire(workflow.pk, now=NOW) == 2
    assert workflow_cron_fire(workflow.pk, now=NOW + timedelta(seconds=40)) == 0  # the same minute
    runs = WorkflowRun.objects.filter(workflow=workflow).order_by("subscriber__email")
    assert [run.subscriber.email for run in runs] == ["a@x.org", "b@x.org"]
    assert {run.dedupe_key for run in runs} == {"cron:2026-06-01T07:30:00+00:00"}
    assert runs[0].context == {"trigger": "cron", "fired_at": "2026-06-01T07:30:00+00:00"}
    assert workflow_cron_fire(workflow.pk, now=NOW + timedelta(minutes=1)) == 2  # the next fire
    # As beat sends it (JSON arguments; `now` as ISO text when given).
    fired = workflow_cron_fire.apply(args=[workflow.pk], kwargs={"now": (NOW + timedelta(minutes=2)).isoformat()})
    assert fired.get() == 2


def test_entry_conditions_choose_the_audience(workspace):
    workflow = cron_workflow(workspace, entry_rules={"status": ["unsubscribed"]})
    SubscriberFactory(workspace=workspace, email="a@x.org")
    SubscriberFactory(workspace=workspace, email="gone@x.org", status=SubscriberStatus.UNSUBSCRIBED)
    assert workflow_cron_fire(workflow.pk, now=NOW) == 1
    assert WorkflowRun.objects.get(workflow=workflow).subscriber.email == "gone@x.org"


def test_a_paused_workflow_or_a_deleted_one_starts_nothing_and_a_stray_task_removes_itself(workspace):
    paused = cron_workflow(workspace, status=WorkflowStatus.PAUSED)
    SubscriberFactory(workspace=workspace)
    assert workflow_cron_fire(paused.pk, now=NOW) == 0

    gone = cron_workflow(workspace, name="Gone")
    workflow_periodic_task_sync(gone)
    gone_pk = gone.pk
    Workflow.objects.filter(pk=gone_pk).delete()  # deleted without the service's remove
    assert PeriodicTask.objects.filter(name__startswith=f"workflow {gone_pk}:").exists()
    assert workflow_cron_fire(gone_pk, now=NOW) == 0
    assert not PeriodicTask.objects.filter(name__startswith=f"workflow {gone_pk}:").exists()


def test_beat_reads_the_task_as_a_crontab_in_the_workflows_zone_and_its_entry_runs_the_workflow(workspace):
    from django_celery_beat.schedulers import ModelEntry

    from config.celery_app import app

    workflow = cron_workflow(workspace, cron="30 9 * * 1-5", timezone="Europe/Paris")
    workflow_periodic_task_sync(workflow)
    SubscriberFactory(workspace=workspace, email="a@x.org")

    # The entry beat's DatabaseScheduler builds from the row (it only loads crontabs due around the
    # current hour, so the test builds it from the row directly rather than depend on the clock).
    entry = ModelEntry(PeriodicTask.objects.get(task=CRON_FIRE_TASK), app=app)
    assert entry.kwargs == {"workflow_id": workflow.pk}
    assert (entry.schedule.minute, entry.schedule.hour, entry.schedule.day_of_week) == ({30}, {9}, {1, 2, 3, 4, 5})
    assert str(entry.schedule.tz) == "Europe/Paris"
    # After a run at 07:00 UTC on Monday 2026-06-01, the next fire is 09:30 in Paris (CEST): 07:30 UTC.
    last_run, delta, _ = entry.schedule.remaining_delta(datetime(2026, 6, 1, 7, 0, tzinfo=UTC))
    assert (last_run + delta).astimezone(UTC) == datetime(2026, 6, 1, 7, 30, tzinfo=UTC)

    assert app.tasks[entry.task].apply(args=entry.args, kwargs=entry.kwargs).get() == 1
    assert WorkflowRun.objects.get(workflow=workflow).subscriber.email == "a@x.org"
