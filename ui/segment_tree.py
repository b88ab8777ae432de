"""Saved rule tree -> the segment builder's rows (`ui.segment_rules`), for the edit page and the JSON panel's
"Load into the editor". Only trees the rows can post back unchanged are shown as rows; anything beyond
them (groups nested deeper than one level, `not` over a group, an event's date range, engagement by
campaign) raises Unrepresentable and stays editable as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from ui.segment_rules import KINDS, MATCHES, ROOT, Editor, Group, Row, new_id, property_value, tree_json


class Unrepresentable(Exception):
    """The tree uses something the form editor cannot show (it stays editable as JSON)."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list) or value is None:
        raise Unrepresentable("a value the editor cannot show")
    return str(value)


def _op_values(op: Any, value: Any) -> dict[str, str]:
    if op == "exists":
        return {"op": op, "value": "true" if value else "false"}
    if op == "within_last":
        return {"op": op, "value": _text(value["days"])}
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise Unrepresentable("a range the editor cannot show")
        return {"op": op, "value": _text(value[0]), "value2": _text(value[1])}
    if op == "in":
        parts = [_text(v) for v in value]
        if any("," in part for part in parts):
            raise Unrepresentable("a value with a comma in a list")
        return {"op": op, "value": ", ".join(parts)}
    return {"op": _text(op), "value": _text(value)}


def _ids(value: Any) -> list[str]:
    return [_text(v) for v in (value if isinstance(value, list) else [value])]


def _only(node: dict[str, Any], allowed: set[str], what: str) -> None:
    if not set(node) <= allowed:
        raise Unrepresentable(f"{what} with {', '.join(sorted(set(node) - allowed))}")


def _property_text(key: str, value: Any) -> str:
    if isinstance(value, str) and property_value(value) == value:
        shown = value
    else:
        shown = json.dumps(value)
    if any(ch in f"{key}{shown}" for ch in ",="):
        raise Unrepresentable("an event property with a comma or an equals sign")
    return f"{key}={shown}"


def _leaf_row(node: dict[str, Any], row: Row) -> Row:
    kind = next((k for k in KINDS if k in node), None)
    if kind is None:
        raise Unrepresentable("a nested group or a negated group")
    row.kind = kind
    values = row.values
    if kind == "attribute":
        _only(node, {"attribute", "op", "value"}, "a field condition")
        values.update({"field": _text(node["attribute"]), **_op_values(node.get("op"), node.get("value"))})
    elif kind in ("created_at", "confirmed_at"):
        _only(node, {kind}, "a date condition")
        values.update(_op_values(node[kind]["op"], node[kind]["value"]))
    elif kind == "status":
        _only(node, {"status"}, "a status condition")
        row.choices["statuses"] = _ids(node["status"])
    elif kind == "list":
        _only(node, {"list", "status"}, "a list condition")
        row.choices["lists"] = _ids(node["list"])
        values["membership"] = _text(node.get("status", "subscribed"))
    elif kind == "tag":
        _only(node, {"tag"}, "a tag condition")
        row.choices["tags"] = _ids(node["tag"])
    elif kind == "event":
        _only(node, {"event", "did", "properties", "at_least", "within_days"}, "an event condition")
        values.update({"event": _text(node["event"]), "did": "yes" if node.get("did", True) else "no"})
        values["properties"] = ", ".join(_property_text(k, v) for k, v in (node.get("properties") or {}).items())
        for key in ("at_least", "within_days"):
            values[key] = _text(node[key]) if key in node else ""
    elif kind == "engagement":
        _only(node, {"engagement", "within_days", "sequence_id"}, "an engagement condition")
        values["engagement"] = _text(node["engagement"])
        values["within_days"] = _text(node["within_days"]) if "within_days" in node else ""
        values["sequence"] = _text(node["sequence_id"]) if "sequence_id" in node else ""
    else:
        _only(node, {"segment"}, "a segment condition")
        values["segment"] = _text(node["segment"])
    return row


def _row_from_node(node: Any, group: str) -> Row:
    row = Row(id=new_id(), group=group)
    if isinstance(node, dict) and set(node) == {"not"}:
        row.negate, node = True, node["not"]
    if not isinstance(node, dict) or not node:
        raise Unrepresentable("a condition that is not an object")
    return _leaf_row(node, row)


def _group_match(node: Any) -> str | None:
    if isinstance(node, dict) and len(node) == 1 and next(iter(node)) in MATCHES:
        return next(iter(node))
    return None


def editor_from_tree(tree: Any) -> Editor:
    """Rows for a saved tree; Unrepresentable when it goes beyond them (deeper groups, `not` over a group,
    event date ranges, campaign engagement): such a tree is edited as JSON."""
    try:
        match = _group_match(tree)
        children = tree[match] if match else [tree]
        if not isinstance(children, list):
            raise Unrepresentable("a group that is not a list")
        editor = Editor(match=match or "all")
        for child in children:
            inner = _group_match(child)
            if inner is None:
                editor.items.append(_row_from_node(child, ROOT))
                continue
            group = Group(id=new_id(), match=inner)
            if not isinstance(child[inner], list):
                raise Unrepresentable("a group that is not a list")
            group.rows = [_row_from_node(leaf, group.id) for leaf in child[inner]]
            editor.items.append(group)
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise Unrepresentable("a condition the editor cannot read") from error
    editor.json_text = tree_json(tree)
    return editor


def editor_or_json(tree: Any) -> Editor:
    """Rows for a saved tree, or (Unrepresentable) the JSON text with a note saying why."""
    try:
        return editor_from_tree(tree)
    except Unrepresentable as reason:
        note = f"These rules use {reason}, which the form editor cannot show: edit them as JSON below."
        return Editor(source="json", json_text=tree_json(tree), note=note)
