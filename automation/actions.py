"""What each workflow action does to one run's subscriber. The engine calls `action_execute` inside the
transaction that also writes the step's log row and the run's new position (a crash repeats nothing)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template import Context

from accounts.models import Membership, Role
from automation.models import WebhookEndpoint, WorkflowRun
from core.errors import ApplicationError
from subscribers.models import EventType, MailingList, Subscriber, Tag
from subscribers.segments import segment_q


class ActionFailed(Exception):
    """The action cannot be done (a deleted sequence, a value the field refuses): the run fails."""


@dataclass
class ActionResult:
    """What the engine records and where the run goes next.

    `enter`: the key of a sub-list of this node to go into ("then", "else"). `wait`: the run waits
    until `due_at` (and for `wait_event_name` / `wait_key_value` when set). `finish`: the run ends
    completed with this outcome."""

    detail: str
    skipped: bool = False
    enter: str | None = None
    wait: dict[str, Any] | None = None
    due_at: datetime | None = None
    wait_event_name: str = ""
    wait_key_value: str = ""
    finish: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def duration_delta(duration: dict[str, Any]) -> timedelta:
    return timedelta(**{duration["unit"]: int(duration["value"])})


def duration_words(duration: dict[str, Any]) -> str:
    value, unit = int(duration["value"]), str(duration["unit"])
    return f"{value} {unit[:-1] if value == 1 else unit}"


def next_local_time(*, until_time: str, zone_names: tuple[str, ...], now: datetime) -> datetime:
    """The next instant after `now` at which the first known zone of `zone_names` shows `until_time`."""
    from sequences.windows import zone_or_utc

    zone = zone_or_utc(*zone_names)
    hour, minute = (int(part) for part in until_time.split(":"))
    local = now.astimezone(zone)
    day = local.date()
    for _ in range(3):
        candidate = datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
        # A wall time skipped by DST resolves to the transition; the round trip keeps it an instant.
        candidate = candidate.astimezone(dt.UTC).astimezone(zone)
        if candidate > local:
            return candidate.astimezone(dt.UTC)
        day += timedelta(days=1)
    return (local + timedelta(days=1)).astimezone(dt.UTC)  # pragma: no cover - three days always hold one


def merge_render(source: str, *, run: WorkflowRun, subscriber: Subscriber) -> str:
    """Render merge tags with the subscriber, the workspace and the trigger's context (`trigger`)."""
    from sequences.rendering import merge_context, plain_engine

    if "{" not in source:
        return source
    context = merge_context(workspace=run.workspace, subscriber=subscriber)
    context["trigger"] = dict(run.context or {})
    try:
        return str.__str__(plain_engine().from_string(source).render(Context(context, autoescape=False)))
    except Exception as exc:  # noqa: BLE001 - odd trigger data in a filter fails the action, not the engine
        raise ActionFailed(f"merge tags could not render: {exc}") from None


def condition_holds(*, run: WorkflowRun, rules: dict[str, Any], now: datetime) -> bool:
    return (
        Subscriber.objects.filter(pk=run.subscriber_id, workspace_id=run.workspace_id)
        .filter(segment_q(workspace=run.workspace, tree=rules, now=now))
        .exists()
    )


def notify_recipients(*, run: WorkflowRun, node: dict[str, Any]) -> list[str]:
    if node.get("to"):
        return list(node["to"])
    emails = Membership.objects.filter(
        workspace_id=run.workspace_id, role__in=[Role.OWNER, Role.ADMIN], user__is_active=True
    ).values_list("user__email", flat=True)
    return sorted({email for email in emails if email})


def _enroll(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from sequences.models import Sequence
    from sequences.services import EnrollOutcome, sequence_enroll

    sequence = Sequence.objects.filter(workspace_id=run.workspace_id, pk=node["sequence_id"]).first()
    if sequence is None:
        raise ActionFailed(f"sequence {node['sequence_id']} no longer exists")
    try:
        [result] = sequence_enroll(
            workspace=run.workspace, sequence=sequence, subscriber_ids=[subscriber.pk],
            source=f"workflow:{run.workflow_id}",
        )  # fmt: skip
    except ApplicationError as exc:  # a paused sequence: the run goes on, the log says why
        return ActionResult(detail=f"not enrolled in '{sequence.name}': {exc.message}", skipped=True)
    if result.status == EnrollOutcome.ENROLLED:
        return ActionResult(detail=f"enrolled in '{sequence.name}' (enrollment {result.enrollment_id})")
    return ActionResult(detail=f"not enrolled in '{sequence.name}': {result.status.replace('_', ' ')}", skipped=True)


def _exit_sequence(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from sequences.models import Enrollment, EnrollmentStatus
    from sequences.services import enrollment_exit

    enrollments = list(
        Enrollment.objects.filter(
            workspace_id=run.workspace_id, sequence_id=node["sequence_id"], subscriber=subscriber,
            status=EnrollmentStatus.ACTIVE,
        )
    )  # fmt: skip
    for enrollment in enrollments:
        enrollment_exit(workspace=run.workspace, enrollment=enrollment, reason=f"workflow '{run.workflow.name}'")
    if not enrollments:
        return ActionResult(detail=f"not enrolled in sequence {node['sequence_id']}: nothing to exit", skipped=True)
    return ActionResult(detail=f"exited sequence {node['sequence_id']}")


def _send_email(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber, now: datetime) -> ActionResult:
    from sequences.models import Template
    from sequences.single import single_email_queue

    template = Template.objects.filter(workspace_id=run.workspace_id, pk=node["template_id"]).first()
    if template is None:
        raise ActionFailed(f"template {node['template_id']} no longer exists")
    message = single_email_queue(workspace=run.workspace, subscriber=subscriber, template=template, now=now)
    return ActionResult(detail=f"queued '{template.name}' to {subscriber.email} (message {message.pk})")


def _tags(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from subscribers.services import subscriber_tag_remove, subscriber_tags_add

    name = node["tag"]
    if node["type"] == "add_tag":
        subscriber_tags_add(workspace=run.workspace, subscriber=subscriber, names=[name])
        return ActionResult(detail=f"tagged '{name}'")
    tag = Tag.objects.filter(workspace_id=run.workspace_id, name=name).first()
    if tag is None or not subscriber.tags.filter(pk=tag.pk).exists():
        return ActionResult(detail=f"not tagged '{name}': nothing to remove", skipped=True)
    subscriber_tag_remove(workspace=run.workspace, subscriber=subscriber, tag=tag)
    return ActionResult(detail=f"removed tag '{name}'")


def _lists(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from subscribers.services import list_membership_add, list_membership_remove

    mailing_list = MailingList.objects.filter(workspace_id=run.workspace_id, pk=node["list_id"]).first()
    if mailing_list is None:
        raise ActionFailed(f"list {node['list_id']} no longer exists")
    if node["type"] == "subscribe_list":
        membership, created = list_membership_add(
            workspace=run.workspace, subscriber=subscriber, mailing_list=mailing_list
        )
        if not created:
            return ActionResult(detail=f"already on '{mailing_list.name}' ({membership.status})", skipped=True)
        return ActionResult(detail=f"added to '{mailing_list.name}' ({membership.status})")
    if list_membership_remove(workspace=run.workspace, subscriber=subscriber, mailing_list=mailing_list):
        return ActionResult(detail=f"unsubscribed from '{mailing_list.name}'")
    return ActionResult(detail=f"not on '{mailing_list.name}': nothing to unsubscribe", skipped=True)


def _update_field(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from automation.services import PROFILE_FIELDS
    from subscribers.services import subscriber_update

    value = node["value"]
    if isinstance(value, str):
        value = merge_render(value, run=run, subscriber=subscriber)
    key = node["field"]
    changes: dict[str, Any] = {key: value or ""} if key in PROFILE_FIELDS else {"attributes": {key: value}}
    try:
        with transaction.atomic():
            subscriber_update(workspace=run.workspace, subscriber=subscriber, **changes)
    except ApplicationError as exc:
        raise ActionFailed(f"{key} refused {value!r}: {exc.message}") from None
    return ActionResult(detail=f"set {key} to {value!r}")


def _wait(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber, now: datetime) -> ActionResult:
    if "duration" in node:
        due = now + duration_delta(node["duration"])
        return ActionResult(detail=f"waiting {duration_words(node['duration'])}", wait=node, due_at=due)
    due = next_local_time(
        until_time=node["until_time"], zone_names=(subscriber.time_zone, run.workspace.time_zone), now=now
    )
    return ActionResult(detail=f"waiting until {node['until_time']} local time", wait=node, due_at=due)


def wait_key_value(run: WorkflowRun, node: dict[str, Any]) -> str | None:
    """The value the awaited event's `match_key` property must have: the triggering event's; None when
    the trigger carried no such property (only the timeout can end the wait then)."""
    key = node.get("match_key")
    if not key:
        return ""
    properties = (run.context or {}).get("properties") or {}
    value = properties.get(key) if isinstance(properties, dict) else None
    return None if value is None else str(value)[:200]


def _wait_for_event(run: WorkflowRun, node: dict[str, Any], now: datetime) -> ActionResult:
    due = now + duration_delta(node["timeout"])
    key_value = wait_key_value(run, node)
    detail = f"waiting up to {duration_words(node['timeout'])} for '{node['event']}'"
    if node.get("match_key"):
        if key_value is None:
            detail += f" (the trigger had no {node['match_key']}: only the timeout can end this wait)"
        else:
            detail += f" with {node['match_key']}={key_value}"
    return ActionResult(
        detail=detail, wait=node, due_at=due,
        # No key value to match: the wait is not findable by events at all.
        wait_event_name="" if key_value is None else node["event"].lower()[:100], wait_key_value=key_value or "",
    )  # fmt: skip


def _webhook(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from automation.outgoing import webhook_send

    endpoint = WebhookEndpoint.objects.filter(workspace_id=run.workspace_id, pk=node["endpoint_id"]).first()
    if endpoint is None:
        raise ActionFailed(f"webhook endpoint {node['endpoint_id']} no longer exists")
    if not endpoint.active:
        return ActionResult(detail=f"webhook endpoint {endpoint.pk} is disabled: not called", skipped=True)
    delivery = webhook_send(
        endpoint=endpoint,
        event_type="workflow.webhook",
        payload={
            "workflow": {"id": run.workflow_id, "name": run.workflow.name},
            "run": {"id": run.pk, "started_at": run.started_at.isoformat()},
            "subscriber": {"id": subscriber.pk, "email": subscriber.email},
            "trigger": dict(run.context or {}),
        },
    )
    return ActionResult(detail=f"webhook queued to {endpoint.url} (delivery {delivery.pk})")


def _notify(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber) -> ActionResult:
    from automation.tasks.engine import workflow_notify_send

    recipients = notify_recipients(run=run, node=node)
    if not recipients:
        return ActionResult(detail="nobody to notify (no owner or admin with an address)", skipped=True)
    subject = merge_render(node["subject"], run=run, subscriber=subscriber).replace("\n", " ")[:200]
    body = merge_render(node["body"], run=run, subscriber=subscriber)
    transaction.on_commit(
        lambda: workflow_notify_send.delay(subject=subject, body=body, recipients=recipients), robust=True
    )
    return ActionResult(detail=f"notified {', '.join(recipients)}: {subject}")


def _goal(run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber, now: datetime) -> ActionResult:
    from subscribers.services import event_record

    event_record(
        workspace=run.workspace, subscriber=subscriber, type=EventType.GOAL, occurred_at=now,
        properties={"workflow_id": run.workflow_id, "run_id": run.pk, "name": node["name"]},
    )  # fmt: skip
    return ActionResult(detail=f"goal reached: {node['name']}", finish=f"goal reached: {node['name']}")


def action_execute(*, run: WorkflowRun, node: dict[str, Any], subscriber: Subscriber, now: datetime) -> ActionResult:
    """Do one action for real. Raises ActionFailed (or any error) when it cannot be done."""
    kind = node.get("type")
    if kind == "enroll":
        return _enroll(run, node, subscriber)
    if kind == "exit_sequence":
        return _exit_sequence(run, node, subscriber)
    if kind == "send_email":
        return _send_email(run, node, subscriber, now)
    if kind in ("add_tag", "remove_tag"):
        return _tags(run, node, subscriber)
    if kind in ("subscribe_list", "unsubscribe_list"):
        return _lists(run, node, subscriber)
    if kind == "update_field":
        return _update_field(run, node, subscriber)
    if kind == "wait":
        return _wait(run, node, subscriber, now)
    if kind == "wait_for_event":
        return _wait_for_event(run, node, now)
    if kind == "branch":
        held = condition_holds(run=run, rules=node["rules"], now=now)
        return ActionResult(
            detail="condition held: then" if held else "condition did not hold: else", enter="then" if held else "else"
        )
    if kind == "webhook":
        return _webhook(run, node, subscriber)
    if kind == "notify":
        return _notify(run, node, subscriber)
    if kind == "goal":
        return _goal(run, node, subscriber, now)
    raise ActionFailed(f"unknown action type {kind!r}")


def notify_mail_send(*, subject: str, body: str, recipients: list[str]) -> int:
    from django.core.mail import send_mail

    return send_mail(subject, body, settings.FROM_EMAIL, recipients, fail_silently=False)
