"""Tasks of the workflow engine: the tick that advances due runs, event matching."""

from __future__ import annotations

from celery import shared_task


@shared_task
def workflow_runs_tick() -> int:
    """Advance the runs whose time has come (waits over, runs started in bulk). Returns how many."""
    return 0
