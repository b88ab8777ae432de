"""Tasks of the workflow engine: the tick that advances due runs, event matching, team notifications."""

from __future__ import annotations

from celery import shared_task

from config.queues import Queue


@shared_task(name="automation.tasks.engine.workflow_runs_tick", ignore_result=True, queue=Queue.DEFAULT.value)
def workflow_runs_tick() -> int:
    """Advance the runs whose time has come (waits over, runs started in bulk). Returns how many."""
    from automation.engine import workflow_runs_advance_due

    return workflow_runs_advance_due()


@shared_task(name="automation.tasks.engine.workflow_events_match", ignore_result=True, queue=Queue.DEFAULT.value)
def workflow_events_match(event_ids: list[int]) -> dict[str, int]:
    """Resume runs waiting for these events and start the workflows they trigger."""
    from automation.matching import events_match

    return events_match(event_ids=[int(pk) for pk in event_ids])


@shared_task(
    name="automation.tasks.engine.workflow_notify_send", queue=Queue.DEFAULT.value, autoretry_for=(OSError,),
    retry_backoff=True, max_retries=5,
)  # fmt: skip
def workflow_notify_send(*, subject: str, body: str, recipients: list[str]) -> int:
    """Send the team notification of a workflow's notify action (queued after its step commits)."""
    from automation.actions import notify_mail_send

    return notify_mail_send(subject=subject, body=body, recipients=recipients)
