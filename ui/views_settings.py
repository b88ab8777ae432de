"""Settings pages for webhooks (create, edit, enable or disable, rotate the secret, ping, delivery log with
retries) and members (add by email, change a role, remove), over automation.outgoing and accounts.services.

Roles are the APIs': everyone reads, admins write. A signing secret is shown only in the answer to create
and rotate (with `Cache-Control: no-store`), as the webhooks API and the UI's API keys do.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services as account_services
from accounts.models import Membership, Role, Workspace
from automation import outgoing
from automation.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from core.errors import ApplicationError, NotFound
from ui.access import may, request_workspace, workspace_view
from ui.forms import form_errors_add
from ui.forms_settings import MemberAddForm, MemberRoleForm, WebhookForm

DELIVERY_LOG_ROWS = 50


def _is_admin(request: HttpRequest) -> bool:
    return may(request.role, Role.ADMIN)  # type: ignore[attr-defined]


def _no_store(response: HttpResponse) -> HttpResponse:
    """A page that shows a signing secret must not be kept by the browser or a proxy."""
    response["Cache-Control"] = "no-store"
    return response


# Webhooks -------------------------------------------------------------------------------------


def _endpoint(workspace: Workspace, endpoint_id: int) -> WebhookEndpoint:
    """Scoped lookup: another workspace's endpoint is NotFound (the decorator's 404)."""
    endpoint = WebhookEndpoint.objects.filter(workspace=workspace, pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("Webhook not found.")
    return endpoint


def _webhook_page(
    request: HttpRequest, endpoint: WebhookEndpoint, *, form: WebhookForm | None = None, status: int = 200,
    new_secret: str = "",
) -> HttpResponse:  # fmt: skip
    if form is None:
        initial = {"url": endpoint.url, "event_types": endpoint.event_types, "description": endpoint.description}
        form = WebhookForm(initial=initial)
    deliveries = WebhookDelivery.objects.filter(workspace=endpoint.workspace_id, endpoint=endpoint).order_by(
        "-created_at", "-id"
    )[:DELIVERY_LOG_ROWS]
    context: dict[str, Any] = {
        "endpoint": endpoint,
        "form": form,
        "deliveries": deliveries,
        "failed": DeliveryStatus.FAILED,
        "is_admin": _is_admin(request),
        "new_secret": new_secret,
        "nav": "settings",
    }
    return render(request, "ui/settings/webhook.html", context, status=status)


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)  # a viewer is not offered a form it may not send
@require_http_methods(["GET", "POST"])
def webhook_new(request: HttpRequest) -> HttpResponse:
    """Create an endpoint and show its signing secret in this answer only."""
    form = WebhookForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                endpoint = outgoing.webhook_endpoint_create(workspace=request_workspace(request), **form.cleaned_data)
            except ApplicationError as error:
                form_errors_add(form, error)
                status = error.status_code
            else:
                messages.success(request, f"Created the webhook for {endpoint.url}.")
                return _no_store(_webhook_page(request, endpoint, new_secret=endpoint.secret))
    return render(request, "ui/settings/webhook_new.html", {"form": form, "nav": "settings"}, status=status)


@workspace_view(write_role=Role.ADMIN)
@require_http_methods(["GET", "POST"])
def webhook_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The endpoint, its edit form (admins) and its latest deliveries; POST saves the form."""
    workspace = request_workspace(request)
    endpoint = _endpoint(workspace, endpoint_id)
    if request.method == "GET":
        return _webhook_page(request, endpoint)
    form = WebhookForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            outgoing.webhook_endpoint_update(workspace=workspace, endpoint=endpoint, **form.cleaned_data)
        except ApplicationError as error:
            form_errors_add(form, error)
            status = error.status_code
            endpoint.refresh_from_db()  # the page shows the stored endpoint beside the refused input
        else:
            messages.success(request, "Webhook saved.")
            return redirect("ui:webhook", endpoint_id=endpoint.pk)
    return _webhook_page(request, endpoint, form=form, status=status)


def _enable(workspace: Workspace, endpoint: WebhookEndpoint) -> str:
    outgoing.webhook_endpoint_enable(workspace=workspace, endpoint=endpoint)
    return "Webhook enabled."


def _disable(workspace: Workspace, endpoint: WebhookEndpoint) -> str:
    outgoing.webhook_endpoint_update(workspace=workspace, endpoint=endpoint, active=False)
    return "Webhook disabled; its pending deliveries failed."


def _ping(workspace: Workspace, endpoint: WebhookEndpoint) -> str:
    outgoing.webhook_ping(workspace=workspace, endpoint=endpoint)
    return "Test ping queued; it appears in the delivery log below."


WEBHOOK_ACTIONS = {"enable": _enable, "disable": _disable, "test": _ping}


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def webhook_action(request: HttpRequest, endpoint_id: int, action: str) -> HttpResponse:
    """Enable, disable or ping; a refusal (a ping to a disabled endpoint) is shown as a message."""
    workspace = request_workspace(request)
    endpoint = _endpoint(workspace, endpoint_id)
    run = WEBHOOK_ACTIONS.get(action)
    if run is None:
        raise NotFound("No such action.")
    try:
        messages.success(request, run(workspace, endpoint))
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("ui:webhook", endpoint_id=endpoint.pk)


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def webhook_rotate(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """A new signing secret, shown in this answer only; the old one stops verifying at once."""
    workspace = request_workspace(request)
    endpoint = outgoing.webhook_endpoint_secret_rotate(workspace=workspace, endpoint=_endpoint(workspace, endpoint_id))
    messages.success(request, "New signing secret issued; the old one no longer verifies.")
    return _no_store(_webhook_page(request, endpoint, new_secret=endpoint.secret))


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    endpoint = _endpoint(workspace, endpoint_id)
    outgoing.webhook_endpoint_delete(workspace=workspace, endpoint=endpoint)
    messages.success(request, f"Deleted the webhook for {endpoint.url} and its delivery log.")
    return redirect(reverse("ui:settings") + "#webhooks")


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def webhook_delivery_retry(request: HttpRequest, endpoint_id: int, delivery_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    endpoint = _endpoint(workspace, endpoint_id)
    delivery = WebhookDelivery.objects.filter(workspace=workspace, endpoint=endpoint, pk=delivery_id).first()
    if delivery is None:
        raise NotFound("Delivery not found.")
    try:
        outgoing.webhook_delivery_retry(workspace=workspace, delivery=delivery)
    except ApplicationError as error:  # still pending, or the endpoint is disabled
        messages.error(request, error.message)
    else:
        messages.success(request, f"Retrying the {delivery.event_type} delivery now.")
    return redirect("ui:webhook", endpoint_id=endpoint.pk)


# Members --------------------------------------------------------------------------------------


def _members_page(request: HttpRequest, *, add_form: MemberAddForm | None = None, status: int = 200) -> HttpResponse:
    workspace = request_workspace(request)
    members = Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__email", "id")
    context = {
        "members": members,
        "add_form": add_form or MemberAddForm(),
        "roles": Role.choices,
        "is_admin": _is_admin(request),
        "nav": "settings",
    }
    return render(request, "ui/settings/members.html", context, status=status)


def _membership(workspace: Workspace, membership_id: int) -> Membership:
    membership = Membership.objects.filter(workspace=workspace, pk=membership_id).select_related("user").first()
    if membership is None:
        raise NotFound("Member not found.")
    return membership


@workspace_view(write_role=Role.ADMIN)
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest) -> HttpResponse:
    """Everyone sees the members; admins add one by email (an account is made if none exists, as the API
    does). Who may grant which role is the service's rule; its refusal is shown on the form."""
    if request.method == "GET":
        return _members_page(request)
    form = MemberAddForm(request.POST)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        try:
            membership = account_services.membership_add(
                workspace=request_workspace(request), email=data["email"], role=data["role"],
                password=data["password"] or None, by_role=request.role,  # type: ignore[attr-defined]
            )  # fmt: skip
        except ApplicationError as error:  # a role the caller may not grant, already a member
            form_errors_add(form, error)
            status = error.status_code
        else:
            messages.success(request, f"Added {membership.user.email} as {membership.get_role_display()}.")
            return redirect("ui:members")
    return _members_page(request, add_form=form, status=status)


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request_workspace(request), membership_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{membership.user.email}: choose one of the listed roles.")
        return _members_page(request, status=400)
    try:
        account_services.membership_update(
            membership=membership,
            role=form.cleaned_data["role"],
            by_role=request.role,  # type: ignore[attr-defined]
        )
    except ApplicationError as error:  # the owner role, or the last owner
        messages.error(request, f"{membership.user.email}: {error.message}")
        return _members_page(request, status=error.status_code)
    messages.success(request, f"{membership.user.email} is now {membership.get_role_display()}.")
    return redirect("ui:members")


@workspace_view(read_role=Role.ADMIN, write_role=Role.ADMIN)
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request_workspace(request), membership_id)
    try:
        account_services.membership_remove(membership=membership, by_role=request.role)  # type: ignore[attr-defined]
    except ApplicationError as error:
        messages.error(request, f"{membership.user.email}: {error.message}")
        return _members_page(request, status=error.status_code)
    messages.success(request, f"Removed {membership.user.email} from the workspace.")
    if membership.user_id == request.user.pk:  # removed themselves: this workspace is no longer theirs
        return redirect("ui:dashboard")
    return redirect("ui:members")
