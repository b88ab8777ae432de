"""Segments: a JSON rule tree over subscribers, checked by `segment_validate` and compiled by
`segment_q` into ONE Django `Q` (subqueries and EXISTS, never a Python loop over subscribers).

Every leaf compiles to a two-valued condition (a leaf over a missing attribute or a null date is
false, never SQL NULL), so `not` means exactly "does not match". See docs/subscribers.md, "Segments".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, JSONField, Q, QuerySet, Value
from django.db.models.fields.json import (
    HasKey,
    KeyTextTransform,
    KeyTransform,
    KeyTransformExact,
    KeyTransformGt,
    KeyTransformGte,
    KeyTransformIContains,
    KeyTransformIStartsWith,
    KeyTransformLt,
    KeyTransformLte,
)
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.models import Workspace
from core.errors import Conflict, NotFound, ValidationFailed
from subscribers.models import (
    Event,
    EventType,
    FieldDefinition,
    FieldType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Segment,
    Subscriber,
    SubscriberStatus,
    Tag,
)
from subscribers.services.validation import attribute_coerce

MAX_DEPTH = 6
MAX_NODES = 100
# A saved-segment reference ({"segment": id}) inlines that segment's tree at compile time. Each saved
# tree keeps its own depth and node limits; these bound the whole once references are followed.
MAX_REFERENCE_DEPTH = 3
MAX_INLINED_NODES = 400
MAX_IN_VALUES = 100
MAX_DAYS = 36_500

ATTRIBUTE_OPS: dict[str, set[str]] = {
    FieldType.TEXT: {"eq", "ne", "contains", "starts_with", "in", "exists"},
    FieldType.CHOICE: {"eq", "ne", "contains", "starts_with", "in", "exists"},
    FieldType.NUMBER: {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "exists"},
    FieldType.BOOLEAN: {"eq", "ne", "exists"},
    FieldType.DATE: {"eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "within_last"},
    FieldType.DATETIME: {"eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "within_last"},
}
DATE_OPS = {"gt", "gte", "lt", "lte", "between", "within_last", "exists"}
ENGAGEMENTS = {"opened", "clicked", "never_opened"}
TEXT_LOOKUPS: dict[str, Any] = {
    "exact": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
JSON_LOOKUPS: dict[str, Any] = {
    "exact": KeyTransformExact,
    "gt": KeyTransformGt,
    "gte": KeyTransformGte,
    "lt": KeyTransformLt,
    "lte": KeyTransformLte,
}
LEAF_KEYS = ("attribute", "list", "status", "tag", "created_at", "confirmed_at", "event", "engagement", "segment")


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed.for_field(path, message, code="invalid_segment")


# Errors about a chain of references as a whole: reported as they are at the outermost reference.
CHAIN_ERRORS = {"segment_cycle", "segment_too_deep", "segment_too_large"}


def _chain_error(path: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed.for_field(path, message, code=code)


def _only_message(error: ValidationFailed) -> str:
    details = error.details if isinstance(error.details, dict) else {}
    return next((str(msgs[0]) for msgs in details.values() if msgs), error.message)


def _allowed_keys(node: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    for key in node:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"Unknown key; allowed: {', '.join(sorted(allowed))}.")


def _int(value: Any, path: str, *, minimum: int = 0, maximum: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _fail(path, f"Must be an integer between {minimum} and {maximum}.")
    return value


def _days(value: Any, path: str) -> int:
    if not isinstance(value, Mapping) or set(value) != {"days"}:
        raise _fail(path, 'Must be an object {"days": N}.')
    return _int(value["days"], f"{path}.days", minimum=1, maximum=MAX_DAYS)


def _moment(value: Any, path: str) -> dt.datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        day = parse_date(value) if isinstance(value, str) else None
        if day is None:
            raise _fail(path, "Must be an ISO 8601 date or date and time.")
        parsed = dt.datetime.combine(day, dt.time.min)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _operand(op: str, value: Any, path: str, typed: Callable[[Any, str], Any]) -> Any:
    """The checked, normalized value of a comparison whose op is already known to be allowed; `typed`
    converts one value of the compared field (an attribute's type, a date)."""
    if op == "exists":
        if not isinstance(value, bool):
            raise _fail(path, "Must be true or false.")
        return value
    if op == "within_last":
        return {"days": _days(value, path)}
    if op in {"contains", "starts_with"}:
        if not isinstance(value, str) or not value:
            raise _fail(path, "Must be a non-empty string.")
        return value
    if op == "in":
        if not isinstance(value, list) or not 0 < len(value) <= MAX_IN_VALUES:
            raise _fail(path, f"Must be a list of 1 to {MAX_IN_VALUES} values.")
        return [typed(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(path, "Must be a list [from, to].")
        return [typed(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return typed(value, path)


class _Checker:
    """Walks the tree once: checks it and returns a normalized copy (values coerced to storage form)."""

    def __init__(self, workspace: Workspace, segment: Segment | None = None) -> None:
        self.workspace = workspace
        self.definitions = {d.key: d for d in FieldDefinition.objects.filter(workspace=workspace)}
        self.nodes = 0
        self.inlined_nodes = 0
        # The saved segments being expanded, outermost first: the segment being saved (when it has an
        # id) heads the chain, so an edit that makes it reach itself is caught before it is stored.
        self.chain: list[Segment] = [segment] if segment is not None and segment.pk else []

    def node(self, node: Any, path: str, depth: int) -> dict[str, Any]:
        self.nodes += 1
        self.inlined_nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(path, f"The tree has more than {MAX_NODES} nodes.")
        if self.inlined_nodes > MAX_INLINED_NODES:
            raise _chain_error(
                path, f"With the segments it refers to, the tree has more than {MAX_INLINED_NODES} nodes.",
                "segment_too_large",
            )  # fmt: skip
        if depth > MAX_DEPTH:
            raise _fail(path, f"The tree is nested deeper than {MAX_DEPTH} levels.")
        if not isinstance(node, Mapping) or not node:
            raise _fail(path, "Must be a non-empty object.")
        for group in ("all", "any"):
            if group in node:
                _allowed_keys(node, path, {group})
                children = node[group]
                if not isinstance(children, list) or not children:
                    raise _fail(f"{path}.{group}", "Must be a non-empty list of conditions.")
                return {group: [self.node(c, f"{path}.{group}[{i}]", depth + 1) for i, c in enumerate(children)]}
        if "not" in node:
            _allowed_keys(node, path, {"not"})
            return {"not": self.node(node["not"], f"{path}.not", depth + 1)}
        for kind in LEAF_KEYS:
            if kind in node:
                return getattr(self, f"leaf_{kind}")(node, path)
        raise _fail(path, f"Must contain one of: all, any, not, {', '.join(LEAF_KEYS)}.")

    def leaf_attribute(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {"attribute", "op", "value"})
        key = node["attribute"]
        definition = self.definitions.get(key) if isinstance(key, str) else None
        if definition is None:
            raise _fail(f"{path}.attribute", "Unknown attribute: define it under /api/v1/fields first.")
        op = node.get("op")
        ops = ATTRIBUTE_OPS[definition.type]
        if op not in ops:
            raise _fail(f"{path}.op", f"For a {definition.type} field, must be one of: {', '.join(sorted(ops))}.")
        value = node.get("value")
        vpath = f"{path}.value"
        value = _operand(op, value, vpath, lambda v, p: self.typed(definition, v, p))
        return {"attribute": key, "op": op, "value": value, "type": definition.type}

    @staticmethod
    def typed(definition: FieldDefinition, value: Any, path: str) -> Any:
        if value is None:
            raise _fail(path, "May not be null.")
        try:
            return attribute_coerce(definition, value, path)
        except ValidationFailed as error:
            raise _fail(path, error.message.split(": ", 1)[-1]) from None

    def leaf_status(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {"status"})
        value = node["status"]
        values = value if isinstance(value, list) else [value]
        if not values or any(v not in SubscriberStatus.values for v in values):
            raise _fail(f"{path}.status", f"Must be one of (or a list of): {', '.join(SubscriberStatus.values)}.")
        return {"status": sorted(set(values))}

    def ids(self, value: Any, path: str, model: type[MailingList] | type[Tag]) -> list[int]:
        values = value if isinstance(value, list) else [value]
        if not 0 < len(values) <= MAX_IN_VALUES:
            raise _fail(path, f"Must be an id or a list of 1 to {MAX_IN_VALUES} ids.")
        for i, v in enumerate(values):
            _int(v, f"{path}[{i}]" if isinstance(value, list) else path, minimum=1, maximum=2**62)
        found = set(model.objects.filter(workspace=self.workspace, pk__in=values).values_list("pk", flat=True))
        for i, v in enumerate(values):
            if v not in found:
                raise _fail(f"{path}[{i}]" if isinstance(value, list) else path, "Not found in this workspace.")
        return sorted(set(values))

    def leaf_list(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {"list", "status"})
        ids = self.ids(node["list"], f"{path}.list", MailingList)
        status = node.get("status", MembershipStatus.SUBSCRIBED)
        if status not in MembershipStatus.values:
            raise _fail(f"{path}.status", f"Must be one of: {', '.join(MembershipStatus.values)}.")
        return {"list": ids, "status": status}

    def leaf_tag(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {"tag"})
        return {"tag": self.ids(node["tag"], f"{path}.tag", Tag)}

    def leaf_date(self, kind: str, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {kind})
        spec = node[kind]
        spath = f"{path}.{kind}"
        if not isinstance(spec, Mapping):
            raise _fail(spath, 'Must be an object {"op": ..., "value": ...}.')
        _allowed_keys(spec, spath, {"op", "value"})
        op = spec.get("op")
        if op not in DATE_OPS:
            raise _fail(f"{spath}.op", f"Must be one of: {', '.join(sorted(DATE_OPS))}.")
        value = spec.get("value")
        vpath = f"{spath}.value"
        value = _operand(op, value, vpath, lambda v, p: _moment(v, p).isoformat())
        return {kind: {"op": op, "value": value}}

    def leaf_created_at(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        return self.leaf_date("created_at", node, path)

    def leaf_confirmed_at(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        return self.leaf_date("confirmed_at", node, path)

    def leaf_event(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {"event", "did", "properties", "at_least", "within_days", "between"})
        name = node["event"]
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise _fail(f"{path}.event", "Must be an event name of 1 to 100 characters.")
        did = node.get("did", True)
        if not isinstance(did, bool):
            raise _fail(f"{path}.did", "Must be true or false.")
        properties = node.get("properties", {})
        if not isinstance(properties, Mapping) or len(properties) > 10:
            raise _fail(f"{path}.properties", "Must be an object of at most 10 properties.")
        for key, value in properties.items():
            if not key or "__" in key or not isinstance(value, str | int | float | bool) or value is None:
                raise _fail(f"{path}.properties.{key}", "Must be a text, number or boolean value.")
        out: dict[str, Any] = {"event": name, "did": did, "properties": dict(properties)}
        out["at_least"] = _int(node.get("at_least", 1), f"{path}.at_least", minimum=1, maximum=10**6)
        if "within_days" in node and "between" in node:
            raise _fail(f"{path}.between", "Give within_days or between, not both.")
        if "within_days" in node:
            out["within_days"] = _int(node["within_days"], f"{path}.within_days", minimum=1, maximum=MAX_DAYS)
        if "between" in node:
            value = node["between"]
            if not isinstance(value, list) or len(value) != 2:
                raise _fail(f"{path}.between", "Must be a list [from, to].")
            out["between"] = [_moment(v, f"{path}.between[{i}]").isoformat() for i, v in enumerate(value)]
        return out

    def leaf_segment(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        """A saved segment by id: checked here (its stored tree too, references followed) and inlined."""
        _allowed_keys(node, path, {"segment"})
        spath = f"{path}.segment"
        segment_id = _int(node["segment"], spath, minimum=1, maximum=2**62)
        segment = Segment.objects.filter(workspace=self.workspace, pk=segment_id).first()
        if segment is None:
            raise _fail(spath, "Not found in this workspace.")
        names = " -> ".join(f"'{s.name}'" for s in [*self.chain, segment])
        if any(s.pk == segment.pk for s in self.chain):
            raise _chain_error(spath, f"Circular reference: {names}.", "segment_cycle")
        if len(self.chain) >= MAX_REFERENCE_DEPTH:
            raise _chain_error(
                spath, f"Segments refer to segments more than {MAX_REFERENCE_DEPTH} levels deep: {names}.",
                "segment_too_deep",
            )  # fmt: skip
        # The referenced tree is checked with its own depth and node limits; an error inside it is
        # reported at this reference, with the inner path in the message.
        saved_nodes = self.nodes
        self.chain.append(segment)
        self.nodes = 0
        try:
            tree = self.node(segment.rules, "rules", 1)
        except ValidationFailed as error:
            if error.code in CHAIN_ERRORS:  # about the whole chain: shown at the outermost reference
                raise _chain_error(spath, _only_message(error), error.code) from None
            inner = "; ".join(f"{key}: {'; '.join(map(str, msgs))}" for key, msgs in (error.details or {}).items())
            raise _fail(spath, f"Segment '{segment.name}' is invalid: {inner or error.message}") from None
        finally:
            self.chain.pop()
            self.nodes = saved_nodes
        return {"segment": segment.pk, "tree": tree}

    def leaf_engagement(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        _allowed_keys(node, path, {"engagement", "within_days", "sequence_id", "campaign_id"})
        kind = node["engagement"]
        if kind not in ENGAGEMENTS:
            raise _fail(f"{path}.engagement", f"Must be one of: {', '.join(sorted(ENGAGEMENTS))}.")
        out: dict[str, Any] = {"engagement": kind}
        if kind == "never_opened" and len(node) > 1:
            raise _fail(path, "never_opened takes no other keys.")
        if "within_days" in node:
            out["within_days"] = _int(node["within_days"], f"{path}.within_days", minimum=1, maximum=MAX_DAYS)
        for key in ("sequence_id", "campaign_id"):
            if key in node:
                out[key] = _int(node[key], f"{path}.{key}", minimum=1, maximum=2**62)
        return out


def segment_validate(
    *, workspace: Workspace, tree: Any, field: str = "rules", segment: Segment | None = None
) -> dict[str, Any]:
    """Check `tree` for `workspace`; return it normalized. Raises ValidationFailed naming the bad node,
    e.g. `rules.all[2].op`; list, tag and segment ids must belong to `workspace`.

    A `{"segment": id}` leaf comes back as `{"segment": id, "tree": <that segment's normalized tree>}`
    (references followed). Pass `segment` when `tree` is to become that saved segment's rules: a
    reference chain that leads back to it is a cycle, refused naming the chain."""
    return _Checker(workspace, segment).node(tree, field, 1)


def _attribute_q(node: Mapping[str, Any], now: dt.datetime) -> Q:
    key, op, value, kind = node["attribute"], node["op"], node["value"], node["type"]
    present = Q(HasKey(F("attributes"), key))
    if op == "exists":
        return present if value else ~present
    json_value = KeyTransform(key, "attributes")
    text_value = KeyTextTransform(key, "attributes")
    is_date = kind in {FieldType.DATE, FieldType.DATETIME}
    # Dates are stored as ISO text (dates YYYY-MM-DD, date-times in UTC), so text order is time order.

    def lookup(name: str, rhs: Any) -> Q:
        if is_date:  # plain text comparison: the JSON lookups would parse the right side as JSON
            return Q(TEXT_LOOKUPS[name](text_value, rhs))
        return Q(JSON_LOOKUPS[name](json_value, Value(rhs, output_field=JSONField())))

    if op == "within_last":
        since = now - dt.timedelta(days=value["days"])
        if kind == FieldType.DATE:
            condition = lookup("gte", since.date().isoformat()) & lookup("lte", now.date().isoformat())
        else:
            condition = lookup("gte", since.isoformat()) & lookup("lte", now.isoformat())
    elif op == "contains":
        condition = Q(KeyTransformIContains(text_value, value))
    elif op == "starts_with":
        condition = Q(KeyTransformIStartsWith(text_value, value))
    elif op == "in":
        condition = Q()
        for item in value:
            condition |= lookup("exact", item)
    elif op == "between":
        condition = lookup("gte", value[0]) & lookup("lte", value[1])
    elif op == "ne":
        return present & ~lookup("exact", value)
    else:
        condition = lookup({"eq": "exact"}.get(op, op), value)
    return present & condition


def _date_q(column: str, spec: Mapping[str, Any], now: dt.datetime) -> Q:
    op, value = spec["op"], spec["value"]
    present = Q(**{f"{column}__isnull": False})
    if op == "exists":
        return present if value else ~present
    if op == "within_last":
        return present & Q(**{f"{column}__gte": now - dt.timedelta(days=value["days"]), f"{column}__lte": now})
    if op == "between":
        return present & Q(**{f"{column}__gte": _moment(value[0], ""), f"{column}__lte": _moment(value[1], "")})
    return present & Q(**{f"{column}__{op}": _moment(value, "")})


def _events(workspace: Workspace) -> QuerySet[Event]:
    return Event.objects.filter(workspace=workspace, subscriber__isnull=False)


def _event_q(workspace: Workspace, node: Mapping[str, Any], now: dt.datetime) -> Q:
    events = _events(workspace).filter(name=node["event"])
    for key, value in node["properties"].items():
        prop = KeyTransform(key, "properties")
        events = events.filter(KeyTransformExact(prop, Value(value, output_field=JSONField())))
    if "within_days" in node:
        events = events.filter(occurred_at__gte=now - dt.timedelta(days=node["within_days"]), occurred_at__lte=now)
    if "between" in node:
        events = events.filter(
            occurred_at__gte=_moment(node["between"][0], ""), occurred_at__lte=_moment(node["between"][1], "")
        )
    if node["at_least"] > 1:
        counted = events.order_by().values("subscriber_id").annotate(n=Count("id")).filter(n__gte=node["at_least"])
        condition = Q(pk__in=counted.values("subscriber_id"))
    else:
        condition = Q(pk__in=events.order_by().values("subscriber_id"))
    return condition if node["did"] else ~condition


def _engagement_q(workspace: Workspace, node: Mapping[str, Any], now: dt.datetime) -> Q:
    if node["engagement"] == "never_opened":
        return ~Q(pk__in=_events(workspace).filter(type=EventType.OPENED).order_by().values("subscriber_id"))
    events = _events(workspace).filter(type=node["engagement"])
    if "within_days" in node:
        events = events.filter(occurred_at__gte=now - dt.timedelta(days=node["within_days"]), occurred_at__lte=now)
    for key in ("sequence_id", "campaign_id"):
        if key in node:
            events = events.filter(**{key: node[key]})
    return Q(pk__in=events.order_by().values("subscriber_id"))


def _compile(workspace: Workspace, node: Mapping[str, Any], now: dt.datetime) -> Q:
    if "all" in node:
        result = Q()
        for child in node["all"]:
            result &= _compile(workspace, child, now)
        return result
    if "any" in node:
        result = _compile(workspace, node["any"][0], now)
        for child in node["any"][1:]:
            result |= _compile(workspace, child, now)
        return result
    if "not" in node:
        return ~_compile(workspace, node["not"], now)
    if "attribute" in node:
        return _attribute_q(node, now)
    if "list" in node:
        members = ListMembership.objects.filter(
            mailing_list__workspace=workspace, mailing_list_id__in=node["list"], status=node["status"]
        )
        return Q(pk__in=members.values("subscriber_id"))
    if "status" in node:
        return Q(status__in=node["status"])
    if "tag" in node:
        through = Subscriber.tags.through.objects.filter(tag__workspace=workspace, tag_id__in=node["tag"])
        return Q(pk__in=through.values("subscriber_id"))
    if "created_at" in node:
        return _date_q("created_at", node["created_at"], now)
    if "confirmed_at" in node:
        return _date_q("confirmed_at", node["confirmed_at"], now)
    if "event" in node:
        return _event_q(workspace, node, now)
    if "segment" in node:
        return _compile(workspace, node["tree"], now)
    return _engagement_q(workspace, node, now)


def segment_q(*, workspace: Workspace, tree: Any, now: dt.datetime | None = None) -> Q:
    """The ONE filter of the subscribers matching `tree` (validated here) in `workspace`."""
    normalized = segment_validate(workspace=workspace, tree=tree)
    return _compile(workspace, normalized, now or timezone.now())


def segment_subscribers(*, workspace: Workspace, tree: Any, now: dt.datetime | None = None) -> QuerySet[Subscriber]:
    """The workspace's subscribers that match `tree`: one query, to count, page or iterate."""
    return Subscriber.objects.filter(workspace=workspace).filter(segment_q(workspace=workspace, tree=tree, now=now))


def segment_count(*, workspace: Workspace, tree: Any, now: dt.datetime | None = None) -> int:
    return segment_subscribers(workspace=workspace, tree=tree, now=now).count()


def segment_preview(
    *, workspace: Workspace, tree: Any, limit: int = 20, now: dt.datetime | None = None
) -> list[Subscriber]:
    """The first `limit` matching subscribers, newest first (the subscribers' usual order)."""
    return list(segment_subscribers(workspace=workspace, tree=tree, now=now)[: max(0, min(limit, 100))])


def _segment_save(segment: Segment) -> Segment:
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError:
        raise Conflict(f"A segment named '{segment.name}' exists.", code="segment_exists") from None
    return segment


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 200:
        raise ValidationFailed.for_field("name", "Must be 1 to 200 characters.")
    return value.strip()


def segment_create(*, workspace: Workspace, name: str, rules: Any, description: str = "") -> Segment:
    segment = Segment(
        workspace=workspace,
        name=_name(name),
        description=description,
        rules=rules,
    )
    segment_validate(workspace=workspace, tree=rules)
    return _segment_save(segment)


def segment_update(
    *,
    workspace: Workspace,
    segment: Segment,
    name: str | None = None,
    rules: Any = None,
    description: str | None = None,
) -> Segment:
    if segment.workspace_id != workspace.pk:
        raise NotFound("No such segment.")
    if name is not None:
        segment.name = _name(name)
    if description is not None:
        segment.description = description
    if rules is not None:
        segment_validate(workspace=workspace, tree=rules, segment=segment)
        segment.rules = rules
    return _segment_save(segment)


# Who uses a segment ----------------------------------------------------------------------------

# A checker answers, for one segment, human descriptions of what uses it ("campaign 'Black Friday'").
# Higher apps register theirs from AppConfig.ready() (campaigns in sequences.apps; workflows later),
# so this layer never imports them.
SegmentUsage = Callable[[Segment], list[str]]
_segment_usages: list[SegmentUsage] = []


def segment_usage_register(checker: SegmentUsage) -> SegmentUsage:
    """Register `checker(segment) -> list[str]`; a segment any checker reports cannot be deleted."""
    if checker not in _segment_usages:
        _segment_usages.append(checker)
    return checker


def _refers_to(tree: Any, segment_id: int) -> bool:
    if isinstance(tree, Mapping):
        if tree.get("segment") == segment_id and not isinstance(tree.get("segment"), bool):
            return True
        return any(_refers_to(child, segment_id) for child in tree.values())
    if isinstance(tree, list):
        return any(_refers_to(child, segment_id) for child in tree)
    return False


def _segments_referring(segment: Segment) -> list[str]:
    # A workspace keeps tens of segments, not millions: walking their trees here is cheap, and it
    # works on every database (no JSON path queries).
    others = Segment.objects.filter(workspace_id=segment.workspace_id).exclude(pk=segment.pk).order_by("name")
    return [f"segment '{other.name}'" for other in others.only("name", "rules") if _refers_to(other.rules, segment.pk)]


def segment_usages(*, segment: Segment) -> list[str]:
    """What uses the segment: other segments that refer to it, then every registered checker's answer."""
    found = _segments_referring(segment)
    for checker in list(_segment_usages):
        found.extend(checker(segment))
    return found


def segment_delete(*, workspace: Workspace, segment: Segment) -> None:
    """Delete a segment nothing uses; else 409 `segment_in_use` naming the users (details.used_by)."""
    if segment.workspace_id != workspace.pk:
        raise NotFound("No such segment.")
    with transaction.atomic():
        # The row lock makes the check and the delete one step against a campaign saved meanwhile:
        # adding a reference to the row takes a key-share lock on it, which waits for this one.
        locked = Segment.objects.select_for_update().filter(workspace=workspace, pk=segment.pk).first()
        if locked is None:
            raise NotFound("No such segment.")
        users = segment_usages(segment=locked)
        if users:
            shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            raise Conflict(
                f"The segment is used by {shown}. Remove it from them first.",
                code="segment_in_use",
                details={"used_by": users},
            )
        locked.delete()
