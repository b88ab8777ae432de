"""Lists, tags and custom field definitions (/app/lists/, /app/tags/, /app/fields/): thin views over
subscribers.services, with the API's roles (viewers read, marketers write)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from core.errors import ApplicationError
from subscribers import selectors as subscriber_selectors
from subscribers import services
from subscribers.models import FieldDefinition, MailingList, Tag
from ui.access import request_workspace, workspace_view
from ui.forms import form_errors_add
from ui.forms_audience import FieldCreateForm, FieldUpdateForm, MailingListForm, TagForm

# Lists -----------------------------------------------------------------------------------------


def _lists_page(request: HttpRequest, form: MailingListForm, *, status: int = 200) -> HttpResponse:
    queryset = MailingList.objects.filter(workspace=request_workspace(request)).order_by("name")
    context = {
        "lists": subscriber_selectors.mailing_lists_with_counts(queryset=queryset),
        "form": form,
        "nav": "subscribers",
    }
    return render(request, "ui/audience/lists.html", context, status=status)


@workspace_view()
def list_index(request: HttpRequest) -> HttpResponse:
    """Every list with its member counts; marketers create lists here (POST)."""
    if request.method != "POST":
        return _lists_page(request, MailingListForm())
    form = MailingListForm(request.POST)
    if form.is_valid():
        try:
            mailing_list = services.mailing_list_create(workspace=request_workspace(request), **form.cleaned_data)
        except ApplicationError as error:
            form_errors_add(form, error)
        else:
            messages.success(request, f"Created the list {mailing_list.name}.")
            return redirect("ui:lists")
    return _lists_page(request, form, status=400)


@workspace_view(read_role=Role.MARKETER)  # a viewer is not offered a form it may not send
def list_edit(request: HttpRequest, list_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    mailing_list = subscriber_selectors.mailing_list_get(workspace=workspace, list_id=list_id)
    initial = {"name": mailing_list.name, "description": mailing_list.description,
               "double_opt_in": mailing_list.double_opt_in}  # fmt: skip
    form = MailingListForm(request.POST or None, initial=initial)
    context = {"mailing_list": mailing_list, "title": mailing_list.name, "form": form, "nav": "subscribers"}
    if request.method == "POST":
        if form.is_valid():
            try:
                services.mailing_list_update(workspace=workspace, mailing_list=mailing_list, **form.cleaned_data)
            except ApplicationError as error:
                form_errors_add(form, error)
            else:
                messages.success(request, f"Saved the list {mailing_list.name}.")
                return redirect("ui:lists")
        return render(request, "ui/audience/list_edit.html", context, status=400)
    return render(request, "ui/audience/list_edit.html", context)


@workspace_view()
@require_POST
def list_delete(request: HttpRequest, list_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    mailing_list = subscriber_selectors.mailing_list_get(workspace=workspace, list_id=list_id)
    try:
        services.mailing_list_delete(workspace=workspace, mailing_list=mailing_list)
    except ApplicationError as error:  # a sequence's audience: 409 list_in_use, named in the message
        messages.error(request, f"{mailing_list.name}: {error.message}")
    else:
        messages.success(request, f"Deleted the list {mailing_list.name}; its subscribers stay.")
    return redirect("ui:lists")


# Tags ------------------------------------------------------------------------------------------


def _tags_page(
    request: HttpRequest, form: TagForm, *, failed: tuple[int, TagForm] | None = None, status: int = 200
) -> HttpResponse:
    """The tags with a rename form each; `failed` puts a refused rename back in its row with its errors."""
    tags = (
        Tag.objects.filter(workspace=request_workspace(request)).annotate(count=Count("subscribers")).order_by("name")
    )
    rows: list[dict[str, Any]] = []
    for tag in tags:
        rename = TagForm(initial={"name": tag.name}, prefix=f"t{tag.pk}")
        if failed is not None and failed[0] == tag.pk:
            rename = failed[1]
        rows.append({"tag": tag, "form": rename})
    return render(request, "ui/audience/tags.html", {"rows": rows, "form": form, "nav": "subscribers"}, status=status)


@workspace_view()
def tag_index(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _tags_page(request, TagForm())
    form = TagForm(request.POST)
    if form.is_valid():
        try:
            tag = services.tag_create(workspace=request_workspace(request), name=form.cleaned_data["name"])
        except ApplicationError as error:
            form_errors_add(form, error)
        else:
            messages.success(request, f"Created the tag {tag.name}.")
            return redirect("ui:tags")
    return _tags_page(request, form, status=400)


@workspace_view()
@require_POST
def tag_rename(request: HttpRequest, tag_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    tag = subscriber_selectors.tag_get(workspace=workspace, tag_id=tag_id)
    form = TagForm(request.POST, prefix=f"t{tag.pk}")
    if form.is_valid():
        try:
            services.tag_update(workspace=workspace, tag=tag, name=form.cleaned_data["name"])
        except ApplicationError as error:
            form_errors_add(form, error)
        else:
            messages.success(request, f"Renamed the tag to {tag.name}.")
            return redirect("ui:tags")
    return _tags_page(request, TagForm(), failed=(tag.pk, form), status=400)


@workspace_view()
@require_POST
def tag_delete(request: HttpRequest, tag_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    tag = subscriber_selectors.tag_get(workspace=workspace, tag_id=tag_id)
    services.tag_delete(workspace=workspace, tag=tag)
    messages.success(request, f"Deleted the tag {tag.name}.")
    return redirect("ui:tags")


# Custom fields ---------------------------------------------------------------------------------


def _field_get(request: HttpRequest, field_id: int) -> FieldDefinition:
    definition = FieldDefinition.objects.filter(workspace=request_workspace(request), pk=field_id).first()
    if definition is None:
        raise Http404("Field not found.")
    return definition


def _fields_page(request: HttpRequest, form: FieldCreateForm, *, status: int = 200) -> HttpResponse:
    definitions = FieldDefinition.objects.filter(workspace=request_workspace(request)).order_by("key")
    context = {"definitions": definitions, "form": form, "nav": "subscribers"}
    return render(request, "ui/audience/fields.html", context, status=status)


@workspace_view()
def field_index(request: HttpRequest) -> HttpResponse:
    """The workspace's custom fields (keys of Subscriber.attributes); marketers define new ones here."""
    if request.method != "POST":
        return _fields_page(request, FieldCreateForm())
    form = FieldCreateForm(request.POST)
    if form.is_valid():
        try:
            definition = services.field_definition_create(workspace=request_workspace(request), **form.service_fields())
        except ApplicationError as error:
            form_errors_add(form, error)  # choices[i] lands on the choices textarea
        else:
            messages.success(request, f"Created the field {definition.key}.")
            return redirect("ui:fields")
    return _fields_page(request, form, status=400)


@workspace_view(read_role=Role.MARKETER)
def field_edit(request: HttpRequest, field_id: int) -> HttpResponse:
    """Label and (for choice fields) choices; key and type are fixed, as in the API."""
    definition = _field_get(request, field_id)
    form = FieldUpdateForm(request.POST or None, definition=definition, initial=FieldUpdateForm.initial_of(definition))
    context = {"definition": definition, "form": form, "nav": "subscribers"}
    if request.method != "POST":
        return render(request, "ui/audience/field_edit.html", context)
    if form.is_valid():
        try:
            services.field_definition_update(
                workspace=request_workspace(request), definition=definition, **form.service_fields()
            )
        except ApplicationError as error:
            form_errors_add(form, error)  # choices[i] lands on the choices textarea
        else:
            messages.success(request, f"Saved the field {definition.key}.")
            return redirect("ui:fields")
    return render(request, "ui/audience/field_edit.html", context, status=400)


@workspace_view()
@require_POST
def field_delete(request: HttpRequest, field_id: int) -> HttpResponse:
    definition = _field_get(request, field_id)
    services.field_definition_delete(workspace=request_workspace(request), definition=definition)
    messages.success(request, f"Deleted the field {definition.key}; stored values stay on profiles.")
    return redirect("ui:fields")
