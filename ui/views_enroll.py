"""Enrolling subscribers into a sequence from the UI: a list's members (the backfill) or pasted addresses.

Thin over `sequence_backfill` and `sequence_enroll`: the services decide who may be enrolled (status,
suppression, opt-in, the sequence's list, re-entry) and the page reports their answer per reason.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Workspace
from core.errors import ApplicationError, ValidationFailed
from sequences import selectors as sequence_selectors
from sequences import services as sequence_services
from sequences.models import Sequence
from sequences.services import ENROLL_MAX_ITEMS
from subscribers.models import MailingList
from ui.access import request_workspace, workspace_view
from ui.forms import form_errors_add

RECENT_ENROLLMENTS = 20
ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")


class EnrollListForm(forms.Form):
    prefix = "list"  # two forms on one page: their field ids must not collide

    mailing_list = forms.ModelChoiceField(
        queryset=MailingList.objects.none(), required=False, label="List",
        empty_label="The sequence's own list",
    )  # fmt: skip
    start_by_join_age = forms.BooleanField(
        required=False, label="Start each member by how long ago they joined the list",
        help_text="Someone who joined 3 days ago starts at the step a 3-day-old member would be at, due now.",
    )  # fmt: skip

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mailing_list"].queryset = MailingList.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]


class EnrollAddressesForm(forms.Form):
    prefix = "emails"

    emails = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), label="Email addresses",
        help_text=f"Existing subscribers, separated by new lines, commas or spaces; up to {ENROLL_MAX_ITEMS}.",
    )  # fmt: skip

    def clean_emails(self) -> list[str]:
        addresses = list(dict.fromkeys(a for a in ADDRESS_SEPARATORS.split(self.cleaned_data["emails"]) if a))
        if not addresses:
            raise forms.ValidationError("Give at least one email address.")
        if len(addresses) > ENROLL_MAX_ITEMS:
            raise forms.ValidationError(f"At most {ENROLL_MAX_ITEMS} addresses at a time ({len(addresses)} given).")
        return addresses


def _reason(status: str) -> str:
    return status.replace("_", " ")


def _page(request: HttpRequest, sequence: Sequence, *, status: int = 200, **extra: Any) -> HttpResponse:
    workspace = request_workspace(request)
    context: dict[str, Any] = {
        "sequence": sequence,
        "list_form": EnrollListForm(workspace=workspace),
        "emails_form": EnrollAddressesForm(),
        "recent": sequence_selectors.enrollment_list(workspace=workspace, sequence=sequence)
        .select_related("current_step")
        .order_by("-enrolled_at", "-id")[:RECENT_ENROLLMENTS],
        "nav": "sequences",
    }
    context.update(extra)
    return render(request, "ui/builder/enroll.html", context, status=status)


def _backfill(request: HttpRequest, sequence: Sequence) -> HttpResponse:
    workspace = request_workspace(request)
    form = EnrollListForm(request.POST, workspace=workspace)
    if not form.is_valid():
        return _page(request, sequence, list_form=form, status=400)
    chosen = form.cleaned_data["mailing_list"]
    dry_run = "count" in request.POST
    try:
        result = sequence_services.sequence_backfill(
            workspace=workspace, sequence=sequence, list_id=chosen.pk if chosen else None,
            start_by_join_age=form.cleaned_data["start_by_join_age"], dry_run=dry_run,
        )  # fmt: skip
    except ValidationFailed as error:
        form_errors_add(form, error, aliases={"list_id": "mailing_list"})
        return _page(request, sequence, list_form=form, status=400)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("ui:sequence-enroll", sequence.pk)
    skipped = sorted((_reason(reason), count) for reason, count in result.skipped.items() if count)
    if dry_run:
        return _page(request, sequence, list_form=form, backfill=result, backfill_skipped=skipped)
    if result.queued:
        messages.success(request, f"{result.members} members are being enrolled by a worker; refresh to see them.")
    else:
        messages.success(request, f"Enrolled {result.enrolled} of {result.members} members.")
    return _page(request, sequence, backfill=result, backfill_skipped=skipped)


def _addresses(request: HttpRequest, sequence: Sequence) -> HttpResponse:
    workspace = request_workspace(request)
    form = EnrollAddressesForm(request.POST)
    if not form.is_valid():
        return _page(request, sequence, emails_form=form, status=400)
    try:
        results = sequence_services.sequence_enroll(
            workspace=workspace, sequence=sequence, emails=form.cleaned_data["emails"], source="ui"
        )
    except ValidationFailed as error:
        form_errors_add(form, error)
        return _page(request, sequence, emails_form=form, status=400)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("ui:sequence-enroll", sequence.pk)
    counts = Counter(result.status for result in results)
    rows = [(result.input, _reason(result.status)) for result in results]
    messages.success(request, f"Enrolled {counts.get('enrolled', 0)} of {len(results)}.")
    # The form keeps its text so the marketer can fix the refused addresses and send them again.
    return _page(request, sequence, emails_form=form, results=rows)


@workspace_view()
def sequence_enroll_page(request: HttpRequest, sequence_id: int) -> HttpResponse:
    sequence = sequence_selectors.sequence_get(workspace=request_workspace(request), sequence_id=sequence_id)
    if request.method != "POST":
        return _page(request, sequence)
    if "emails-emails" in request.POST:
        return _addresses(request, sequence)
    return _backfill(request, sequence)
