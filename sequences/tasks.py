"""Celery tasks of sequences: the scheduler's beat tick, enrollments due now, backfills, and the campaigns tick."""

from __future__ import annotations

import logging

from celery import shared_task

from sequences.campaigns import campaigns_tick
from sequences.scheduler import enrollments_process, enrollments_process_due

logger = logging.getLogger(__name__)


@shared_task(name="sequences.tasks.scheduler_tick", ignore_result=True)
def scheduler_tick() -> dict[str, int]:
    """Claim and process every due enrollment (scheduled in config.schedules)."""
    return enrollments_process_due().as_dict()


@shared_task(name="sequences.tasks.enrollments_process_task", ignore_result=True)
def enrollments_process_task(enrollment_ids: list[int]) -> dict[str, int]:
    """Process these enrollments now if they are still due (enqueued after a zero-delay enrollment commits)."""
    return enrollments_process(enrollment_ids=enrollment_ids).as_dict()


@shared_task(name="sequences.tasks.sequence_backfill_task", ignore_result=True)
def sequence_backfill_task(workspace_id: int, sequence_id: int, list_id: int, start_by_join_age: bool) -> dict:
    """Enroll a large list's members into a sequence (a backfill too big for the API request)."""
    from accounts.models import Workspace
    from core.errors import ApplicationError
    from sequences.services import sequence_backfill_run

    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return {"error": "workspace not found"}
    try:
        result = sequence_backfill_run(
            workspace=workspace, sequence_id=sequence_id, list_id=list_id, start_by_join_age=start_by_join_age
        )
    except ApplicationError as exc:  # the sequence became a draft or archived, the list was deleted: stop
        logger.warning("backfill of sequence %s from list %s stopped: %s", sequence_id, list_id, exc.message)
        return {"error": exc.message}
    logger.info("backfill of sequence %s from list %s: %d enrolled", sequence_id, list_id, result.enrolled)
    return {"enrolled": result.enrolled, "members": result.members, "skipped": dict(result.skipped)}


@shared_task(name="sequences.tasks.campaigns_tick", ignore_result=True)
def campaigns_tick_task() -> dict[str, list[int]]:
    """Start due scheduled campaigns and mark finished ones sent (scheduled in config.schedules)."""
    return campaigns_tick().as_dict()
