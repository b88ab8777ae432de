"""The sequence builder (fields and steps) and the dry run page: thin views over sequences.services/dryrun."""

from __future__ import annotations

from collections.abc import Sequence as Rows
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Workspace
from core.errors import ApplicationError
from sequences import selectors as sequence_selectors
from sequences import services as sequence_services
from sequences.api.serializers import MAX_ID
from sequences.dryrun import DRY_RUN_DEFAULT_DAYS, DRY_RUN_MAX_DAYS, PlannedSend, sequence_dry_run
from sequences.models import DelayUnit, ReEntry, Sequence, Step, Template
from sequences.rendering import (
    CompiledTemplate,
    TemplateCompileError,
    TemplateRenderError,
    compile_template,
    merge_context,
)
from subscribers.models import MailingList, Subscriber
from ui.access import request_workspace, workspace_view
from ui.forms import form_errors_add

DRY_RUN_PAGE_ROWS = 100
WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]
HOURS = [(hour, f"{hour:02d}:00") for hour in range(25)]


# Forms: they only shape input; the services do the real validation (and name the field).


class SequenceForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    send_days = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, widget=forms.CheckboxSelectMultiple, label="Send on"
    )
    send_start_hour = forms.TypedChoiceField(choices=HOURS, coerce=int, initial=0, label="From hour")
    send_end_hour = forms.TypedChoiceField(choices=HOURS, coerce=int, initial=24, label="Until hour")
    goal_event = forms.CharField(max_length=100, required=False, help_text="An event name; reaching it exits.")
    re_entry = forms.ChoiceField(choices=ReEntry.choices, initial=ReEntry.NEVER, label="Re-entry")
    mailing_list = forms.ModelChoiceField(
        queryset=MailingList.objects.none(), required=False, empty_label="No list (anyone enrolled)"
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only this workspace's lists: another workspace's id is an invalid choice, named on the field.
        self.fields["mailing_list"].queryset = MailingList.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        mailing_list = data["mailing_list"]
        return {
            "description": data["description"],
            "send_days": data["send_days"],
            "send_start_hour": data["send_start_hour"],
            "send_end_hour": data["send_end_hour"],
            "goal_event": data["goal_event"].strip(),
            "re_entry": data["re_entry"],
            "mailing_list_id": mailing_list.pk if mailing_list else None,
        }

    @staticmethod
    def initial_of(sequence: Sequence) -> dict[str, Any]:
        return {
            "name": sequence.name, "description": sequence.description, "send_days": sequence.send_days,
            "send_start_hour": sequence.send_start_hour, "send_end_hour": sequence.send_end_hour,
            "goal_event": sequence.goal_event, "re_entry": sequence.re_entry, "mailing_list": sequence.mailing_list_id,
        }  # fmt: skip


SEQUENCE_ALIASES = {"mailing_list_id": "mailing_list"}


class StepForm(forms.Form):
    template = forms.ModelChoiceField(queryset=Template.objects.none(), empty_label=None)
    name = forms.CharField(max_length=200, required=False)
    delay_value = forms.IntegerField(min_value=0, initial=1, label="Wait")
    delay_unit = forms.ChoiceField(choices=DelayUnit.choices, initial=DelayUnit.DAYS, label="Unit")

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = Template.objects.filter(workspace=workspace).order_by("name")  # type: ignore[attr-defined]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "template_id": data["template"].pk, "name": data["name"], "delay_value": data["delay_value"],
            "delay_unit": data["delay_unit"],
        }  # fmt: skip


class DryRunForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=DRY_RUN_MAX_DAYS, initial=DRY_RUN_DEFAULT_DAYS, required=False)
    # Bounded like the API's cursor: a larger number would overflow PostgreSQL's bigint (a 500).
    after = forms.IntegerField(min_value=0, max_value=MAX_ID, required=False, widget=forms.HiddenInput)


# Pages


def _step_get(*, workspace: Workspace, sequence: Sequence, step_id: int) -> Step:
    step = Step.objects.select_related("sequence", "template").filter(sequence=sequence, pk=step_id).first()
    if step is None or step.sequence.workspace_id != workspace.pk:
        raise Http404("Step not found.")
    return step


def _builder_context(request: HttpRequest, sequence: Sequence | None, form: SequenceForm, **extra: Any) -> dict:
    workspace = request_workspace(request)
    context: dict[str, Any] = {"sequence": sequence, "form": form, "nav": "sequences"}
    if sequence is not None:
        steps = sequence_selectors.step_list(workspace=workspace, sequence=sequence)
        context["steps"] = [
            {"step": step, "form": StepForm(initial={**_step_initial(step)}, workspace=workspace, prefix=f"s{step.pk}")}
            for step in steps
        ]
        context["step_form"] = StepForm(workspace=workspace, prefix="new")
        context["has_templates"] = Template.objects.filter(workspace=workspace).exists()
    context.update(extra)
    return context


def _step_initial(step: Step) -> dict[str, Any]:
    return {
        "template": step.template_id,
        "name": step.name,
        "delay_value": step.delay_value,
        "delay_unit": step.delay_unit,
    }


@workspace_view()
def sequence_new(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    form = SequenceForm(request.POST or None, workspace=workspace, initial={"send_days": list(range(7))})
    if request.method == "POST":
        if form.is_valid():
            try:
                sequence = sequence_services.sequence_create(
                    workspace=workspace, name=form.cleaned_data["name"], **form.service_fields()
                )
            except ApplicationError as error:
                form_errors_add(form, error, aliases=SEQUENCE_ALIASES)
            else:
                messages.success(request, f"Created {sequence.name}. Now add its steps.")
                return redirect("ui:sequence-edit", sequence_id=sequence.pk)
        return render(request, "ui/builder/edit.html", _builder_context(request, None, form), status=400)
    return render(request, "ui/builder/edit.html", _builder_context(request, None, form))


@workspace_view()
def sequence_edit(request: HttpRequest, sequence_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    if request.method == "POST":
        form = SequenceForm(request.POST, workspace=workspace)
        if form.is_valid():
            try:
                sequence_services.sequence_update(
                    workspace=workspace, sequence=sequence, name=form.cleaned_data["name"], **form.service_fields()
                )
            except ApplicationError as error:
                form_errors_add(form, error, aliases=SEQUENCE_ALIASES)
            else:
                messages.success(request, "Sequence saved.")
                return redirect("ui:sequence-edit", sequence_id=sequence.pk)
        return render(request, "ui/builder/edit.html", _builder_context(request, sequence, form), status=400)
    form = SequenceForm(initial=SequenceForm.initial_of(sequence), workspace=workspace)
    return render(request, "ui/builder/edit.html", _builder_context(request, sequence, form))


def _step_failed(request: HttpRequest, sequence: Sequence, step_form: StepForm, *, step: Step | None) -> HttpResponse:
    """Re-render the builder with the failing step form in its place (errors on its fields), status 400."""
    workspace = request_workspace(request)
    form = SequenceForm(initial=SequenceForm.initial_of(sequence), workspace=workspace)
    context = _builder_context(request, sequence, form)
    if step is None:
        context["step_form"] = step_form
    else:
        for row in context["steps"]:
            if row["step"].pk == step.pk:
                row["form"] = step_form
    return render(request, "ui/builder/edit.html", context, status=400)


@workspace_view()
@require_POST
def step_add(request: HttpRequest, sequence_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    form = StepForm(request.POST, workspace=workspace, prefix="new")
    if form.is_valid():
        try:
            sequence_services.step_create(workspace=workspace, sequence=sequence, **form.service_fields())
        except ApplicationError as error:
            form_errors_add(form, error)
        else:
            messages.success(request, "Step added.")
            return redirect("ui:sequence-edit", sequence_id=sequence.pk)
    return _step_failed(request, sequence, form, step=None)


@workspace_view()
@require_POST
def step_save(request: HttpRequest, sequence_id: int, step_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    step = _step_get(workspace=workspace, sequence=sequence, step_id=step_id)
    form = StepForm(request.POST, workspace=workspace, prefix=f"s{step.pk}")
    if form.is_valid():
        try:
            sequence_services.step_update(workspace=workspace, step=step, **form.service_fields())
        except ApplicationError as error:
            form_errors_add(form, error)
        else:
            messages.success(request, "Step saved.")
            return redirect("ui:sequence-edit", sequence_id=sequence.pk)
    return _step_failed(request, sequence, form, step=step)


@workspace_view()
@require_POST
def step_remove(request: HttpRequest, sequence_id: int, step_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    step = _step_get(workspace=workspace, sequence=sequence, step_id=step_id)
    try:
        sequence_services.step_delete(workspace=workspace, step=step)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Step deleted.")
    return redirect("ui:sequence-edit", sequence_id=sequence.pk)


@workspace_view()
@require_POST
def step_move(request: HttpRequest, sequence_id: int, step_id: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        raise Http404("No such move.")
    workspace = request_workspace(request)
    sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    step = _step_get(workspace=workspace, sequence=sequence, step_id=step_id)
    ids = [s.pk for s in sequence_selectors.step_list(workspace=workspace, sequence=sequence)]
    at = ids.index(step.pk)
    to = at - 1 if direction == "up" else at + 1
    if 0 <= to < len(ids):  # moving the first up or the last down changes nothing
        ids[at], ids[to] = ids[to], ids[at]
        try:
            sequence_services.step_reorder(workspace=workspace, sequence=sequence, step_ids=ids)
        except ApplicationError as error:
            messages.error(request, error.message)
    return redirect("ui:sequence-edit", sequence_id=sequence.pk)


def _subjects_as_seen(workspace: Workspace, rows: Rows[PlannedSend]) -> list[str]:
    """Each row's subject rendered for its subscriber, as the email will carry it (the dry run gives the
    template's source). One compile per step; a subject that does not render shows its source."""
    steps = Step.objects.select_related("template").in_bulk({row.step_id for row in rows})
    people = Subscriber.objects.filter(workspace=workspace).in_bulk({row.subscriber_id for row in rows})
    compiled: dict[int, CompiledTemplate | None] = {}
    subjects = []
    for row in rows:
        step, subscriber = steps.get(row.step_id), people.get(row.subscriber_id)
        if step is None or subscriber is None:  # changed since the simulation: show what it gave
            subjects.append(row.subject)
            continue
        if step.pk not in compiled:
            try:
                compiled[step.pk] = compile_template(subject=step.template.subject, html="")
            except TemplateCompileError:
                compiled[step.pk] = None
        template = compiled[step.pk]
        try:
            if template is None:
                raise TemplateRenderError(field="subject", message="does not compile")
            subjects.append(template.render(merge_context(workspace=workspace, subscriber=subscriber)).subject)
        except TemplateRenderError:
            subjects.append(row.subject)
    return subjects


@workspace_view()
@require_GET
def sequence_dry_run_page(request: HttpRequest, sequence_id: int) -> HttpResponseBase:
    """Who would get which email when; pages of whole enrollments (the dry run's own cursor), rows paged too."""
    workspace = request_workspace(request)
    sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    form = DryRunForm(request.GET or None)
    context: dict[str, Any] = {"sequence": sequence, "form": form, "nav": "sequences"}
    if form.is_bound and not form.is_valid():
        return render(request, "ui/builder/dry_run.html", context, status=400)
    data = form.cleaned_data if form.is_bound else {}
    days = data.get("days") or DRY_RUN_DEFAULT_DAYS
    try:
        result = sequence_dry_run(
            workspace=workspace, sequence=sequence, days=days, after_enrollment_id=data.get("after") or None
        )
    except ApplicationError as error:
        form_errors_add(form, error)
        return render(request, "ui/builder/dry_run.html", context, status=400)
    page = Paginator(result.rows, DRY_RUN_PAGE_ROWS).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    subjects = _subjects_as_seen(workspace, shown)
    query = request.GET.copy()
    query.pop("page", None)
    next_query = query.copy()
    next_query["after"] = str(result.next_after_enrollment_id or "")
    context.update({
        "result": result, "page": page, "rows": list(zip(shown, subjects, strict=True)),
        "query": query.urlencode(), "days": days,
        "next_query": next_query.urlencode() if result.next_after_enrollment_id else "",
        "blocked": sorted(result.blocked.items()),
    })  # fmt: skip
    return render(request, "ui/builder/dry_run.html", context)
