"""The workflow editor's entry conditions as the segment builder's rows: the same form model
(ui.segment_rules), tree -> rows (ui.segment_tree), partial templates and htmx endpoints, with every input
named `entry-...` so they live inside the workflow form. Rules the rows cannot show stay JSON."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from accounts.models import Workspace
from automation.services import entry_rules_clean
from core.errors import ApplicationError, ValidationFailed
from ui import segment_rules, segment_tree
from ui.forms_workflows import json_parse
from ui.segment_rules import Editor
from ui.views_segments import BuilderOptions, builder_options, editor_prepared

ENTRY_PREFIX = "entry-"
ENTRY_FIELD = "entry_rules"  # the service's field: its error paths start with it


def entry_options(workspace: Workspace) -> BuilderOptions:
    return builder_options(workspace, prefix=ENTRY_PREFIX)


def entry_saved(rules: Any) -> Editor:
    """None (everyone may enter) is no rows at all; the segment builder starts with one empty row."""
    return Editor() if rules is None else segment_tree.editor_or_json(rules)


def entry_posted(data: QueryDict) -> tuple[Editor, Any]:
    """The editor as posted and the entry rules to store: None for no rows or a blank JSON text. Bad JSON
    leaves its message in `editor.json_errors`."""
    editor = segment_rules.editor_from_data(data, prefix=ENTRY_PREFIX)
    if (editor.source == "json" and not editor.json_text.strip()) or (editor.source == "rows" and not editor.items):
        return editor, None
    return segment_rules.editor_posted(data, prefix=ENTRY_PREFIX, root=ENTRY_FIELD, parse=json_parse)


def _is_entry_path(path: str) -> bool:
    return path == ENTRY_FIELD or path.startswith((f"{ENTRY_FIELD}.", f"{ENTRY_FIELD}["))


def entry_errors_take(editor: Editor, error: ApplicationError) -> ApplicationError | None:
    """Put the error's entry_rules paths beside their rows (or under the JSON); what is left of the error
    for the workflow form, None when nothing is."""
    details = error.details if isinstance(error.details, dict) else {}
    mine = {path: problems for path, problems in details.items() if _is_entry_path(path)}
    if not mine:
        return error
    segment_rules.rule_errors_place(editor, ApplicationError(error.message, code=error.code, details=mine))
    rest = {path: problems for path, problems in details.items() if path not in mine}
    return type(error)(error.message, code=error.code, details=rest) if rest else None


def entry_check(workspace: Workspace, editor: Editor, rules: Any) -> None:
    """The service's verdict on the entry rules alone, beside their rows (when another field kept the
    workflow from being saved, the save did not get to check them)."""
    if rules is None or editor.json_errors:
        return
    try:
        entry_rules_clean(workspace=workspace, rules=rules)
    except ValidationFailed as error:
        entry_errors_take(editor, error)


def entry_context(workspace: Workspace, editor: Editor) -> dict[str, Any]:
    options = entry_options(workspace)
    return {"entry": editor_prepared(editor, options), "entry_options": options}
