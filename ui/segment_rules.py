"""The segment builder's form model: rows of conditions (and one level of groups) -> a segment rule tree
(the way back, saved tree -> rows, is `ui.segment_tree`).

Only shapes input: every rule (allowed ops, value types, ids of this workspace) stays with
`subscribers.segments.segment_validate`, whose error paths (`rules.all[2].op`) are mapped back onto rows.
The form posts flat indexed fields: `item` lists `r:<id>` / `g:<id>` tokens in document order, a row's
inputs are named `r<id>-<name>`, a group's `g<id>-match`, and `r<id>-group` names a row's group. Inside
another form (the workflow editor's entry conditions) every name carries a prefix (`entry-`), one of
PREFIXES, and error paths start at that form's field (`entry_rules.all[1].value`) instead of `rules`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from core.errors import ApplicationError
from subscribers.segments import ATTRIBUTE_OPS

ROOT = "root"
MATCHES = ("all", "any")
# In the service's order (LEAF_KEYS): a list leaf also has a "status" key.
KINDS = ("attribute", "list", "status", "tag", "created_at", "confirmed_at", "event", "engagement", "segment")
OP_KINDS = {"attribute", "created_at", "confirmed_at"}
SINGLE = (
    "field", "op", "value", "value2", "membership", "event", "did", "at_least", "within_days", "properties",
    "engagement", "sequence", "segment",
)  # fmt: skip
MULTI = ("statuses", "lists", "tags")
ITEM_ID = re.compile(r"^[a-z0-9]{1,16}$")
# The field-name prefixes a builder may use: "" on the segment page, "entry-" in the workflow editor. A
# fixed set, since the htmx partials take it from the query string.
PREFIXES = ("", "entry-")
MAX_ITEMS = 200  # the service allows 100 nodes; this only bounds the work of reading a hostile form


def new_id() -> str:
    return secrets.token_hex(4)


@dataclass
class Row:
    id: str
    group: str = ROOT
    kind: str = "status"
    negate: bool = False
    values: dict[str, str] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)
    path: str = ""
    errors: list[str] = field(default_factory=list)
    # Set for rendering by `row_widgets`: the operators to offer and which value inputs to show.
    ops: list[tuple[str, str]] = field(default_factory=list)
    widget: str = ""
    value_type: str = ""
    # Chosen values the workspace no longer has (a deleted field, list, tag, sequence or segment): still
    # offered, selected, so a save never silently swaps them for the first option; the service refuses them.
    unknown: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass
class Group:
    id: str
    match: str = "all"
    rows: list[Row] = field(default_factory=list)
    path: str = ""
    errors: list[str] = field(default_factory=list)

    is_group = True


@dataclass
class Editor:
    match: str = "all"
    items: list[Row | Group] = field(default_factory=list)
    source: str = "rows"  # which one the preview and the save read: the rows or the JSON text
    json_text: str = ""
    errors: list[str] = field(default_factory=list)
    json_errors: list[str] = field(default_factory=list)
    note: str = ""

    def rows(self) -> list[Row]:
        found: list[Row] = []
        for item in self.items:
            found.extend(item.rows if isinstance(item, Group) else [item])
        return found

    def groups(self) -> list[Group]:
        return [item for item in self.items if isinstance(item, Group)]


# Reading the posted form ----------------------------------------------------------------------


def prefix_of(data: QueryDict) -> str:
    """The `prefix` a partial's request names; an unknown one is the segment page's ("")."""
    prefix = data.get("prefix", "")
    return prefix if prefix in PREFIXES else ""


def row_from_data(data: QueryDict, row_id: str, *, group: str | None = None, form_prefix: str = "") -> Row:
    prefix = f"{form_prefix}r{row_id}-"
    return Row(
        id=row_id,
        group=group or data.get(prefix + "group") or ROOT,
        kind=data.get(prefix + "kind") or "status",
        negate=data.get(prefix + "negate") == "on",
        values={name: (data.get(prefix + name) or "").strip() for name in SINGLE},
        choices={name: [v for v in data.getlist(prefix + name) if v] for name in MULTI},
    )


def editor_from_data(data: QueryDict, *, prefix: str = "") -> Editor:
    match = data.get(prefix + "match")
    editor = Editor(
        match=match if match in MATCHES else "all",  # type: ignore[arg-type]
        source="json" if data.get(prefix + "source") == "json" else "rows",
        json_text=data.get(prefix + "rules_json", ""),
    )
    groups: dict[str, Group] = {}
    for token in data.getlist(prefix + "item")[:MAX_ITEMS]:
        kind, _, ident = token.partition(":")
        if not ITEM_ID.match(ident):
            continue
        if kind == "g" and ident not in groups:
            group_match = data.get(f"{prefix}g{ident}-match")
            group_match = group_match if group_match in MATCHES else "all"
            groups[ident] = Group(id=ident, match=group_match)  # type: ignore[arg-type]
            editor.items.append(groups[ident])
        elif kind == "r":
            row = row_from_data(data, ident, form_prefix=prefix)
            if row.group in groups:
                groups[row.group].rows.append(row)
            else:
                row.group = ROOT
                editor.items.append(row)
    return editor


# Rows -> tree ---------------------------------------------------------------------------------


def _maybe_int(text: str) -> int | str:
    """An id or a count as an integer when it is one; else the text, so the service names the row."""
    return int(text) if re.fullmatch(r"-?\d{1,18}", text) else text


def _operand(op: str, value: str, value2: str) -> Any:
    if op == "exists":
        return value != "false"
    if op == "within_last":
        return {"days": _maybe_int(value)}
    if op == "between":
        return [value, value2]
    if op == "in":
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def property_value(text: str) -> Any:
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, str | int | float | bool) else text


def _properties(text: str) -> dict[str, Any]:
    pairs = (part.partition("=") for part in text.split(",") if part.strip())
    return {key.strip(): property_value(value.strip()) for key, _, value in pairs}


def row_node(row: Row) -> dict[str, Any]:
    """The leaf a row stands for; empty or odd values pass through for the service to refuse by path."""
    v = row.get
    node: dict[str, Any]
    if row.kind == "attribute":
        node = {"attribute": v("field"), "op": v("op"), "value": _operand(v("op"), v("value"), v("value2"))}
    elif row.kind in ("created_at", "confirmed_at"):
        node = {row.kind: {"op": v("op"), "value": _operand(v("op"), v("value"), v("value2"))}}
    elif row.kind == "status":
        node = {"status": row.choices.get("statuses", [])}
    elif row.kind == "list":
        lists = [_maybe_int(i) for i in row.choices.get("lists", [])]
        node = {"list": lists, "status": v("membership") or "subscribed"}
    elif row.kind == "tag":
        node = {"tag": [_maybe_int(i) for i in row.choices.get("tags", [])]}
    elif row.kind == "event":
        node = {"event": v("event"), "did": v("did") != "no"}
        if v("properties"):
            node["properties"] = _properties(v("properties"))
        if v("at_least"):
            node["at_least"] = _maybe_int(v("at_least"))
        if v("within_days"):
            node["within_days"] = _maybe_int(v("within_days"))
    elif row.kind == "engagement":
        node = {"engagement": v("engagement") or "opened"}
        if node["engagement"] != "never_opened":
            if v("within_days"):
                node["within_days"] = _maybe_int(v("within_days"))
            if v("sequence"):
                node["sequence_id"] = _maybe_int(v("sequence"))
    elif row.kind == "segment":
        node = {"segment": _maybe_int(v("segment"))}
    else:
        node = {}
    return {"not": node} if row.negate else node


def editor_tree(editor: Editor, *, root: str = "rules") -> dict[str, Any]:
    """The tree the rows describe; also records each row's and group's path (under `root`, the field the
    service names in its errors) for the errors."""
    children: list[dict[str, Any]] = []
    for i, item in enumerate(editor.items):
        item.path = f"{root}.{editor.match}[{i}]"
        if isinstance(item, Group):
            for j, row in enumerate(item.rows):
                row.path = f"{item.path}.{item.match}[{j}]"
            children.append({item.match: [row_node(row) for row in item.rows]})
        else:
            children.append(row_node(item))
    return {editor.match: children}


def errors_attach(editor: Editor, details: dict[str, Any]) -> None:
    """Put each `path: messages` of a ValidationFailed beside the row or group whose path is its longest
    prefix; what matches none (say an empty top level) goes to the editor's own errors."""
    targets: list[Row | Group] = [*editor.rows(), *editor.groups()]
    for key, messages in details.items():
        texts = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
        owners = [t for t in targets if t.path and (key == t.path or key.startswith((t.path + ".", t.path + "[")))]
        if not owners:
            editor.errors.extend(f"{key}: {text}" for text in texts)
            continue
        owner = max(owners, key=lambda t: len(t.path))
        rest = key[len(owner.path) :].lstrip(".")
        owner.errors.extend(f"{rest}: {text}" if rest else text for text in texts)


def editor_posted(
    data: QueryDict,
    *,
    prefix: str = "",
    root: str = "rules",
    source: str | None = None,
    parse: Callable[[str], Any] = json.loads,
) -> tuple[Editor, Any]:
    """The editor as posted and the tree to use (from the rows or the JSON text, as `source` or the form
    says); None: the JSON is bad (its error is in `json_errors`)."""
    editor = editor_from_data(data, prefix=prefix)
    editor.source = source or editor.source
    if editor.source == "json":
        try:
            return editor, parse(editor.json_text)
        except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than Python's stack
            editor.json_errors.append(f"Not valid JSON: {error}")
            return editor, None
    tree = editor_tree(editor, root=root)
    editor.json_text = tree_json(tree)
    return editor, tree


def rule_errors_place(editor: Editor, error: ApplicationError) -> None:
    """A service error about the rules: beside its rows (rows mode), else listed under the JSON."""
    details = error.details if isinstance(error.details, dict) else {}
    if not details:
        (editor.json_errors if editor.source == "json" else editor.errors).append(error.message)
    elif editor.source == "json":
        editor.json_errors.extend(f"{key}: {message}" for key, messages in details.items() for message in messages)
    else:
        errors_attach(editor, details)


# Rendering a row ------------------------------------------------------------------------------

OP_LABELS = {
    "eq": "is", "ne": "is not", "contains": "contains", "starts_with": "starts with", "in": "is one of",
    "gt": "greater than / after", "gte": "at least / on or after", "lt": "less than / before",
    "lte": "at most / on or before", "between": "between", "within_last": "in the last N days",
    "exists": "is set or not",
}  # fmt: skip
OP_ORDER = list(OP_LABELS)
DATE_OPS = ["gt", "gte", "lt", "lte", "between", "within_last", "exists"]


def row_widgets(row: Row, field_types: dict[str, str]) -> Row:
    """Choose the operators a row offers (by its field's type) and the value inputs its operator needs."""
    if row.kind == "attribute":
        if row.get("field") not in field_types and field_types and not row.get("field"):
            row.values["field"] = next(iter(field_types))
        row.value_type = field_types.get(row.get("field"), "")
        allowed = ATTRIBUTE_OPS.get(row.value_type, set(OP_ORDER))
        ops = [op for op in OP_ORDER if op in allowed]
    elif row.kind in ("created_at", "confirmed_at"):
        row.value_type = "date"
        ops = DATE_OPS
    else:
        return row
    if row.get("op") not in ops:
        row.values["op"] = ops[0]
    row.ops = [(op, OP_LABELS[op]) for op in ops]
    op = row.values["op"]
    if op == "exists":
        row.widget = "exists"
    elif op == "within_last":
        row.widget = "days"
    elif op == "between":
        row.widget = "between"
    elif op == "in":
        row.widget = "list"
    else:
        row.widget = "bool" if row.value_type == "boolean" else "single"
    return row


def tree_json(tree: Any) -> str:
    return json.dumps(tree, indent=2)
