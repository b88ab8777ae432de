"""Cron-triggered workflows: each one's django-celery-beat PeriodicTask, kept in step by the service."""

from __future__ import annotations

from automation.models import Workflow


def workflow_periodic_task_sync(workflow: Workflow) -> None:
    """Create, update, enable or disable the workflow's PeriodicTask to match it (cron trigger only)."""
