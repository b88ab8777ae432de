"""Celery tasks of automation, one module per part (Celery's autodiscovery imports this package)."""

from automation.tasks import engine, triggers, webhooks

__all__ = ["engine", "triggers", "webhooks"]
