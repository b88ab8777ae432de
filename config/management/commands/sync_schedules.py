"""`python manage.py sync_schedules`: store config.schedules as PeriodicTasks (migrate does it too)."""

from django.core.management.base import BaseCommand

from config.schedules import schedules, schedules_sync


class Command(BaseCommand):
    help = "Store the beat schedules of config.schedules for the DatabaseScheduler; disable retired ones."

    def handle(self, *args: object, **options: object) -> None:
        schedules_sync()
        for schedule in schedules():
            self.stdout.write(f"{schedule.name}: {schedule.task} every {schedule.every_seconds}s on {schedule.queue}")
