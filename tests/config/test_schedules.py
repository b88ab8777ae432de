"""The one beat registry (config.schedules) is stored as django-celery-beat PeriodicTasks on migrate."""

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.schedules import schedules, schedules_sync

pytestmark = pytest.mark.django_db


def test_migrate_stored_every_schedule_of_the_registry():
    # The test database was built by migrate, whose post_migrate signal ran the sync.
    for schedule in schedules():
        task = PeriodicTask.objects.get(name=f"es: {schedule.name}")
        assert task.task == schedule.task
        assert task.queue == schedule.queue.value
        assert task.enabled
        assert task.interval.every == schedule.every_seconds
        assert task.interval.period == IntervalSchedule.SECONDS


def test_the_worker_heartbeat_is_scheduled():
    assert PeriodicTask.objects.filter(task="config.tasks.worker_heartbeat", enabled=True).exists()


def test_syncing_again_changes_nothing():
    before = list(PeriodicTask.objects.order_by("name").values_list("name", "task", "queue", "interval_id", "enabled"))
    intervals = IntervalSchedule.objects.count()

    schedules_sync()
    schedules_sync()

    after = list(PeriodicTask.objects.order_by("name").values_list("name", "task", "queue", "interval_id", "enabled"))
    assert after == before
    assert IntervalSchedule.objects.count() == intervals


def test_a_schedule_no_longer_in_the_registry_is_disabled_and_others_are_left_alone():
    interval = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="es: retired job", task="config.tasks.retired", interval=interval)
    PeriodicTask.objects.create(name="hand-made job", task="some.task", interval=interval)

    schedules_sync()

    assert not PeriodicTask.objects.get(name="es: retired job").enabled
    assert PeriodicTask.objects.get(name="hand-made job").enabled


def test_sync_schedules_command_restores_a_disabled_schedule():
    from django.core.management import call_command

    PeriodicTask.objects.filter(name="es: worker heartbeat").update(enabled=False)

    call_command("sync_schedules", stdout=__import__("io").StringIO())

    assert PeriodicTask.objects.get(name="es: worker heartbeat").enabled
