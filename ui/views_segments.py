"""Segment builder pages: the list with counts and usages, a form-based rule editor (rows of conditions,
one level of groups, an advanced JSON textarea), an htmx preview of the unsaved rules, save and delete.

Every rule stays in `subscribers.segments`; `ui.segment_rules` only turns the posted rows into a tree and
puts the service's error paths back beside the rows. Roles are the segments API's: viewers read and
preview (a preview writes nothing), marketers create, edit and delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Role, Workspace
from core.errors import Conflict, NotFound, ValidationFailed
from sequences.models import Sequence
from subscribers import segments as segment_services
from subscribers.models import FieldDefinition, MailingList, MembershipStatus, Segment, SubscriberStatus, Tag
from ui import segment_rules as rules
from ui import segment_tree
from ui.access import may, request_workspace, workspace_view
from ui.segment_rules import Editor, Group, Row

PREVIEW_SIZE = 10
KIND_LABELS = [
    ("status", "Status"), ("attribute", "Custom field"), ("list", "List membership"), ("tag", "Tag"),
    ("created_at", "Added on"), ("confirmed_at", "Confirmed on"), ("event", "Event"),
    ("engagement", "Email engagement"), ("segment", "In saved segment"),
]  # fmt: skip
ENGAGEMENT_LABELS = [("opened", "opened an email"), ("clicked", "clicked an email"), ("never_opened", "never opened")]


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


@dataclass
class BuilderOptions:
    """What the rows offer to choose from: this workspace's fields, lists, tags, segments and sequences."""

    fields: list[FieldDefinition]
    lists: list[MailingList]
    tags: list[Tag]
    segments: list[Segment]
    sequences: list[Sequence]
    segment_id: int | None = None  # the segment being edited: rows may not refer to it
    prefix: str = ""  # the inputs' name prefix inside another form (ui.segment_rules.PREFIXES)
    kinds = KIND_LABELS
    engagements = ENGAGEMENT_LABELS
    statuses = SubscriberStatus.choices
    memberships = MembershipStatus.choices

    @property
    def field_types(self) -> dict[str, str]:
        return {definition.key: definition.type for definition in self.fields}


def builder_options(workspace: Workspace, *, exclude: Segment | None = None, prefix: str = "") -> BuilderOptions:
    segments = Segment.objects.filter(workspace=workspace).order_by("name")
    return BuilderOptions(
        fields=list(FieldDefinition.objects.filter(workspace=workspace).order_by("label")),
        lists=list(MailingList.objects.filter(workspace=workspace).order_by("name")),
        tags=list(Tag.objects.filter(workspace=workspace).order_by("name")),
        segments=list(segments.exclude(pk=exclude.pk) if exclude else segments),
        sequences=list(Sequence.objects.filter(workspace=workspace).order_by("name")),
        segment_id=exclude.pk if exclude else None,
        prefix=prefix,
    )


def _segment(workspace: Workspace, segment_id: int) -> Segment:
    """Scoped lookup: another workspace's segment is NotFound (the decorator's 404)."""
    segment = Segment.objects.filter(workspace=workspace, pk=segment_id).first()
    if segment is None:
        raise NotFound("Segment not found.")
    return segment


def editor_prepared(editor: Editor, options: BuilderOptions) -> Editor:
    for row in editor.rows():
        _row_prepared(row, options)
    return editor


def _row_prepared(row: Row, options: BuilderOptions) -> Row:
    rules.row_widgets(row, options.field_types)
    known = {
        "field": set(options.field_types) if row.kind == "attribute" else None,
        "sequence": {str(s.pk) for s in options.sequences} if row.kind == "engagement" else None,
        "segment": {str(s.pk) for s in options.segments} if row.kind == "segment" else None,
    }
    for name, values in known.items():
        if values is not None and row.get(name) and row.get(name) not in values:
            row.unknown[name] = row.get(name)
    for name, objects in (("lists", options.lists), ("tags", options.tags)):
        ids = {str(o.pk) for o in objects}
        row.unknown[name] = [i for i in row.choices.get(name, []) if i not in ids]
    return row


def _posted(data: QueryDict, *, prefix: str = "", source: str | None = None) -> tuple[Editor, Any]:
    return rules.editor_posted(data, prefix=prefix, source=source)


def _prefix(request: HttpRequest) -> str:
    """The field-name prefix of the form the partial lives in (the workflow editor's: "entry-")."""
    return rules.prefix_of(request.GET) or rules.prefix_of(request.POST)


_rule_errors = rules.rule_errors_place


def _save_errors(form: SegmentForm, editor: Editor, error: ValidationFailed) -> None:
    """The rules' errors beside their rows, the name's on its field."""
    details = error.details if isinstance(error.details, dict) else {}
    if any(key.startswith("rules") for key in details):
        _rule_errors(editor, error)
    else:
        form.add_error("name" if "name" in details else None, error.message)


def _saved_editor(segment: Segment | None) -> Editor:
    if segment is None:
        return Editor(items=[Row(id=rules.new_id())], json_text=rules.tree_json({"all": []}))
    return segment_tree.editor_or_json(segment.rules)


# List -----------------------------------------------------------------------------------------


@workspace_view()
@require_GET
def segment_list(request: HttpRequest) -> HttpResponse:
    workspace = request_workspace(request)
    rows = []
    for segment in Segment.objects.filter(workspace=workspace).order_by("name"):
        try:
            count, problem = segment_services.segment_count(workspace=workspace, tree=segment.rules), ""
        except ValidationFailed as error:  # say a tag it names was deleted since: shown, not a 500
            count, problem = None, error.message
        rows.append({"segment": segment, "count": count, "problem": problem,
                     "usages": segment_services.segment_usages(segment=segment)})  # fmt: skip
    return render(request, "ui/segments/list.html", {"rows": rows, "nav": "subscribers"})


# Builder --------------------------------------------------------------------------------------


def _builder(request: HttpRequest, segment: Segment | None) -> HttpResponse:
    workspace = request_workspace(request)
    if request.method == "POST":
        form = SegmentForm(request.POST)
        editor, tree = _posted(request.POST)
        if form.is_valid() and tree is not None:
            data = form.cleaned_data
            try:
                if segment is None:
                    segment = segment_services.segment_create(workspace=workspace, rules=tree, **data)
                else:
                    segment_services.segment_update(workspace=workspace, segment=segment, rules=tree, **data)
            except ValidationFailed as error:
                _save_errors(form, editor, error)
            except Conflict as error:  # the only conflict of a save: the name is taken
                form.add_error("name", error.message)
            else:
                messages.success(request, f"Saved segment {segment.name}.")
                return redirect("ui:segment-edit", segment_id=segment.pk)
        elif tree is not None:  # the name is missing: still say what is wrong with the rules
            try:
                segment_services.segment_validate(workspace=workspace, tree=tree, segment=segment)
            except ValidationFailed as error:
                _rule_errors(editor, error)
        if segment is not None:  # segment_update may have set the refused name on the instance
            segment.refresh_from_db(fields=["name", "description", "rules"])
        status = 400
    else:
        initial = {"name": segment.name, "description": segment.description} if segment else {}
        form, editor, status = SegmentForm(initial=initial), _saved_editor(segment), 200
    options = builder_options(workspace, exclude=segment)
    context = {
        "form": form,
        "editor": editor_prepared(editor, options),
        "options": options,
        "segment": segment,
        "can_write": may(request.role, Role.MARKETER),  # type: ignore[attr-defined]
        "nav": "subscribers",
    }
    return render(request, "ui/segments/edit.html", context, status=status)


@workspace_view()
@require_http_methods(["GET", "POST"])
def segment_new(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@workspace_view()
@require_http_methods(["GET", "POST"])
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    return _builder(request, _segment(request_workspace(request), segment_id))


@workspace_view()
@require_POST
def segment_remove(request: HttpRequest, segment_id: int) -> HttpResponse:
    workspace = request_workspace(request)
    segment = _segment(workspace, segment_id)
    try:
        segment_services.segment_delete(workspace=workspace, segment=segment)
    except Conflict as error:  # in use: the message names the campaigns and segments using it
        messages.error(request, f"{segment.name} was not deleted. {error.message}")
        return redirect("ui:segment-edit", segment_id=segment.pk)
    messages.success(request, f"Deleted segment {segment.name}.")
    return redirect("ui:segments")


# htmx partials: preview, rows and groups, JSON <-> rows ----------------------------------------


@workspace_view(write_role=Role.VIEWER)  # a preview writes nothing (the API lets viewers POST it too)
@require_POST
def segment_preview(request: HttpRequest) -> HttpResponse:
    """Count and first subscribers of the UNSAVED rules. Answers 200 even when the rules are refused:
    the errors are the preview's content, swapped beside their rows (htmx swaps no 4xx answer)."""
    workspace = request_workspace(request)
    editor, tree = _posted(request.POST)
    context: dict[str, Any] = {"editor": editor, "count": None, "subscribers": []}
    if tree is not None:
        try:
            context["count"] = segment_services.segment_count(workspace=workspace, tree=tree)
            context["subscribers"] = segment_services.segment_preview(
                workspace=workspace, tree=tree, limit=PREVIEW_SIZE
            )
        except ValidationFailed as error:
            _rule_errors(editor, error)
    return render(request, "ui/segments/_preview.html", context)


@workspace_view(write_role=Role.VIEWER)  # reshapes the posted form only; nothing is stored
@require_POST
def segment_editor(request: HttpRequest) -> HttpResponse:
    """`load=json`: rebuild the rows from the JSON text; else: write the rows' tree into the JSON text."""
    load_json = request.POST.get("load") == "json"
    prefix = _prefix(request)
    editor, tree = _posted(request.POST, prefix=prefix, source="json" if load_json else "rows")
    if load_json and not editor.json_text.strip():  # a blank text loads as no conditions, not as bad JSON
        editor = Editor(match=editor.match)
    elif load_json and tree is not None:
        try:
            editor = segment_tree.editor_from_tree(tree)
        except segment_tree.Unrepresentable as reason:
            editor.source = "json"
            editor.note = f"The JSON uses {reason}, which the form editor cannot show: keep editing it as JSON."
    options = builder_options(request_workspace(request), exclude=_exclude(request), prefix=prefix)
    context = {"editor": editor_prepared(editor, options), "options": options, "json_open": True}  # the user is in it
    return render(request, "ui/segments/_editor.html", context)


def _exclude(request: HttpRequest) -> Segment | None:
    """The segment being edited (named by `segment`), which may not refer to itself."""
    raw = request.POST.get("segment_id") or request.GET.get("segment_id") or ""
    return _segment(request_workspace(request), int(raw)) if raw.isdigit() else None


@workspace_view()
@require_GET
def segment_row(request: HttpRequest) -> HttpResponse:
    """A new row (`group` names its group), or the row `id` re-rendered for its changed kind, field or
    operator (its current inputs are in the query)."""
    row_id, group = request.GET.get("id", ""), request.GET.get("group", rules.ROOT)
    if rules.ITEM_ID.match(row_id):
        row = rules.row_from_data(request.GET, row_id, form_prefix=_prefix(request))
    elif group == rules.ROOT or rules.ITEM_ID.match(group):
        row = Row(id=rules.new_id(), group=group)
    else:
        raise Http404("No such group.")
    options = builder_options(request_workspace(request), exclude=_exclude(request), prefix=_prefix(request))
    return render(request, "ui/segments/_row.html", {"row": _row_prepared(row, options), "options": options})


@workspace_view()
@require_GET
def segment_group(request: HttpRequest) -> HttpResponse:
    """A new nested group holding one empty row."""
    group = Group(id=rules.new_id())
    group.rows.append(Row(id=rules.new_id(), group=group.id))
    options = builder_options(request_workspace(request), exclude=_exclude(request), prefix=_prefix(request))
    _row_prepared(group.rows[0], options)
    return render(request, "ui/segments/_group.html", {"group": group, "options": options})
