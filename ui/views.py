"""Server-rendered pages for marketers: thin views that call the apps' services and selectors."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.decorators import ratelimit

from accounts import services as account_services
from accounts.models import ApiKey, Membership, Role, Workspace
from automation.models import WebhookEndpoint
from core.errors import ApplicationError, ValidationFailed
from sequences import selectors as sequence_selectors
from sequences import services as sequence_services
from sequences.models import Sequence
from subscribers import imports
from subscribers import selectors as subscriber_selectors
from subscribers.models import ImportStatus
from subscribers.segments import segment_q
from ui import selectors
from ui.access import may, request_workspace, workspace_switch, workspace_view
from ui.actions import button_change
from ui.forms import ApiKeyForm, ImportForm, SubscriberFilterForm, WorkspaceSettingsForm, form_errors_add
from ui.views_profile import profile_context

PAGE_SIZE = 25
REPORT_PREVIEW_ROWS = 100


def _streamed(request: HttpRequest, lines: Iterator[Any]) -> Iterator[Any] | AsyncIterator[Any]:
    """Under ASGI (daphne) Django would collect a plain iterator into one list before sending it; there the
    lines are pulled in batches on the sync thread (the database cursor lives there), as the API does."""
    if not isinstance(request, ASGIRequest):
        return lines
    take = sync_to_async(lambda: list(islice(lines, 500)), thread_sensitive=True)

    async def batches() -> AsyncIterator[Any]:
        while batch := await take():
            for line in batch:
                yield line

    return batches()


# Signing in -----------------------------------------------------------------------------------


def _login_rate(group: str, request: HttpRequest) -> str:
    return settings.API_THROTTLE_AUTH  # read per request, never at import time


@ratelimit(group="ui-login", key="ip", rate=_login_rate, method="POST", block=False)
def login(request: HttpRequest) -> HttpResponseBase:
    """Django's login view, with the API token endpoint's per-address limit on attempts (password guessing)."""
    if getattr(request, "limited", False):
        context = {"form": AuthenticationForm(request), "limited": True}
        response = render(request, "ui/login.html", context, status=429)
        response["Retry-After"] = "60"
        return response
    return auth_views.LoginView.as_view(template_name="ui/login.html")(request)


# Workspace ------------------------------------------------------------------------------------


@login_required
@require_POST
def switch_workspace(request: HttpRequest) -> HttpResponse:
    try:
        workspace_id = int(request.POST.get("workspace", ""))
    except ValueError:
        raise Http404("Workspace not found.") from None
    workspace = workspace_switch(request, workspace_id=workspace_id)
    messages.success(request, f"Switched to {workspace.name}.")
    return redirect("ui:dashboard")


# Dashboard ------------------------------------------------------------------------------------


@workspace_view()
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    steps = selectors.getting_started(workspace=workspace)
    context = {
        "numbers": selectors.dashboard_numbers(workspace=workspace),
        # Shown until every step is done; to viewers too (they see where the workspace stands).
        "getting_started": steps if not all(step.done for step in steps) else [],
        "nav": "dashboard",
    }
    return render(request, "ui/dashboard.html", context)


# Subscribers ----------------------------------------------------------------------------------


def _filtered_subscribers(request: HttpRequest) -> tuple[SubscriberFilterForm, Any]:
    workspace = request_workspace(request)
    form = SubscriberFilterForm(request.GET or None, workspace=workspace)
    queryset = subscriber_selectors.subscriber_list(workspace=workspace)
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "search": data["search"],
            "status": data["status"],
            "list": data["list"].pk if data["list"] else "",
            "list_status": data["list_status"],
            "tag": data["tag"].pk if data["tag"] else "",
        }
        queryset = subscriber_selectors.subscriber_list(
            workspace=workspace, filters={k: v for k, v in filters.items() if v}
        )
        if data["segment"]:
            try:
                queryset = queryset.filter(segment_q(workspace=workspace, tree=data["segment"].rules))
            except ValidationFailed as error:  # saved, then made invalid (a tag it names was deleted)
                form.add_error("segment", error.message)
                queryset = queryset.none()
    elif form.is_bound:
        queryset = queryset.none()
    return form, queryset


@workspace_view()
@require_GET
def subscriber_list(request: HttpRequest) -> HttpResponse:
    form, queryset = _filtered_subscribers(request)
    page = Paginator(queryset.prefetch_related("tags"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ui/subscribers/list.html",
        {"form": form, "page": page, "query": query.urlencode(), "nav": "subscribers"},
    )


@workspace_view()
@require_GET
def subscriber_export(request: HttpRequest) -> HttpResponseBase:
    """The filtered subscribers as CSV, streamed by the same function as the API's export."""
    _form, queryset = _filtered_subscribers(request)
    lines = imports.subscribers_export_lines(workspace=request_workspace(request), queryset=queryset)
    response = StreamingHttpResponse(_streamed(request, lines), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
    return response


@workspace_view()
@require_GET
def subscriber_detail(request: HttpRequest, subscriber_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    subscriber = subscriber_selectors.subscriber_get(workspace=workspace, subscriber_id=subscriber_id)
    # One context for the page and for its edit forms' error answers (ui/views_profile.py).
    return render(request, "ui/subscribers/detail.html", profile_context(request, subscriber))


@workspace_view(read_role=Role.MARKETER)  # a viewer is not offered an upload it may not make
def import_create(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    form = ImportForm(request.POST or None, request.FILES or None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.import_job_create(
                workspace=workspace,
                file=form.cleaned_data["file"],
                mailing_list=form.cleaned_data["mailing_list"],
                tag_names=form.tag_names(),
                update_existing=form.cleaned_data["update_existing"],
                created_by=request.user,  # type: ignore[arg-type]
            )
        except ApplicationError as error:
            form_errors_add(form, error)
        else:
            return redirect("ui:import-detail", import_id=job.pk)
    recent = workspace.imports.order_by("-id")[:10]
    return render(request, "ui/subscribers/import.html", {"form": form, "recent": recent, "nav": "subscribers"})


def _import_context(request: HttpRequest, import_id: int) -> dict[str, Any]:
    job = subscriber_selectors.import_job_get(workspace=request_workspace(request), import_id=import_id)
    finished = job.status in (ImportStatus.COMPLETED, ImportStatus.FAILED)
    percent = 100 if finished else int(100 * job.processed_bytes / job.total_bytes) if job.total_bytes else 0
    bad_rows: list[list[str]] = []
    if finished and job.error_count:
        text = b"".join(imports.import_error_report_lines(job=job)).decode("utf-8", "replace")
        bad_rows = list(csv.reader(io.StringIO(text)))[1 : REPORT_PREVIEW_ROWS + 1]
    return {"job": job, "finished": finished, "percent": percent, "bad_rows": bad_rows, "nav": "subscribers"}


@workspace_view()
@require_GET
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    return render(request, "ui/subscribers/import_detail.html", _import_context(request, import_id))


@workspace_view()
@require_GET
def import_progress(request: HttpRequest, import_id: int) -> HttpResponse:
    """The htmx partial polled every second while the import runs; once finished it stops polling."""
    return render(request, "ui/subscribers/_import_progress.html", _import_context(request, import_id))


@workspace_view()
@require_GET
def import_errors(request: HttpRequest, import_id: int) -> HttpResponseBase:
    job = subscriber_selectors.import_job_get(workspace=request_workspace(request), import_id=import_id)
    if job.status not in (ImportStatus.COMPLETED, ImportStatus.FAILED):
        raise Http404("The import has not finished yet.")
    lines = imports.import_error_report_lines(job=job)
    response = StreamingHttpResponse(_streamed(request, lines), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response


# Sequences ------------------------------------------------------------------------------------


@workspace_view()
@require_GET
def sequence_list(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    sequences = list(sequence_selectors.sequence_queryset().filter(workspace=workspace).order_by("name"))
    numbers = selectors.step_numbers(workspace=workspace, sequence_ids=[s.pk for s in sequences])
    empty = {t.value: 0 for t in selectors.STEP_EVENT_TYPES}
    rows = [
        {"sequence": s, "steps": [{"step": step, "numbers": numbers.get(step.pk, empty)} for step in s.steps.all()]}
        for s in sequences
    ]
    return render(request, "ui/sequences/list.html", {"rows": rows, "nav": "sequences"})


SEQUENCE_ACTIONS = {
    "activate": sequence_services.sequence_activate,
    "pause": sequence_services.sequence_pause,
    "archive": sequence_services.sequence_archive,
}


@workspace_view()
@require_POST
def sequence_action(request: HttpRequest, sequence_id: int, action: str) -> HttpResponse:
    if action not in SEQUENCE_ACTIONS:
        raise Http404("No such action.")
    workspace = request_workspace(request)
    sequence: Sequence = sequence_selectors.sequence_get(workspace=workspace, sequence_id=sequence_id)
    button_change(
        request, lambda: SEQUENCE_ACTIONS[action](workspace=workspace, sequence=sequence),
        done=lambda changed: f"{changed.name} is {changed.status}.", subject=sequence.name,
    )  # fmt: skip
    return redirect("ui:sequences")


# Settings -------------------------------------------------------------------------------------


def _settings_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    workspace = request_workspace(request)
    role = request.role  # type: ignore[attr-defined]
    is_admin = may(role, Role.ADMIN)
    context: dict[str, Any] = {
        "form": WorkspaceSettingsForm(instance=Workspace.objects.get(pk=workspace.pk)),
        "key_form": ApiKeyForm(),
        "is_admin": is_admin,
        "members": Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__email"),
        "api_keys": ApiKey.objects.filter(workspace=workspace) if is_admin else [],
        # Listed here, managed on their own pages (ui/views_settings.py); the signing secret is never listed.
        "webhooks": WebhookEndpoint.objects.filter(workspace=workspace).order_by("id"),
        "nav": "settings",
    }
    context.update(extra)
    return context


@workspace_view(write_role=Role.ADMIN)
def settings_page(request: HttpRequest) -> HttpResponse:
    """Workspace settings: everyone reads them, admins change them (as in the API)."""
    workspace = request_workspace(request)
    if request.method == "POST":
        # The form edits a copy: the session's workspace changes only through the service.
        form = WorkspaceSettingsForm(request.POST, instance=Workspace.objects.get(pk=workspace.pk))
        if form.is_valid():
            fields = {name: form.cleaned_data[name] for name in form.Meta.fields}
            try:
                account_services.workspace_update(workspace=workspace, **fields)
            except ValidationFailed as error:
                form_errors_add(form, error)
            else:
                messages.success(request, "Settings saved.")
                return redirect("ui:settings")
        return render(request, "ui/settings.html", _settings_context(request, form=form), status=400)
    return render(request, "ui/settings.html", _settings_context(request))


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    """Create a key and show its secret in this response only: it is stored hashed and never shown again."""
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            issued = account_services.api_key_create(
                workspace=request_workspace(request), name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
                created_by=request.user,  # type: ignore[arg-type]
            )  # fmt: skip
        except ValidationFailed as error:
            form_errors_add(form, error)
        else:
            context = _settings_context(request, new_secret=issued.secret, new_key=issued.api_key)
            response = render(request, "ui/settings.html", context)
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "ui/settings.html", _settings_context(request, key_form=form), status=400)


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = ApiKey.objects.filter(workspace=request_workspace(request), pk=key_id).first()
    if api_key is None:
        raise Http404("API key not found.")
    account_services.api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked {api_key.name}.")
    return redirect(reverse("ui:settings") + "#api-keys")
