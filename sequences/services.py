"""Writes for templates, sequences, steps and enrollments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Workspace
from config.queues import Queue
from core.errors import Conflict, NotFound, ValidationFailed
from sequences.models import (
    DelayUnit,
    Enrollment,
    EnrollmentStatus,
    ReEntry,
    Sequence,
    SequenceStatus,
    Step,
    Template,
)
from sequences.rendering import (
    CompiledTemplate,
    RenderedEmail,
    TemplateCompileError,
    TemplateRenderError,
    compile_template,
    merge_context,
)
from sequences.scheduler import enrollments_process_enqueue
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionKind,
)
from subscribers.selectors import subscriber_ids_awaiting_confirmation
from subscribers.services import event_record, events_record_many

ENROLL_MAX_ITEMS = 1000
UNIT_SECONDS = {
    DelayUnit.SECONDS: 1,
    DelayUnit.MINUTES: 60,
    DelayUnit.HOURS: 3600,
    DelayUnit.DAYS: 86400,
    DelayUnit.WEEKS: 604800,
}
MAX_DELAY = timedelta(days=3660)  # ten years: enough for any drip, small enough for any datetime

TEMPLATE_FIELDS = frozenset({"name", "subject", "preheader", "html", "text", "from_name", "from_email"})
SEQUENCE_FIELDS = frozenset({
    "name", "description", "send_days", "send_start_hour", "send_end_hour", "re_entry", "goal_event", "mailing_list_id",
})  # fmt: skip
STEP_FIELDS = frozenset({"template_id", "name", "delay_value", "delay_unit"})


def _check_fields(fields: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationFailed(f"Unknown {what} fields: {', '.join(sorted(unknown))}", code="unknown_fields")


def _require_text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.for_field(field, "This field may not be blank.", code="blank")
    return value.strip()


# Templates


def template_compile(*, subject: str, preheader: str = "", html: str, text: str = "") -> CompiledTemplate:
    """Compile a template's parts; a part that does not compile is a ValidationFailed naming its field
    and line, e.g. `html: line 3: Invalid block tag: 'endfo' ...`."""
    try:
        return compile_template(subject=subject, preheader=preheader, html=html, text=text)
    except TemplateCompileError as exc:
        raise ValidationFailed.for_field(exc.field, exc.describe(), code="template_syntax_error")


def _template_check(values: Mapping[str, Any]) -> None:
    _require_text("name", values["name"])
    _require_text("subject", values["subject"])
    _require_text("html", values["html"])
    if values.get("from_email"):
        try:
            validate_email(values["from_email"])
        except DjangoValidationError:
            raise ValidationFailed.for_field("from_email", "Enter a valid email address.")
    template_compile(subject=values["subject"], preheader=values["preheader"], html=values["html"], text=values["text"])


def template_create(
    *,
    workspace: Workspace,
    name: str,
    subject: str,
    html: str,
    preheader: str = "",
    text: str = "",
    from_name: str = "",
    from_email: str = "",
) -> Template:
    """A template whose every part compiles; anything else is refused before it is stored."""
    values = {
        "name": name, "subject": subject, "preheader": preheader, "html": html, "text": text,
        "from_name": from_name, "from_email": from_email,
    }  # fmt: skip
    _template_check(values)
    values["name"] = name.strip()
    return Template.objects.create(workspace=workspace, **values)


def _own(instance: Any, workspace: Workspace, what: str) -> None:
    if instance.workspace_id != workspace.pk:
        raise NotFound(f"{what} not found.")


def template_update(*, workspace: Workspace, template: Template, **fields: Any) -> Template:
    _own(template, workspace, "Template")
    _check_fields(fields, TEMPLATE_FIELDS, "template")
    values = {name: getattr(template, name) for name in TEMPLATE_FIELDS} | fields
    _template_check(values)
    for name, value in fields.items():
        setattr(template, name, value.strip() if name == "name" else value)
    template.save()
    return template


def template_delete(*, workspace: Workspace, template: Template) -> None:
    """A template used by a step is kept (409): the step would have nothing to send."""
    _own(template, workspace, "Template")
    used_by = sorted(set(Step.objects.filter(template=template).values_list("sequence__name", flat=True)))
    if used_by:
        raise Conflict(
            f"The template is used by the steps of {', '.join(used_by)}; change those steps first.",
            code="template_in_use",
            details={"sequences": used_by},
        )
    campaigns = sorted(set(template.campaigns.values_list("name", flat=True)))
    if campaigns:
        raise Conflict(
            f"The template is used by the campaigns {', '.join(campaigns)}; change or delete those first.",
            code="template_in_use",
            details={"campaigns": campaigns},
        )
    template.delete()


def template_preview(
    *,
    workspace: Workspace,
    template: Template,
    subscriber_id: int | None = None,
    sample: Mapping[str, Any] | None = None,
) -> RenderedEmail:
    """Render for one of the workspace's subscribers, or for sample data over the built-in sample."""
    _own(template, workspace, "Template")
    subscriber = None
    if subscriber_id is not None:
        subscriber = Subscriber.objects.filter(workspace=workspace, pk=subscriber_id).first()
        if subscriber is None:
            raise NotFound("Subscriber not found.", code="subscriber_not_found")
    compiled = template_compile(
        subject=template.subject, preheader=template.preheader, html=template.html, text=template.text
    )
    try:
        return compiled.render(merge_context(workspace=workspace, subscriber=subscriber, sample=sample))
    except TemplateRenderError as exc:
        raise ValidationFailed.for_field(exc.field, exc.message, code="template_render_error")


# Sequences


def _validate_sequence_fields(
    fields: dict[str, Any], *, current: Sequence | None = None, workspace: Workspace | None = None
) -> None:
    if "name" in fields:
        fields["name"] = _require_text("name", fields["name"])
    if "re_entry" in fields and fields["re_entry"] not in ReEntry.values:
        raise ValidationFailed.for_field("re_entry", f"Must be one of {', '.join(ReEntry.values)}.")
    if "send_days" in fields:
        days = fields["send_days"]
        if not isinstance(days, list) or not days:
            raise ValidationFailed.for_field("send_days", "Give at least one day (0 = Monday ... 6 = Sunday).")
        if any(isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6 for day in days):
            raise ValidationFailed.for_field("send_days", "Days are numbers from 0 (Monday) to 6 (Sunday).")
        if len(set(days)) != len(days):
            raise ValidationFailed.for_field("send_days", "Each day may appear once.")
        fields["send_days"] = sorted(days)
    start = fields.get("send_start_hour", current.send_start_hour if current else 0)
    end = fields.get("send_end_hour", current.send_end_hour if current else 24)
    for name, hour in (("send_start_hour", start), ("send_end_hour", end)):
        if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 24:
            raise ValidationFailed.for_field(name, "An hour from 0 to 24.")
    if not start < end:
        field = "send_end_hour" if "send_end_hour" in fields else "send_start_hour"
        raise ValidationFailed.for_field(field, "The send window must start before it ends (0 <= start < end <= 24).")
    if fields.get("mailing_list_id") is not None:
        _sequence_list_check(fields["mailing_list_id"], workspace=workspace)
    if fields.get("goal_event") in NOT_GOALS:
        # These are recorded by the sequence itself (or per chunk of sends): a goal on them never fires.
        names = ", ".join(sorted(NOT_GOALS))
        raise ValidationFailed.for_field("goal_event", f"Cannot be one of {names}: they never complete an enrollment.")


def _sequence_list_check(list_id: Any, *, workspace: Workspace | None) -> None:
    """The sequence's list must be a list of its workspace (missing and another workspace's answer alike)."""
    if isinstance(list_id, bool) or not isinstance(list_id, int):
        raise ValidationFailed.for_field("mailing_list_id", "A list id, or null for no list.")
    if workspace is None or not MailingList.objects.filter(workspace=workspace, pk=list_id).exists():
        raise ValidationFailed.for_field("mailing_list_id", f"List {list_id} not found in this workspace.")


def sequence_fields_validate(*, fields: dict[str, Any], current: Sequence | None = None) -> dict[str, Any]:
    """Check (and normalize) sequence fields: the send window and the re-entry rule; for forms."""
    fields = dict(fields)
    _validate_sequence_fields(fields, current=current)
    return fields


@dataclass(frozen=True)
class StepInput:
    """One step as a caller describes it. `id` keeps an existing step when a step list is replaced."""

    template_id: int
    name: str = ""
    delay_value: int = 0
    delay_unit: str = DelayUnit.DAYS
    id: int | None = None


def _delay(*, value: Any, unit: Any, field_prefix: str) -> timedelta:
    if unit not in UNIT_SECONDS:
        raise ValidationFailed.for_field(f"{field_prefix}delay_unit", f"Must be one of {', '.join(DelayUnit.values)}.")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed.for_field(f"{field_prefix}delay_value", "A whole number, 0 or more.")
    if value * UNIT_SECONDS[unit] > MAX_DELAY.total_seconds():
        raise ValidationFailed.for_field(f"{field_prefix}delay_value", "A delay may be at most 3660 days.")
    return timedelta(seconds=value * UNIT_SECONDS[unit])


def _templates_by_id(*, workspace: Workspace, ids: Iterable[int]) -> dict[int, Template]:
    return {t.pk: t for t in Template.objects.filter(workspace=workspace, pk__in=set(ids))}


def _template_of(templates: dict[int, Template], template_id: int, *, field: str) -> Template:
    template = templates.get(template_id)
    if template is None:  # missing and another workspace's answer alike
        raise ValidationFailed.for_field(field, f"Template {template_id} not found in this workspace.")
    return template


def _lock_sequence(*, workspace: Workspace, sequence: Sequence) -> Sequence:
    """The sequence row, locked until the transaction ends: state changes and enrollments serialize."""
    locked = Sequence.objects.select_for_update().filter(workspace=workspace, pk=sequence.pk).first()
    if locked is None:
        raise NotFound("Sequence not found.")
    return locked


def _ordered_steps(sequence: Sequence) -> list[Step]:
    return list(Step.objects.filter(sequence=sequence).select_related("template").order_by("position", "id"))


def _check_editable(sequence: Sequence) -> None:
    if sequence.status == SequenceStatus.ARCHIVED:
        raise Conflict("An archived sequence cannot be changed.", code="sequence_archived")


@transaction.atomic
def sequence_create(
    *, workspace: Workspace, name: str, steps: list[StepInput] | None = None, **fields: Any
) -> Sequence:
    """A draft sequence, with its steps in the given order."""
    _check_fields(fields, SEQUENCE_FIELDS - {"name"}, "sequence")
    fields["name"] = name
    _validate_sequence_fields(fields, workspace=workspace)
    sequence = Sequence.objects.create(workspace=workspace, **fields)
    if steps:
        _steps_replace(workspace=workspace, sequence=sequence, steps=steps)
    return sequence


@transaction.atomic
def sequence_update(
    *, workspace: Workspace, sequence: Sequence, steps: list[StepInput] | None = None, **fields: Any
) -> Sequence:
    """Change fields; a given `steps` list replaces the steps (see `_steps_replace`)."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    _check_editable(sequence)
    _check_fields(fields, SEQUENCE_FIELDS, "sequence")
    _validate_sequence_fields(fields, current=sequence, workspace=workspace)
    for name, value in fields.items():
        setattr(sequence, name, value)
    sequence.save()
    if steps is not None:
        _steps_replace(workspace=workspace, sequence=sequence, steps=steps)
    return sequence


@transaction.atomic
def sequence_delete(*, workspace: Workspace, sequence: Sequence) -> None:
    """Deletes the sequence, its steps and its enrollments; an active sequence must be paused first."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    if sequence.status == SequenceStatus.ACTIVE:
        raise Conflict("An active sequence cannot be deleted; pause or archive it first.", code="sequence_active")
    Enrollment.objects.filter(sequence=sequence).delete()
    sequence.delete()


def _transition(sequence: Sequence, *, to: str, allowed_from: Collection[str]) -> bool:
    """True when the status changes; False when it is already `to` (repeating an action is harmless)."""
    if sequence.status == to:
        return False
    if sequence.status not in allowed_from:
        raise Conflict(
            f"A {sequence.status} sequence cannot become {to}.",
            code="illegal_transition",
            details={"status": sequence.status, "to": to},
        )
    return True


@transaction.atomic
def sequence_activate(*, workspace: Workspace, sequence: Sequence) -> Sequence:
    """Start (or resume) a sequence. It needs at least one step, and every step's template must compile."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    if not _transition(sequence, to=SequenceStatus.ACTIVE, allowed_from={SequenceStatus.DRAFT, SequenceStatus.PAUSED}):
        return sequence
    steps = _ordered_steps(sequence)
    if not steps:
        raise Conflict("A sequence needs at least one step before it can be activated.", code="sequence_has_no_steps")
    for index, step in enumerate(steps):
        template = step.template
        if template.workspace_id != workspace.pk:
            raise Conflict(f"Step {index + 1} uses a template of another workspace.", code="step_template_invalid")
        try:
            compile_template(
                subject=template.subject, preheader=template.preheader, html=template.html, text=template.text
            )
        except TemplateCompileError as exc:
            raise Conflict(
                f"Step {index + 1} ({template.name}): {exc.field}: {exc.describe()}",
                code="step_template_invalid",
                details={"step": step.pk, "template": template.pk, exc.field: [exc.describe()]},
            )
    sequence.status = SequenceStatus.ACTIVE
    sequence.activated_at = timezone.now()
    sequence.save(update_fields=["status", "activated_at", "updated_at"])
    return sequence


@transaction.atomic
def sequence_pause(*, workspace: Workspace, sequence: Sequence) -> Sequence:
    """Stop sending; enrollments stay active and resume on activation (the scheduler skips paused ones)."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    if _transition(sequence, to=SequenceStatus.PAUSED, allowed_from={SequenceStatus.ACTIVE}):
        sequence.status = SequenceStatus.PAUSED
        sequence.save(update_fields=["status", "updated_at"])
    return sequence


@transaction.atomic
def sequence_archive(*, workspace: Workspace, sequence: Sequence) -> Sequence:
    """Retire a sequence for good: its active enrollments exit (reason `sequence archived`)."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    allowed = {SequenceStatus.DRAFT, SequenceStatus.ACTIVE, SequenceStatus.PAUSED}
    if _transition(sequence, to=SequenceStatus.ARCHIVED, allowed_from=allowed):
        sequence.status = SequenceStatus.ARCHIVED
        sequence.save(update_fields=["status", "updated_at"])
        _enrollments_exit_all(workspace=workspace, sequence=sequence, reason="sequence archived")
    return sequence


ARCHIVE_CHUNK = 1000


def _enrollments_exit_all(*, workspace: Workspace, sequence: Sequence, reason: str) -> int:
    """Exit every active enrollment of the sequence, set-based: per chunk, one locking read, one UPDATE
    and one insert of their `exited` events. Returns how many exited."""
    active = (
        Enrollment.objects.filter(sequence=sequence, status=EnrollmentStatus.ACTIVE)
        .select_related("subscriber")
        .only("id", "current_step_id", "subscriber__id", "subscriber__workspace_id")
        .select_for_update(of=("self",))
        .order_by("id")
    )
    exited = 0
    # Chunks rather than one cursor: every exited enrollment leaves the filtered set.
    while chunk := list(active[:ARCHIVE_CHUNK]):
        now = timezone.now()
        Enrollment.objects.filter(pk__in=[enrollment.pk for enrollment in chunk]).update(
            status=EnrollmentStatus.EXITED, exit_reason=reason[:255], finished_at=now, next_run_at=None
        )
        events_record_many(
            workspace=workspace,
            events=[
                Event(
                    workspace=workspace,
                    subscriber=enrollment.subscriber,
                    type=EventType.EXITED,
                    sequence_id=sequence.pk,
                    step_id=enrollment.current_step_id,
                    occurred_at=now,
                    properties={"enrollment_id": enrollment.pk, "reason": reason[:255]},
                )
                for enrollment in chunk
            ],
        )
        exited += len(chunk)
    return exited


# Steps


def _steps_replace(*, workspace: Workspace, sequence: Sequence, steps: list[StepInput]) -> list[Step]:
    """Make the sequence's steps exactly `steps`, in order: a given id keeps (and updates) that step,
    no id creates one, and steps left out are deleted (their active enrollments move on, see
    `_enrollments_move_off`)."""
    old = list(Step.objects.select_for_update().filter(sequence=sequence).order_by("position", "id"))
    old_by_id = {step.pk: step for step in old}
    templates = _templates_by_id(workspace=workspace, ids=[spec.template_id for spec in steps])
    seen: set[int] = set()
    for index, spec in enumerate(steps):
        prefix = f"steps[{index}]."
        _template_of(templates, spec.template_id, field=f"{prefix}template")
        _delay(value=spec.delay_value, unit=spec.delay_unit, field_prefix=prefix)
        if spec.id is not None:
            if spec.id not in old_by_id:
                raise ValidationFailed.for_field(f"{prefix}id", f"Step {spec.id} is not a step of this sequence.")
            if spec.id in seen:
                raise ValidationFailed.for_field(f"{prefix}id", f"Step {spec.id} is given twice.")
            seen.add(spec.id)
    if not steps and sequence.status == SequenceStatus.ACTIVE:
        raise Conflict("An active sequence keeps at least one step; pause it first.", code="sequence_needs_steps")

    new: list[Step] = []
    for position, spec in enumerate(steps, start=1):
        step = old_by_id[spec.id] if spec.id is not None else Step(sequence=sequence)
        step.template = templates[spec.template_id]
        step.name = spec.name.strip()
        step.delay_value = spec.delay_value
        step.delay_unit = spec.delay_unit
        step.position = position
        step.save()
        new.append(step)
    _steps_remove(old=old, new=new)
    return new


def _steps_remove(*, old: list[Step], new: list[Step]) -> None:
    """Delete the steps of `old` missing from `new`, after moving their active enrollments on."""
    kept = {step.pk for step in new}
    now = timezone.now()
    for index, removed in enumerate(old):
        if removed.pk in kept:
            continue
        # The enrollment got every kept step before the removed one; it continues with whatever follows
        # the last of those in the new order (or the first step, or it completes).
        previous = next((step for step in reversed(old[:index]) if step.pk in kept), None)
        at = 0 if previous is None else [step.pk for step in new].index(previous.pk) + 1
        _enrollments_move_off(removed=removed, to=new[at] if at < len(new) else None, now=now)
        removed.delete()


def _enrollments_move_off(*, removed: Step, to: Step | None, now: datetime) -> None:
    """Active enrollments waiting for `removed` now wait for `to`, as long after their previous email
    as `to`'s delay says; with no step left they complete."""
    waiting = Enrollment.objects.filter(current_step=removed, status=EnrollmentStatus.ACTIVE)
    if to is None:
        waiting.update(
            status=EnrollmentStatus.COMPLETED, current_step=None, next_run_at=None, finished_at=now,
            exit_reason="the remaining steps were removed",
        )  # fmt: skip
        return
    shift = to.delay - removed.delay
    waiting.filter(next_run_at__isnull=False).update(
        current_step=to,
        next_run_at=ExpressionWrapper(F("next_run_at") + Value(shift, DurationField()), output_field=DateTimeField()),
    )
    waiting.filter(next_run_at__isnull=True).update(current_step=to, next_run_at=now + to.delay)


def _renumber(sequence: Sequence, ordered: list[Step]) -> None:
    for position, step in enumerate(ordered, start=1):
        if step.position != position:
            step.position = position
            step.save(update_fields=["position", "updated_at"])


@transaction.atomic
def step_create(
    *,
    workspace: Workspace,
    sequence: Sequence,
    template_id: int,
    name: str = "",
    delay_value: int = 0,
    delay_unit: str = DelayUnit.DAYS,
    position: int | None = None,
) -> Step:
    """Add a step at `position` (1-based; the end when omitted)."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    _check_editable(sequence)
    template = _template_of(_templates_by_id(workspace=workspace, ids=[template_id]), template_id, field="template")
    _delay(value=delay_value, unit=delay_unit, field_prefix="")
    ordered = _ordered_steps(sequence)
    if position is not None and position < 1:
        raise ValidationFailed.for_field("position", "Positions start at 1.")
    at = len(ordered) if position is None else min(position - 1, len(ordered))
    step = Step.objects.create(
        sequence=sequence, template=template, name=name.strip(), delay_value=delay_value, delay_unit=delay_unit,
        position=at + 1,
    )  # fmt: skip
    ordered.insert(at, step)
    _renumber(sequence, ordered)
    return step


def _step_sequence(*, workspace: Workspace, step: Step) -> Sequence:
    if step.sequence.workspace_id != workspace.pk:
        raise NotFound("Step not found.")
    sequence = _lock_sequence(workspace=workspace, sequence=step.sequence)
    _check_editable(sequence)
    return sequence


@transaction.atomic
def step_update(*, workspace: Workspace, step: Step, **fields: Any) -> Step:
    """Change a step. A new delay applies to enrollments that reach the step afterwards."""
    _step_sequence(workspace=workspace, step=step)
    _check_fields(fields, STEP_FIELDS, "step")
    if "template_id" in fields:
        templates = _templates_by_id(workspace=workspace, ids=[fields["template_id"]])
        step.template = _template_of(templates, fields.pop("template_id"), field="template")
    _delay(
        value=fields.get("delay_value", step.delay_value), unit=fields.get("delay_unit", step.delay_unit),
        field_prefix="",
    )  # fmt: skip
    for name, value in fields.items():
        setattr(step, name, value.strip() if name == "name" else value)
    step.save()
    return step


@transaction.atomic
def step_delete(*, workspace: Workspace, step: Step) -> None:
    """Delete a step; its active enrollments move on to the next step (or complete). The last step of
    an active sequence stays (409)."""
    sequence = _step_sequence(workspace=workspace, step=step)
    old = list(Step.objects.select_for_update().filter(sequence=sequence).order_by("position", "id"))
    new = [other for other in old if other.pk != step.pk]
    if not new and sequence.status == SequenceStatus.ACTIVE:
        raise Conflict("An active sequence keeps at least one step; pause it first.", code="sequence_needs_steps")
    _steps_remove(old=old, new=new)
    _renumber(sequence, new)


@transaction.atomic
def step_reorder(*, workspace: Workspace, sequence: Sequence, step_ids: list[int]) -> list[Step]:
    """Put the steps in the order of `step_ids`, which lists every step of the sequence once."""
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    _check_editable(sequence)
    steps = {step.pk: step for step in Step.objects.select_for_update().filter(sequence=sequence)}
    if len(set(step_ids)) != len(step_ids):
        raise ValidationFailed.for_field("step_ids", "Each step may appear once.")
    if set(step_ids) != set(steps):
        raise ValidationFailed.for_field(
            "step_ids", f"List every step of this sequence exactly once: {sorted(steps)}.", code="incomplete_order"
        )
    ordered = [steps[pk] for pk in step_ids]
    _renumber(sequence, ordered)
    return ordered


# Enrollments


class EnrollOutcome:
    ENROLLED = "enrolled"
    ALREADY_ENROLLED = "already_enrolled"
    NOT_FOUND = "not_found"
    UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED.value
    BOUNCED = SubscriberStatus.BOUNCED.value
    COMPLAINED = SubscriberStatus.COMPLAINED.value
    SUPPRESSED = "suppressed"
    RE_ENTRY_BLOCKED = "re_entry_blocked"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    NOT_ON_LIST = "not_on_list"

    choices = (
        ENROLLED, ALREADY_ENROLLED, NOT_FOUND, UNSUBSCRIBED, BOUNCED, COMPLAINED, SUPPRESSED, RE_ENTRY_BLOCKED,
        AWAITING_CONFIRMATION, NOT_ON_LIST,
    )  # fmt: skip


@dataclass(frozen=True)
class EnrollResult:
    input: int | str
    status: str
    subscriber_id: int | None = None
    enrollment_id: int | None = None


def _suppressed(*, workspace: Workspace, emails: Iterable[str]) -> set[str]:
    """Which of these (lower-cased) addresses are suppressed, by address or by domain."""
    emails = set(emails)
    domains = {email.rsplit("@", 1)[-1] for email in emails}
    rows = list(
        Suppression.objects.filter(workspace=workspace)
        .filter(Q(kind=SuppressionKind.EMAIL, value__in=emails) | Q(kind=SuppressionKind.DOMAIN, value__in=domains))
        .values_list("kind", "value")
    )
    by_address = {value for kind, value in rows if kind == SuppressionKind.EMAIL}
    by_domain = {value for kind, value in rows if kind == SuppressionKind.DOMAIN}
    return {email for email in emails if email in by_address or email.rsplit("@", 1)[-1] in by_domain}


def _not_on_list(*, sequence: Sequence, subscriber_ids: Collection[int]) -> set[int]:
    """Which of these subscribers the sequence's list does not admit (not a `subscribed` member: never
    added, pending confirmation, or unsubscribed from it); none when the sequence has no list."""
    if sequence.mailing_list_id is None:
        return set()
    ids = set(subscriber_ids)
    members = ListMembership.objects.filter(
        mailing_list_id=sequence.mailing_list_id, subscriber_id__in=ids, status=MembershipStatus.SUBSCRIBED
    )
    return ids - set(members.values_list("subscriber_id", flat=True))


def _re_entry_allowed(rule: str, latest_status: str | None) -> bool:
    if latest_status is None:
        return True
    if rule == ReEntry.NEVER:
        return False
    if rule == ReEntry.AFTER_COMPLETION:
        return latest_status in (EnrollmentStatus.COMPLETED, EnrollmentStatus.EXITED)
    return True  # always: any number of enrollments, one active at a time


@transaction.atomic
def sequence_enroll(
    *,
    workspace: Workspace,
    sequence: Sequence,
    subscriber_ids: list[int] | None = None,
    emails: list[str] | None = None,
    source: str = "api",
) -> list[EnrollResult]:
    """Enroll subscribers (by id or email) into an active sequence; one result per item, in order.

    An item is refused when the subscriber is unknown, not active (unsubscribed, bounced, complained),
    suppressed, still awaiting their double opt-in confirmation (`awaiting_confirmation`: see
    `subscriber_ids_awaiting_confirmation`), not a `subscribed` member of the sequence's list when it has
    one (`not_on_list`), already actively enrolled, or blocked by the sequence's re-entry rule. Two
    concurrent requests cannot enroll one subscriber twice: the partial unique constraint decides.
    """
    subscriber_ids, emails = list(subscriber_ids or []), list(emails or [])
    if len(subscriber_ids) + len(emails) > ENROLL_MAX_ITEMS:
        raise ValidationFailed(f"At most {ENROLL_MAX_ITEMS} subscribers per request.", code="too_many_items")
    sequence = _lock_sequence(workspace=workspace, sequence=sequence)
    if sequence.status != SequenceStatus.ACTIVE:
        raise Conflict(
            f"The sequence is {sequence.status}; only an active sequence accepts enrollments.",
            code="sequence_not_active",
        )
    first_step = Step.objects.filter(sequence=sequence).order_by("position", "id").first()
    if first_step is None:
        raise Conflict("The sequence has no steps.", code="sequence_has_no_steps")

    subscribers = Subscriber.objects.filter(workspace=workspace)
    by_id = {s.pk: s for s in subscribers.filter(pk__in=set(subscriber_ids))}
    wanted = {email.strip().lower() for email in emails}
    by_email = {s.email.lower(): s for s in subscribers.annotate(email_ci=Lower("email")).filter(email_ci__in=wanted)}
    items: list[tuple[int | str, Subscriber | None]] = [(pk, by_id.get(pk)) for pk in subscriber_ids]
    items += [(email, by_email.get(email.strip().lower())) for email in emails]

    found = {s.pk: s for _, s in items if s is not None}
    suppressed = _suppressed(workspace=workspace, emails={s.email.lower() for s in found.values()})
    awaiting = subscriber_ids_awaiting_confirmation(subscriber_ids=found.keys())
    off_list = _not_on_list(sequence=sequence, subscriber_ids=found.keys())
    latest: dict[int, str] = {}
    history = Enrollment.objects.filter(sequence=sequence, subscriber_id__in=found).order_by("subscriber_id", "-id")
    for subscriber_id, status in history.values_list("subscriber_id", "status"):
        latest.setdefault(subscriber_id, status)

    now = timezone.now()
    results = []
    for item, subscriber in items:
        if subscriber is None:
            results.append(EnrollResult(input=item, status=EnrollOutcome.NOT_FOUND))
            continue
        if subscriber.pk in awaiting and subscriber.status == SubscriberStatus.ACTIVE:
            results.append(
                EnrollResult(input=item, status=EnrollOutcome.AWAITING_CONFIRMATION, subscriber_id=subscriber.pk)
            )
            continue
        outcome, enrollment = _enroll_one(
            workspace=workspace, sequence=sequence, subscriber=subscriber, first_step=first_step, now=now,
            source=source, suppressed=subscriber.email.lower() in suppressed, on_list=subscriber.pk not in off_list,
            latest=latest.get(subscriber.pk),
        )  # fmt: skip
        if outcome == EnrollOutcome.ENROLLED:
            latest[subscriber.pk] = EnrollmentStatus.ACTIVE
        results.append(
            EnrollResult(
                input=item, status=outcome, subscriber_id=subscriber.pk,
                enrollment_id=enrollment.pk if enrollment else None,
            )
        )  # fmt: skip
    # A first step without delay is due now: process it once this commits, not on the next tick.
    due_now = [r.enrollment_id for r in results if r.enrollment_id is not None] if not first_step.delay else []
    if due_now:
        transaction.on_commit(lambda: enrollments_process_enqueue(enrollment_ids=due_now), robust=True)
    return results


def _enroll_one(
    *,
    workspace: Workspace,
    sequence: Sequence,
    subscriber: Subscriber,
    first_step: Step,
    now: datetime,
    source: str,
    suppressed: bool,
    on_list: bool = True,
    latest: str | None,
) -> tuple[str, Enrollment | None]:
    if subscriber.status != SubscriberStatus.ACTIVE:
        return subscriber.status, None
    if suppressed:
        return EnrollOutcome.SUPPRESSED, None
    if not on_list:
        return EnrollOutcome.NOT_ON_LIST, None
    if latest == EnrollmentStatus.ACTIVE:
        return EnrollOutcome.ALREADY_ENROLLED, None
    if not _re_entry_allowed(sequence.re_entry, latest):
        return EnrollOutcome.RE_ENTRY_BLOCKED, None
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(
                workspace=workspace, sequence=sequence, subscriber=subscriber, status=EnrollmentStatus.ACTIVE,
                current_step=first_step, next_run_at=now + first_step.delay, enrolled_at=now, source=source[:100],
            )  # fmt: skip
    except IntegrityError:  # a concurrent request enrolled them first
        return EnrollOutcome.ALREADY_ENROLLED, None
    event_record(
        workspace=workspace, subscriber=subscriber, type=EventType.ENROLLED, sequence_id=sequence.pk,
        step_id=first_step.pk, occurred_at=now, properties={"enrollment_id": enrollment.pk, "source": source},
    )  # fmt: skip
    return EnrollOutcome.ENROLLED, enrollment


def _enrollment_finish(enrollment: Enrollment, *, status: str, reason: str) -> Enrollment:
    enrollment.status = status
    enrollment.exit_reason = reason[:255]
    enrollment.finished_at = timezone.now()
    enrollment.next_run_at = None
    enrollment.save(update_fields=["status", "exit_reason", "finished_at", "next_run_at"])
    if status == EnrollmentStatus.EXITED:
        event_record(
            workspace=enrollment.workspace, subscriber=enrollment.subscriber, type=EventType.EXITED,
            sequence_id=enrollment.sequence_id, step_id=enrollment.current_step_id, occurred_at=enrollment.finished_at,
            properties={"enrollment_id": enrollment.pk, "reason": enrollment.exit_reason},
        )  # fmt: skip
    return enrollment


@transaction.atomic
def enrollment_exit(*, workspace: Workspace, enrollment: Enrollment, reason: str = "") -> Enrollment:
    """Take a subscriber out of a sequence now; only an active enrollment can exit (else 409)."""
    locked = Enrollment.objects.select_for_update().filter(workspace=workspace, pk=enrollment.pk).first()
    if locked is None:
        raise NotFound("Enrollment not found.")
    if locked.status != EnrollmentStatus.ACTIVE:
        raise Conflict(f"The enrollment is already {locked.status}.", code="enrollment_not_active")
    return _enrollment_finish(locked, status=EnrollmentStatus.EXITED, reason=reason.strip() or "exited")


# Events that lead nowhere as goals: the sequence's own bookkeeping.
# Never a sequence's goal: skipped without a query (the sender records a `sent` event for every email).
NOT_GOALS = frozenset({EventType.ENROLLED, EventType.EXITED, EventType.GOAL, EventType.SENT})


def enrollments_goal_check(events: Collection[Event]) -> None:
    """An event handler (registered in SequencesConfig.ready): when a subscriber's event is the goal
    of sequences they are actively enrolled in, those enrollments complete (`goal reached`) and a
    `goal` event is recorded. One query for the whole batch finds the candidates."""
    candidates = [e for e in events if e.subscriber_id is not None and e.type not in NOT_GOALS and e.name]
    if not candidates:
        return
    by_subscriber_and_name: dict[tuple[int | None, str], list[Event]] = {}
    for event in candidates:
        by_subscriber_and_name.setdefault((event.subscriber_id, event.name), []).append(event)
    reached = Enrollment.objects.filter(
        workspace_id__in={e.workspace_id for e in candidates},
        subscriber_id__in={e.subscriber_id for e in candidates},
        sequence__goal_event__in={e.name for e in candidates},
        status=EnrollmentStatus.ACTIVE,
    ).values_list("id", "subscriber_id", "sequence__goal_event", "enrolled_at")
    for enrollment_id, subscriber_id, goal_event, enrolled_at in list(reached):
        matching = [
            e for e in by_subscriber_and_name.get((subscriber_id, goal_event), []) if e.occurred_at >= enrolled_at
        ]
        if matching:
            _enrollment_goal_reach(enrollment_id=enrollment_id, event=min(matching, key=lambda e: e.occurred_at))


@transaction.atomic
def _enrollment_goal_reach(*, enrollment_id: int, event: Event) -> None:
    enrollment = (
        Enrollment.objects.select_for_update(of=("self",))
        .select_related("workspace", "subscriber")
        .filter(pk=enrollment_id, status=EnrollmentStatus.ACTIVE)
        .first()
    )
    if enrollment is None:  # exited or completed meanwhile
        return
    _enrollment_finish(enrollment, status=EnrollmentStatus.COMPLETED, reason=f"goal reached: {event.name}")
    event_record(
        workspace=enrollment.workspace, subscriber=enrollment.subscriber, type=EventType.GOAL, name=event.name,
        sequence_id=enrollment.sequence_id, step_id=enrollment.current_step_id, occurred_at=event.occurred_at,
        properties={"enrollment_id": enrollment.pk, "event_id": event.pk},
        dedupe_key=f"goal:{enrollment.pk}",
    )  # fmt: skip


# Backfill: enroll a list's members into a running sequence

BACKFILL_CHUNK = 1000
BACKFILL_SOURCE = "backfill"
BACKFILLABLE = (SequenceStatus.ACTIVE, SequenceStatus.PAUSED)


@dataclass
class BackfillResult:
    list_id: int
    dry_run: bool
    queued: bool = False
    members: int = 0
    enrolled: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    starting_steps: Counter[int] = field(default_factory=Counter)


def _backfill_check(sequence: Sequence) -> list[Step]:
    if sequence.status not in BACKFILLABLE:
        raise Conflict(
            f"The sequence is {sequence.status}; only an active or paused sequence can be backfilled.",
            code="sequence_not_active",
        )
    steps = _ordered_steps(sequence)
    if not steps:
        raise Conflict("The sequence has no steps.", code="sequence_has_no_steps")
    return steps


def _backfill_list(*, workspace: Workspace, list_id: int) -> MailingList:
    mailing_list = MailingList.objects.filter(workspace=workspace, pk=list_id).first()
    if mailing_list is None:  # missing and another workspace's answer alike
        raise ValidationFailed.for_field("list_id", f"List {list_id} not found in this workspace.")
    return mailing_list


def sequence_backfill(
    *,
    workspace: Workspace,
    sequence: Sequence,
    list_id: int | None = None,
    start_by_join_age: bool = False,
    dry_run: bool = False,
) -> BackfillResult:
    """Enroll a list's `subscribed` members into an active or paused sequence (a draft: 409). Without
    `list_id`, the sequence's own list (a sequence without one: 400 naming `list_id`).

    Up to `SEQUENCE_BACKFILL_SYNC_LIMIT` members (and every dry run) are handled now, in chunks; a larger
    list goes to a worker on the default queue after this transaction commits (`queued`). Members are
    enrolled by the same rules as `sequence_enroll`: see `sequence_backfill_run`.
    """
    _own(sequence, workspace, "Sequence")
    _backfill_check(sequence)
    if list_id is None:
        if sequence.mailing_list_id is None:
            raise ValidationFailed.for_field("list_id", "The sequence has no list of its own: give a list.")
        list_id = sequence.mailing_list_id
    mailing_list = _backfill_list(workspace=workspace, list_id=list_id)
    members = ListMembership.objects.filter(mailing_list=mailing_list, status=MembershipStatus.SUBSCRIBED).count()
    if not dry_run and members > settings.SEQUENCE_BACKFILL_SYNC_LIMIT:
        from sequences.tasks import sequence_backfill_task  # tasks import this module

        kwargs = {
            "workspace_id": workspace.pk, "sequence_id": sequence.pk, "list_id": mailing_list.pk,
            "start_by_join_age": start_by_join_age,
        }  # fmt: skip
        transaction.on_commit(
            lambda: sequence_backfill_task.apply_async(kwargs=kwargs, queue=Queue.DEFAULT.value), robust=True
        )
        return BackfillResult(list_id=mailing_list.pk, dry_run=False, queued=True, members=members)
    return sequence_backfill_run(
        workspace=workspace, sequence_id=sequence.pk, list_id=mailing_list.pk, start_by_join_age=start_by_join_age,
        dry_run=dry_run,
    )  # fmt: skip


def sequence_backfill_run(
    *,
    workspace: Workspace,
    sequence_id: int,
    list_id: int,
    start_by_join_age: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> BackfillResult:
    """Enroll the list's `subscribed` members, `BACKFILL_CHUNK` at a time, one transaction per chunk.

    A member is skipped, by the same checks in the same order as `sequence_enroll`, when the subscriber
    is not active, suppressed, not a `subscribed` member of the sequence's own list (when it has one and
    another list is backfilled: `not_on_list`), already actively enrolled, or blocked by the re-entry rule. Enrolled
    members start at the first step after its delay; with `start_by_join_age`, at the last step whose
    cumulative delay (the delays of the steps up to it) is at most the time since they joined the list,
    due now (none is: the first step, due when it would have been had they been enrolled on joining).
    Idempotent: run twice, the second run finds everyone enrolled. A dry run counts and writes nothing.
    """
    now = now or timezone.now()
    mailing_list = _backfill_list(workspace=workspace, list_id=list_id)
    result = BackfillResult(list_id=mailing_list.pk, dry_run=dry_run)
    members = ListMembership.objects.filter(mailing_list=mailing_list, status=MembershipStatus.SUBSCRIBED)
    last = 0
    while True:
        # The (list, subscriber) unique index serves this: the next chunk of members by subscriber id.
        chunk = list(members.filter(subscriber_id__gt=last).order_by("subscriber_id")[:BACKFILL_CHUNK])
        if not chunk:
            return result
        last = chunk[-1].subscriber_id
        with transaction.atomic():
            sequence = Sequence.objects.filter(workspace=workspace, pk=sequence_id).first()
            if sequence is None:
                raise NotFound("Sequence not found.")
            if not dry_run:  # serialize with enrollments and state changes, as sequence_enroll does
                sequence = _lock_sequence(workspace=workspace, sequence=sequence)
            steps = _backfill_check(sequence)
            _backfill_chunk(
                workspace=workspace, sequence=sequence, steps=steps, memberships=chunk, now=now, result=result,
                start_by_join_age=start_by_join_age, dry_run=dry_run,
            )  # fmt: skip


def _backfill_start(
    steps: list[Step], *, joined_at: datetime, now: datetime, by_join_age: bool
) -> tuple[Step, datetime]:
    """The step a member starts at and when it is due (see `sequence_backfill_run`)."""
    if not by_join_age:
        return steps[0], now + steps[0].delay
    age = now - joined_at
    start, cumulative = None, timedelta(0)
    for step in steps:
        cumulative += step.delay
        if cumulative > age:
            break
        start = step
    if start is None:
        return steps[0], joined_at + steps[0].delay
    return start, now


def _backfill_chunk(
    *,
    workspace: Workspace,
    sequence: Sequence,
    steps: list[Step],
    memberships: list[ListMembership],
    now: datetime,
    result: BackfillResult,
    start_by_join_age: bool,
    dry_run: bool,
) -> None:
    joined = {m.subscriber_id: m.subscribed_at for m in memberships}
    subscribers = list(
        Subscriber.objects.filter(workspace=workspace, pk__in=joined).only("id", "workspace_id", "email", "status")
    )
    suppressed = _suppressed(workspace=workspace, emails={s.email.lower() for s in subscribers})
    off_list = _not_on_list(sequence=sequence, subscriber_ids=joined)
    latest: dict[int, str] = {}
    history = Enrollment.objects.filter(sequence=sequence, subscriber_id__in=joined).order_by("subscriber_id", "-id")
    for subscriber_id, status in history.values_list("subscriber_id", "status"):
        latest.setdefault(subscriber_id, status)

    new: list[Enrollment] = []
    for subscriber in subscribers:
        result.members += 1
        previous = latest.get(subscriber.pk)
        if subscriber.status != SubscriberStatus.ACTIVE:  # the checks of _enroll_one, in its order
            result.skipped[subscriber.status] += 1
        elif subscriber.email.lower() in suppressed:
            result.skipped[EnrollOutcome.SUPPRESSED] += 1
        elif subscriber.pk in off_list:
            result.skipped[EnrollOutcome.NOT_ON_LIST] += 1
        elif previous == EnrollmentStatus.ACTIVE:
            result.skipped[EnrollOutcome.ALREADY_ENROLLED] += 1
        elif not _re_entry_allowed(sequence.re_entry, previous):
            result.skipped[EnrollOutcome.RE_ENTRY_BLOCKED] += 1
        else:
            step, due = _backfill_start(steps, joined_at=joined[subscriber.pk], now=now, by_join_age=start_by_join_age)
            new.append(
                Enrollment(
                    workspace=workspace, sequence=sequence, subscriber=subscriber, status=EnrollmentStatus.ACTIVE,
                    current_step=step, next_run_at=due, enrolled_at=now, source=BACKFILL_SOURCE,
                )
            )  # fmt: skip
    if dry_run:
        result.enrolled += len(new)
        result.starting_steps.update(e.current_step_id for e in new if e.current_step_id is not None)
        return
    created = _enrollments_create(new)
    if len(created) < len(new):  # enrolled meanwhile by a concurrent request
        result.skipped[EnrollOutcome.ALREADY_ENROLLED] += len(new) - len(created)
    result.enrolled += len(created)
    result.starting_steps.update(e.current_step_id for e in created if e.current_step_id is not None)
    if created:
        events_record_many(
            workspace=workspace,
            events=[
                Event(
                    workspace=workspace, subscriber=e.subscriber, type=EventType.ENROLLED, sequence_id=sequence.pk,
                    step_id=e.current_step_id, occurred_at=now,
                    properties={"enrollment_id": e.pk, "source": BACKFILL_SOURCE, "list_id": result.list_id},
                )
                for e in created
            ],
        )  # fmt: skip
    due_now = [e.pk for e in created if e.next_run_at is not None and e.next_run_at <= now]
    if due_now and sequence.status == SequenceStatus.ACTIVE:
        transaction.on_commit(lambda: enrollments_process_enqueue(enrollment_ids=due_now), robust=True)


def _enrollments_create(new: list[Enrollment]) -> list[Enrollment]:
    """Insert in one statement; when a concurrent enrollment of one of them wins the unique constraint,
    one by one, keeping those that went in."""
    if not new:
        return []
    try:
        with transaction.atomic():
            return Enrollment.objects.bulk_create(new)
    except IntegrityError:
        created = []
        for enrollment in new:
            try:
                with transaction.atomic():
                    enrollment.pk = None
                    enrollment.save(force_insert=True)
                    created.append(enrollment)
            except IntegrityError:
                continue
        return created
