"""Celery tasks of the subscribers app: they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from subscribers.imports import import_job_run


@shared_task(name="subscribers.tasks.import_job_run_task", ignore_result=True, acks_late=True)
def import_job_run_task(import_job_id: int) -> None:
    """Run a CSV import. The service is idempotent: a finished import is not run again."""
    import_job_run(import_job_id=import_job_id)
