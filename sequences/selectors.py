"""Reads for templates, sequences, steps and enrollments."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import Workspace
from core.errors import NotFound
from sequences.models import Enrollment, Sequence, Step


def sequence_queryset() -> QuerySet[Sequence]:
    """Sequences with their steps in order, ready to serialize (scope it with a workspace filter)."""
    return Sequence.objects.prefetch_related(
        Prefetch("steps", queryset=Step.objects.select_related("template").order_by("position", "id"))
    )


def sequence_get(*, workspace: Workspace, sequence_id: int) -> Sequence:
    sequence = sequence_queryset().filter(workspace=workspace, pk=sequence_id).first()
    if sequence is None:
        raise NotFound("Sequence not found.")
    return sequence


def step_list(*, workspace: Workspace, sequence: Sequence) -> list[Step]:
    """The steps of one of the workspace's sequences, in the order they run."""
    if sequence.workspace_id != workspace.pk:
        raise NotFound("Sequence not found.")
    return list(Step.objects.filter(sequence=sequence).select_related("template").order_by("position", "id"))


def enrollment_list(
    *,
    workspace: Workspace,
    sequence: Sequence | None = None,
    status: str | None = None,
    subscriber_id: int | None = None,
) -> QuerySet[Enrollment]:
    enrollments = Enrollment.objects.filter(workspace=workspace).select_related("subscriber")
    if sequence is not None:
        enrollments = enrollments.filter(sequence=sequence)
    if status:
        enrollments = enrollments.filter(status=status)
    if subscriber_id is not None:
        enrollments = enrollments.filter(subscriber_id=subscriber_id)
    return enrollments.order_by("-id")
