"""Periodic housekeeping for accounts."""

from celery import shared_task

from accounts.idempotency import idempotency_records_purge


@shared_task(name="accounts.tasks.idempotency_records_purge_task", ignore_result=True)
def idempotency_records_purge_task() -> int:
    return idempotency_records_purge()
