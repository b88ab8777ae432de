"""A subscriber's profile and its edits: add one by hand, edit fields, lists, tags, unsubscribe, delete.

Every write goes through subscribers.services, the same functions the API's actions call, with its
roles: viewers read, marketers write.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from core.errors import ApplicationError, Conflict
from subscribers import selectors as subscriber_selectors
from subscribers import services
from subscribers.models import FieldDefinition, MembershipStatus, Subscriber, SubscriberStatus
from ui import selectors
from ui.access import request_workspace, workspace_view
from ui.forms import form_errors_add
from ui.forms_audience import ListAddForm, ProfileForm, SubscriberCreateForm, TagAddForm, UnsubscribeForm

PROFILE_TEMPLATE = "ui/subscribers/detail.html"
SOURCE = "ui"  # consent_source and event source of changes made in these pages


def _definitions(request: HttpRequest) -> list[FieldDefinition]:
    return list(FieldDefinition.objects.filter(workspace=request_workspace(request)).order_by("key"))


def _actor(request: HttpRequest) -> str:
    """Who changed a status, in the API's form (`user:ID email`)."""
    user = cast(User, request.user)
    return f"user:{user.pk} {user.email}".strip()


def profile_context(request: HttpRequest, subscriber: Subscriber, **bound: Any) -> dict[str, Any]:
    """What the profile page shows, with its small edit forms (pass a bound one to show its errors)."""
    workspace = request_workspace(request)
    labels = {d.key: d.label for d in _definitions(request)}
    attributes = subscriber.attributes if isinstance(subscriber.attributes, dict) else {}
    memberships = subscriber.list_memberships.select_related("mailing_list").order_by("mailing_list__name")
    on_lists = [m.mailing_list_id for m in memberships if m.status != MembershipStatus.UNSUBSCRIBED]
    return {
        "subscriber": subscriber,
        "memberships": memberships,
        "tags": subscriber.tags.order_by("name"),
        "attributes": [(key, labels.get(key, ""), value) for key, value in sorted(attributes.items())],
        "timeline": selectors.subscriber_timeline(workspace=workspace, subscriber=subscriber),
        "list_form": bound.get("list_form") or ListAddForm(workspace=workspace, offered_without=on_lists),
        "tag_form": bound.get("tag_form") or TagAddForm(),
        "unsubscribe_form": bound.get("unsubscribe_form") or UnsubscribeForm(),
        "active": subscriber.status == SubscriberStatus.ACTIVE,
        "left": MembershipStatus.UNSUBSCRIBED,
        "nav": "subscribers",
    }


def _errors_add(form: forms.BaseForm, error: ApplicationError, *, aliases: dict[str, str]) -> None:
    """As form_errors_add, but a `subscriber_exists` conflict names the address in its details, not a
    message: the field gets the message instead."""
    if isinstance(error, Conflict) and error.code == "subscriber_exists" and "email" in form.fields:
        form.add_error("email", error.message)
    else:
        form_errors_add(form, error, aliases=aliases)


def _subscriber(request: HttpRequest, subscriber_id: int) -> Subscriber:
    return subscriber_selectors.subscriber_get(workspace=request_workspace(request), subscriber_id=subscriber_id)


def _back(subscriber: Subscriber) -> HttpResponse:
    return redirect("ui:subscriber", subscriber_id=subscriber.pk)


# Adding and editing ----------------------------------------------------------------------------


@workspace_view(read_role=Role.MARKETER)  # a viewer is not offered a form it may not send
def subscriber_new(request: HttpRequest) -> HttpResponse:
    """Add a subscriber by hand through subscriber_create, as the API's create does (lists with double
    opt-in keep the subscriber pending there; an address already known is refused on the email field)."""
    workspace = request_workspace(request)
    form = SubscriberCreateForm(request.POST or None, workspace=workspace, definitions=_definitions(request))
    if request.method != "POST":
        return render(request, "ui/audience/subscriber_new.html", {"form": form, "nav": "subscribers"})
    if form.is_valid():
        try:
            subscriber = services.subscriber_create(workspace=workspace, consent_source=SOURCE, **form.service_fields())
        except ApplicationError as error:
            _errors_add(form, error, aliases=form.aliases())
        else:
            messages.success(request, f"Added {subscriber.email}.")
            return _back(subscriber)
    return render(request, "ui/audience/subscriber_new.html", {"form": form, "nav": "subscribers"}, status=400)


@workspace_view(read_role=Role.MARKETER)
def subscriber_edit(request: HttpRequest, subscriber_id: int) -> HttpResponse:
    """Email, name, time zone, locale and custom fields (one typed input per field definition); only the
    custom fields that changed are sent, so subscriber_update records a field_changed event for each."""
    subscriber = _subscriber(request, subscriber_id)
    form = ProfileForm(request.POST or None, definitions=_definitions(request), subscriber=subscriber)
    context = {"subscriber": subscriber, "email": subscriber.email, "form": form, "nav": "subscribers"}
    if request.method != "POST":
        return render(request, "ui/audience/subscriber_edit.html", context)
    if form.is_valid():
        try:
            services.subscriber_update(
                workspace=request_workspace(request), subscriber=subscriber, **form.service_changes()
            )
        except ApplicationError as error:
            _errors_add(form, error, aliases=form.attribute_aliases())
        else:
            messages.success(request, "Profile saved.")
            return _back(subscriber)
    return render(request, "ui/audience/subscriber_edit.html", context, status=400)


# Lists and tags of one subscriber ----------------------------------------------------------------


@workspace_view()
@require_POST
def subscriber_list_add(request: HttpRequest, subscriber_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    subscriber = _subscriber(request, subscriber_id)
    form = ListAddForm(request.POST, workspace=workspace)
    if not form.is_valid():  # another workspace's list is an invalid choice here: shown on the field
        return render(request, PROFILE_TEMPLATE, profile_context(request, subscriber, list_form=form), status=400)
    mailing_list = form.cleaned_data["mailing_list"]
    services.subscriber_lists_join(workspace=workspace, subscriber=subscriber, mailing_lists=[mailing_list])
    messages.success(request, f"Added to {mailing_list.name}.")
    return _back(subscriber)


@workspace_view()
@require_POST
def subscriber_list_remove(request: HttpRequest, subscriber_id: int, list_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    subscriber = _subscriber(request, subscriber_id)
    mailing_list = subscriber_selectors.mailing_list_get(workspace=workspace, list_id=list_id)
    if services.list_membership_remove(workspace=workspace, subscriber=subscriber, mailing_list=mailing_list):
        messages.success(request, f"Removed from {mailing_list.name}.")
    return _back(subscriber)


@workspace_view()
@require_POST
def subscriber_tag_add(request: HttpRequest, subscriber_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    subscriber = _subscriber(request, subscriber_id)
    form = TagAddForm(request.POST)
    if form.is_valid():
        if not form.tag_names():
            form.add_error("tags", "Give at least one tag name.")
        else:
            try:
                tags = services.subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=form.tag_names())
            except ApplicationError as error:
                form_errors_add(form, error, aliases=form.aliases())
            else:
                messages.success(request, f"Tagged {', '.join(tag.name for tag in tags)}.")
                return _back(subscriber)
    return render(request, PROFILE_TEMPLATE, profile_context(request, subscriber, tag_form=form), status=400)


@workspace_view()
@require_POST
def subscriber_tag_remove(request: HttpRequest, subscriber_id: int, tag_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    subscriber = _subscriber(request, subscriber_id)
    tag = subscriber_selectors.tag_get(workspace=workspace, tag_id=tag_id)
    if services.subscriber_tag_remove(workspace=workspace, subscriber=subscriber, tag=tag):
        messages.success(request, f"Removed the tag {tag.name}.")
    return _back(subscriber)


# Unsubscribe and delete --------------------------------------------------------------------------


@workspace_view()
@require_POST
def subscriber_unsubscribe(request: HttpRequest, subscriber_id: int) -> HttpResponse:
    """From everything the workspace sends; the reason and who did it are kept, as the API's action does."""
    subscriber = _subscriber(request, subscriber_id)
    form = UnsubscribeForm(request.POST)
    if not form.is_valid():
        context = profile_context(request, subscriber, unsubscribe_form=form)
        return render(request, PROFILE_TEMPLATE, context, status=400)
    services.subscriber_unsubscribe(
        workspace=request_workspace(request), subscriber=subscriber, reason=form.cleaned_data["reason"],
        actor=_actor(request), source=SOURCE,
    )  # fmt: skip
    messages.success(request, f"{subscriber.email} is unsubscribed from everything.")
    return _back(subscriber)


@workspace_view(read_role=Role.MARKETER)
def subscriber_delete(request: HttpRequest, subscriber_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the subscriber with its history through subscriber_delete
    (the API's DELETE). Suppressions stay: they are by address."""
    subscriber = _subscriber(request, subscriber_id)
    if request.method != "POST":
        return render(request, "ui/audience/subscriber_delete.html", {"subscriber": subscriber, "nav": "subscribers"})
    email = subscriber.email
    services.subscriber_delete(workspace=request_workspace(request), subscriber=subscriber)
    messages.success(request, f"Deleted {email} and their history.")
    return redirect("ui:subscribers")
