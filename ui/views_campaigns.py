"""Campaign pages: list, compose (audience, schedule, send now), detail with live progress, and actions.

Thin views over sequences.campaigns, with the API's roles: viewers read, marketers write. Like the API,
"Send now" runs `campaign_start` in the request (the audience becomes queued messages, handed to the
sender after the commit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Workspace
from core.errors import ApplicationError, Conflict, NotFound
from sequences import campaigns as campaign_services
from sequences.campaigns import EDITABLE_STATUSES
from sequences.models import Campaign, CampaignStatus
from subscribers.models import MailingList, Segment, Tag
from ui.access import request_workspace, workspace_view
from ui.actions import button_change
from ui.forms import form_errors_add
from ui.forms_campaigns import AUDIENCE_FIELDS, CAMPAIGN_ALIASES, AudienceForm, CampaignForm, workspace_zone

PAGE_SIZE = 25
AUDIENCE_PREFETCH = ("lists", "tags", "segments", "exclude_lists", "exclude_tags", "exclude_segments")


def _campaign_get(*, workspace: Workspace, campaign_id: int) -> Campaign:
    campaign = (
        Campaign.objects.select_related("template", "workspace")
        .prefetch_related(*AUDIENCE_PREFETCH)
        .filter(workspace=workspace, pk=campaign_id)
        .first()
    )
    if campaign is None:
        raise Http404("Campaign not found.")
    return campaign


def _audience_parts(campaign: Campaign) -> list[tuple[str, list[str]]]:
    """(label, names) of each non-empty part of the audience, for the list and the detail page."""
    parts: list[tuple[str, Iterable[MailingList | Tag | Segment]]] = [
        ("Lists", campaign.lists.all()), ("Tags", campaign.tags.all()), ("Segments", campaign.segments.all()),
        ("Not lists", campaign.exclude_lists.all()), ("Not tags", campaign.exclude_tags.all()),
        ("Not segments", campaign.exclude_segments.all()),
    ]  # fmt: skip
    named = [(label, sorted(row.name for row in rows)) for label, rows in parts]
    return [(label, names) for label, names in named if names]


@workspace_view()
@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    campaigns = (
        Campaign.objects.filter(workspace=workspace).select_related("template").prefetch_related(*AUDIENCE_PREFETCH)
    )
    page = Paginator(campaigns, PAGE_SIZE).get_page(request.GET.get("page"))
    numbers = campaign_services.campaigns_list_numbers(
        workspace=workspace, campaign_ids=[campaign.pk for campaign in page.object_list]
    )
    rows = [
        {"campaign": campaign, "audience": _audience_parts(campaign), "stats": numbers[campaign.pk]}
        for campaign in page.object_list
    ]
    return render(request, "ui/campaigns/list.html", {"nav": "campaigns", "rows": rows, "page": page})


def _compose_context(form: CampaignForm, campaign: Campaign | None) -> dict[str, Any]:
    return {"nav": "campaigns", "form": form, "campaign": campaign, "audience_fields": AUDIENCE_FIELDS}


def _save(workspace: Workspace, form: CampaignForm, campaign: Campaign | None) -> Campaign:
    """Create or update, then schedule or start as the button asked, in one transaction: a failed
    start or schedule leaves nothing half-done (no draft created by a refused "Send now")."""
    intent = form.cleaned_data["intent"]
    fields = form.service_fields()
    with transaction.atomic():
        if campaign is None:
            campaign = campaign_services.campaign_create(workspace=workspace, **fields)
        else:
            campaign = campaign_services.campaign_update(workspace=workspace, campaign=campaign, **fields)
        if intent == CampaignForm.SCHEDULE:
            campaign = campaign_services.campaign_schedule(
                workspace=workspace, campaign=campaign, at=form.cleaned_data["scheduled_at"]
            )
        elif intent == CampaignForm.SEND:
            campaign = campaign_services.campaign_start(workspace=workspace, campaign=campaign).campaign
    return campaign


def _saved_message(campaign: Campaign) -> str:
    if campaign.status == CampaignStatus.SCHEDULED and campaign.scheduled_at:
        local = campaign.scheduled_at.astimezone(workspace_zone(campaign.workspace))
        return f"{campaign.name} is scheduled for {local:%Y-%m-%d %H:%M} ({local.tzinfo})."
    if campaign.status in (CampaignStatus.SENDING, CampaignStatus.SENT):
        return f"{campaign.name} is sending."
    return f"Saved {campaign.name} as a draft."


def _compose(request: HttpRequest, campaign: Campaign | None) -> HttpResponse:
    workspace = request_workspace(request)
    if request.method != "POST":
        initial = CampaignForm.initial_of(campaign) if campaign else {}
        form = CampaignForm(initial=initial, workspace=workspace)
        return render(request, "ui/campaigns/edit.html", _compose_context(form, campaign))
    form = CampaignForm(request.POST, workspace=workspace)
    status = 400
    if form.is_valid():
        try:
            saved = _save(workspace, form, campaign)
        except ApplicationError as error:
            form_errors_add(form, error, aliases=CAMPAIGN_ALIASES)
            status = 409 if isinstance(error, Conflict) else 404 if isinstance(error, NotFound) else 400
        else:
            messages.success(request, _saved_message(saved))
            return redirect("ui:campaign", campaign_id=saved.pk)
    return render(request, "ui/campaigns/edit.html", _compose_context(form, campaign), status=status)


@workspace_view()
def campaign_new(request: HttpRequest) -> HttpResponse:
    return _compose(request, None)


@workspace_view()
def campaign_edit(request: HttpRequest, campaign_id: int) -> HttpResponseBase:
    campaign = _campaign_get(workspace=request_workspace(request), campaign_id=campaign_id)
    if request.method != "POST" and campaign.status not in EDITABLE_STATUSES:
        messages.info(request, f"A {campaign.get_status_display().lower()} campaign cannot be edited.")
        return redirect("ui:campaign", campaign_id=campaign.pk)
    return _compose(request, campaign)  # a POST to a started one: the service's 409 on the form


@workspace_view()
@require_GET
def campaign_estimate(request: HttpRequest) -> HttpResponse:
    """The compose page's audience size (an htmx partial): the audience's rules, evaluated now."""
    workspace = request_workspace(request)
    form = AudienceForm(request.GET, workspace=workspace)
    context: dict[str, Any] = {"count": None, "error": ""}
    if not form.is_valid():
        context["error"] = "Pick lists, tags and segments of this workspace."
        return render(request, "ui/campaigns/_estimate.html", context, status=400)
    try:
        context["count"] = campaign_services.campaign_audience_estimate(workspace=workspace, **form.audience_ids())
    except ApplicationError as error:  # a segment that no longer compiles
        context["error"] = error.message
    return render(request, "ui/campaigns/_estimate.html", context)


@workspace_view()
@require_GET
def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    campaign = _campaign_get(workspace=workspace, campaign_id=campaign_id)
    stats = campaign_services.campaign_stats(workspace=workspace, campaign=campaign)
    percent = stats.sent * 100 // stats.recipients if stats.recipients else 0
    context = {
        "nav": "campaigns", "campaign": campaign, "stats": stats, "audience": _audience_parts(campaign),
        "percent": percent, "zone": workspace_zone(workspace).key, "editable": campaign.status in EDITABLE_STATUSES,
        "socket_path": "/api/v1/ws/connect/campaign",
    }  # fmt: skip
    response = render(request, "ui/campaigns/detail.html", context)
    # The progress socket goes to this very origin; CSP2 browsers do not count ws(s): as 'self' (as the
    # live dashboard's page does).
    scheme = "wss" if request.is_secure() else "ws"
    response._csp_update = {"connect-src": [f"{scheme}://{request.get_host()}"]}  # type: ignore[attr-defined]
    return response


# Each action is one service call; a refused transition (409) comes back as a message on the detail page.
ACTIONS: dict[str, Callable[..., object]] = {
    "start": lambda workspace, campaign: campaign_services.campaign_start(workspace=workspace, campaign=campaign),
    "pause": campaign_services.campaign_pause,
    "resume": campaign_services.campaign_resume,
    "cancel": campaign_services.campaign_cancel,
    "delete": campaign_services.campaign_delete,
}
DONE = {
    "start": "{} is sending.", "pause": "{} is paused.", "resume": "{} is sending again.",
    "cancel": "{} is cancelled.", "delete": "Deleted {}.",
}  # fmt: skip


@workspace_view()
@require_POST
def campaign_action(request: HttpRequest, campaign_id: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    workspace = request_workspace(request)
    campaign = _campaign_get(workspace=workspace, campaign_id=campaign_id)
    changed = button_change(
        request, lambda: ACTIONS[action](workspace=workspace, campaign=campaign),
        done=lambda _: DONE[action].format(campaign.name),
    )  # fmt: skip
    if changed and action == "delete":
        return redirect("ui:campaigns")
    return redirect("ui:campaign", campaign_id=campaign.pk)
