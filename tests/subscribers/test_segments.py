"""Segments: each leaf, nesting, validation paths, tenancy, and a hypothesis test against a Python reference."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ValidationFailed
from subscribers.models import Event, EventType, FieldType, ListMembership, MembershipStatus, Segment
from subscribers.segments import segment_count, segment_preview, segment_subscribers, segment_validate
from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory, TagFactory

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def emails(workspace, tree):
    return sorted(s.email for s in segment_subscribers(workspace=workspace, tree=tree, now=NOW))


@pytest.fixture
def data(workspace, other_workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    FieldDefinitionFactory(workspace=workspace, key="score", type=FieldType.NUMBER)
    FieldDefinitionFactory(workspace=workspace, key="vip", type=FieldType.BOOLEAN)
    FieldDefinitionFactory(workspace=workspace, key="born", type=FieldType.DATE)
    a = SubscriberFactory(
        workspace=workspace,
        email="a@x.org",
        attributes={"plan": "Pro", "score": 10, "vip": True, "born": "2026-05-20"},
        created_at=NOW,
    )
    b = SubscriberFactory(
        workspace=workspace,
        email="b@x.org",
        attributes={"plan": "basic", "score": 2.5},
        status="unsubscribed",
        confirmed_at=NOW - dt.timedelta(days=3),
        created_at=NOW - dt.timedelta(days=100),
    )
    c = SubscriberFactory(workspace=workspace, email="c@x.org", attributes={}, created_at=NOW - dt.timedelta(days=10))
    x = SubscriberFactory(workspace=other_workspace, email="x@x.org", attributes={"plan": "Pro", "score": 10})
    tag, other_tag = TagFactory(workspace=workspace), TagFactory(workspace=other_workspace)
    a.tags.add(tag)
    x.tags.add(other_tag)
    lst, other_list = MailingListFactory(workspace=workspace), MailingListFactory(workspace=other_workspace)
    ListMembership.objects.create(mailing_list=lst, subscriber=b)
    ListMembership.objects.create(mailing_list=lst, subscriber=c, status=MembershipStatus.UNSUBSCRIBED)
    ListMembership.objects.create(mailing_list=other_list, subscriber=x)
    for when in (NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=40)):
        Event.objects.create(workspace=workspace, subscriber=c, name="order", properties={"sku": "A"}, occurred_at=when)
    Event.objects.create(workspace=workspace, subscriber=a, name="order", properties={"sku": "B"}, occurred_at=NOW)
    Event.objects.create(
        workspace=workspace,
        subscriber=b,
        type=EventType.OPENED,
        name="opened",
        sequence_id=7,
        occurred_at=NOW - dt.timedelta(days=2),
    )
    Event.objects.create(
        workspace=workspace,
        subscriber=a,
        type=EventType.CLICKED,
        name="clicked",
        campaign_id=3,
        occurred_at=NOW - dt.timedelta(days=20),
    )
    Event.objects.create(workspace=other_workspace, subscriber=x, name="order", occurred_at=NOW)
    return {"tag": tag, "other_tag": other_tag, "list": lst, "other_list": other_list}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ({"attribute": "plan", "op": "eq", "value": "Pro"}, ["a@x.org"]),
        ({"attribute": "plan", "op": "ne", "value": "Pro"}, ["b@x.org"]),
        ({"not": {"attribute": "plan", "op": "eq", "value": "Pro"}}, ["b@x.org", "c@x.org"]),
        ({"attribute": "plan", "op": "contains", "value": "as"}, ["b@x.org"]),
        ({"attribute": "plan", "op": "starts_with", "value": "pr"}, ["a@x.org"]),
        ({"attribute": "plan", "op": "in", "value": ["basic", "Pro"]}, ["a@x.org", "b@x.org"]),
        ({"attribute": "score", "op": "gt", "value": 3}, ["a@x.org"]),
        ({"attribute": "score", "op": "lte", "value": "2.5"}, ["b@x.org"]),
        ({"attribute": "score", "op": "between", "value": [2, 3]}, ["b@x.org"]),
        ({"not": {"attribute": "score", "op": "gt", "value": 3}}, ["b@x.org", "c@x.org"]),
        ({"attribute": "vip", "op": "eq", "value": True}, ["a@x.org"]),
        ({"attribute": "score", "op": "exists", "value": False}, ["c@x.org"]),
        ({"attribute": "born", "op": "within_last", "value": {"days": 30}}, ["a@x.org"]),
        ({"attribute": "born", "op": "lt", "value": "2026-05-01"}, []),
        ({"status": "unsubscribed"}, ["b@x.org"]),
        ({"status": ["active", "unsubscribed"]}, ["a@x.org", "b@x.org", "c@x.org"]),
        ({"created_at": {"op": "within_last", "value": {"days": 30}}}, ["a@x.org", "c@x.org"]),
        ({"created_at": {"op": "lt", "value": "2026-03-01"}}, ["b@x.org"]),
        ({"confirmed_at": {"op": "exists", "value": True}}, ["b@x.org"]),
        ({"not": {"confirmed_at": {"op": "gte", "value": "2026-01-01"}}}, ["a@x.org", "c@x.org"]),
        ({"event": "order"}, ["a@x.org", "c@x.org"]),
        ({"event": "order", "did": False}, ["b@x.org"]),
        ({"event": "order", "at_least": 2}, ["c@x.org"]),
        ({"event": "order", "at_least": 2, "within_days": 30}, []),
        ({"event": "order", "properties": {"sku": "B"}}, ["a@x.org"]),
        ({"event": "order", "between": ["2026-04-01", "2026-04-30"]}, ["c@x.org"]),
        ({"engagement": "opened", "within_days": 7}, ["b@x.org"]),
        ({"engagement": "opened", "sequence_id": 8}, []),
        ({"engagement": "clicked", "campaign_id": 3}, ["a@x.org"]),
        ({"engagement": "clicked", "within_days": 7}, []),
        ({"engagement": "never_opened"}, ["a@x.org", "c@x.org"]),
        ({"any": [{"status": "unsubscribed"}, {"event": "order", "at_least": 2}]}, ["b@x.org", "c@x.org"]),
        ({"all": [{"event": "order"}, {"not": {"attribute": "plan", "op": "exists", "value": True}}]}, ["c@x.org"]),
    ],
)
def test_leaves_and_nesting(workspace, data, tree, expected):
    assert emails(workspace, tree) == expected


@pytest.mark.django_db
def test_lists_and_tags_are_scoped(workspace, other_workspace, data):
    assert emails(workspace, {"tag": data["tag"].pk}) == ["a@x.org"]
    assert emails(workspace, {"tag": [data["tag"].pk]}) == ["a@x.org"]
    assert emails(workspace, {"list": data["list"].pk}) == ["b@x.org"]
    assert emails(workspace, {"list": data["list"].pk, "status": "unsubscribed"}) == ["c@x.org"]
    # Another workspace's tags and lists are refused, by path.
    with pytest.raises(ValidationFailed) as error:
        segment_validate(workspace=workspace, tree={"all": [{"status": "active"}, {"tag": [data["other_tag"].pk]}]})
    assert error.value.details == {"rules.all[1].tag[0]": ["Not found in this workspace."]}
    with pytest.raises(ValidationFailed):
        segment_validate(workspace=workspace, tree={"list": data["other_list"].pk})
    # The other workspace's subscriber never matches, even on a rule that matches it there.
    assert segment_count(workspace=workspace, tree={"attribute": "plan", "op": "eq", "value": "Pro"}, now=NOW) == 1
    assert [s.email for s in segment_preview(workspace=workspace, tree={"status": "active"}, limit=1, now=NOW)] == [
        "c@x.org"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ([], "rules"),
        ({}, "rules"),
        ({"all": []}, "rules.all"),
        (
            {"all": [{"status": "active"}, {"status": "active"}, {"attribute": "plan", "op": "gt", "value": 1}]},
            "rules.all[2].op",
        ),
        ({"any": [{"attribute": "nope", "op": "eq", "value": 1}]}, "rules.any[0].attribute"),
        ({"attribute": "score", "op": "eq", "value": "many"}, "rules.value"),
        ({"attribute": "score", "op": "between", "value": [1, "x"]}, "rules.value[1]"),
        ({"attribute": "born", "op": "within_last", "value": {"days": 0}}, "rules.value.days"),
        ({"not": {"status": "sleeping"}}, "rules.not.status"),
        ({"status": "active", "extra": 1}, "rules.extra"),
        ({"created_at": {"op": "gt", "value": "yesterday"}}, "rules.created_at.value"),
        ({"event": "order", "at_least": 0}, "rules.at_least"),
        ({"event": "order", "properties": {"a": [1]}}, "rules.properties.a"),
        ({"engagement": "bored"}, "rules.engagement"),
        ({"tag": "1"}, "rules.tag"),
        ({"bogus": 1}, "rules"),
    ],
)
def test_validation_points_at_the_bad_node(workspace, data, tree, path):
    with pytest.raises(ValidationFailed) as error:
        segment_validate(workspace=workspace, tree=tree)
    assert list(error.value.details) == [path]


@pytest.mark.django_db
def test_depth_and_size_limits(workspace):
    deep: dict = {"status": "active"}
    for _ in range(7):
        deep = {"not": deep}
    with pytest.raises(ValidationFailed, match="deeper"):
        segment_validate(workspace=workspace, tree=deep)
    with pytest.raises(ValidationFailed, match="nodes"):
        segment_validate(workspace=workspace, tree={"any": [{"status": "active"}] * 101})


# --- hypothesis: the compiled query equals a plain-Python reference evaluator -------------------------


def reference(node, sub, saved=()):
    """`sub`: dict with status, attributes, tags (indexes), lists (index -> status), events [(name, day)];
    `saved`: the saved segments' trees, by the index a {"segment": i} leaf names."""
    if "all" in node:
        return all(reference(c, sub, saved) for c in node["all"])
    if "any" in node:
        return any(reference(c, sub, saved) for c in node["any"])
    if "not" in node:
        return not reference(node["not"], sub, saved)
    if "segment" in node:
        return reference(saved[node["segment"]], sub, saved)
    if "tag" in node:
        return node["tag"] in sub["tags"]
    if "list" in node:
        return sub["lists"].get(node["list"]) == node.get("status", "subscribed")
    if "status" in node:
        return sub["status"] == node["status"]
    if "event" in node:
        count = sum(
            1
            for name, day in sub["events"]
            # An event `day` days and an hour ago is within the last N days only when day < N.
            if name == node["event"] and (day < node["within_days"] if "within_days" in node else True)
        )
        return (count >= node.get("at_least", 1)) == node.get("did", True)
    attrs, key, op, value = sub["attributes"], node["attribute"], node["op"], node["value"]
    if op == "exists":
        return (key in attrs) == value
    if key not in attrs:
        return False
    have = attrs[key]
    return {
        "eq": lambda: have == value,
        "ne": lambda: have != value,
        "gt": lambda: have > value,
        "lte": lambda: have <= value,
        "between": lambda: value[0] <= have <= value[1],
        "in": lambda: have in value,
        "contains": lambda: value.lower() in have.lower(),
        "starts_with": lambda: have.lower().startswith(value.lower()),
    }[op]()


words = st.sampled_from(["ab", "Abc", "b", "ca"])
numbers = st.integers(-3, 3) | st.sampled_from([0.5, -1.5])
leaves = st.one_of(
    st.builds(
        lambda o, v: {"attribute": "n", "op": o, "value": v}, st.sampled_from(["eq", "ne", "gt", "lte"]), numbers
    ),
    st.builds(lambda a, b: {"attribute": "n", "op": "between", "value": [a, b]}, numbers, numbers),
    st.builds(
        lambda o, v: {"attribute": "t", "op": o, "value": v},
        st.sampled_from(["eq", "ne", "contains", "starts_with"]),
        words,
    ),
    st.builds(lambda v: {"attribute": "t", "op": "in", "value": v}, st.lists(words, min_size=1, max_size=2)),
    st.builds(lambda k, v: {"attribute": k, "op": "exists", "value": v}, st.sampled_from("nt"), st.booleans()),
    st.builds(lambda s: {"status": s}, st.sampled_from(["active", "unsubscribed"])),
    st.builds(lambda i: {"tag": i}, st.integers(0, 1)),
    st.builds(lambda i, s: {"list": i, "status": s}, st.integers(0, 1), st.sampled_from(["subscribed", "pending"])),
    st.builds(
        lambda n, did, k, d: {"event": n, "did": did, "at_least": k, **({"within_days": d} if d else {})},
        st.sampled_from(["e1", "e2"]),
        st.booleans(),
        st.integers(1, 3),
        st.sampled_from([None, 5]),
    ),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=6,
)


def _with(extra_leaves, max_leaves):
    return st.recursive(
        leaves | extra_leaves,
        lambda children: st.one_of(
            st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda c: {"not": c}, children),
        ),
        max_leaves=max_leaves,
    )


# Saved segment 0 has no references; saved segment 1 may refer to segment 0; the tree under test may
# refer to either (a reference to a reference is followed).
saved_trees = st.tuples(trees, _with(st.just({"segment": 0}), 4))
trees_with_references = _with(st.builds(lambda i: {"segment": i}, st.integers(0, 1)), 6)
subscribers = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["active", "unsubscribed"]),
            "attributes": st.fixed_dictionaries({}, optional={"n": numbers, "t": words}),
            "tags": st.sets(st.integers(0, 1)),
            "lists": st.dictionaries(st.integers(0, 1), st.sampled_from(["subscribed", "pending", "unsubscribed"])),
            "events": st.lists(st.tuples(st.sampled_from(["e1", "e2"]), st.integers(0, 9)), max_size=4),
        }
    ),
    max_size=6,
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subs=subscribers, tree=trees_with_references, saved=saved_trees)
def test_query_matches_reference(workspace, other_workspace, subs, tree, saved):
    with transaction.atomic():
        FieldDefinitionFactory(workspace=workspace, key="n", type=FieldType.NUMBER)
        FieldDefinitionFactory(workspace=workspace, key="t", type=FieldType.TEXT)
        tags = [TagFactory(workspace=workspace) for _ in range(2)]
        lists = [MailingListFactory(workspace=workspace) for _ in range(2)]
        # A twin in another workspace with everything: it must never match.
        twin = SubscriberFactory(workspace=other_workspace, attributes={"n": 1, "t": "ab"})
        Event.objects.create(workspace=other_workspace, subscriber=twin, name="e1", occurred_at=NOW)
        expected = set()
        for i, sub in enumerate(subs):
            row = SubscriberFactory(
                workspace=workspace, email=f"s{i}@x.org", status=sub["status"], attributes=sub["attributes"]
            )
            row.tags.set([tags[t] for t in sub["tags"]])
            for index, status in sub["lists"].items():
                ListMembership.objects.create(mailing_list=lists[index], subscriber=row, status=status)
            for name, day in sub["events"]:
                Event.objects.create(
                    workspace=workspace, subscriber=row, name=name, occurred_at=NOW - dt.timedelta(days=day, hours=1)
                )
            if reference(tree, sub, saved):
                expected.add(f"s{i}@x.org")
        saved_segments: list[Segment] = []

        def ids(node):
            if "segment" in node:
                return {"segment": saved_segments[node["segment"]].pk}
            if "tag" in node:
                return {"tag": tags[node["tag"]].pk}
            if "list" in node:
                return {**node, "list": lists[node["list"]].pk}
            for group in ("all", "any"):
                if group in node:
                    return {group: [ids(c) for c in node[group]]}
            if "not" in node:
                return {"not": ids(node["not"])}
            return node

        for n, saved_tree in enumerate(saved):
            saved_segments.append(Segment.objects.create(workspace=workspace, name=f"saved{n}", rules=ids(saved_tree)))
        assert set(emails(workspace, ids(tree))) == expected, (
            tree,
            saved,
            [(s["status"], s["events"]) for s in subs],
        )
        transaction.set_rollback(True)


# --- hypothesis: relative dates and engagement against a reference ---------------------------------
# Every moment is NOW minus whole days and an hour (or, for date attributes, NOW's date minus whole
# days), so "within the last N days" has one exact answer: day < N for moments, 0 <= day <= N for
# dates (a date attribute is compared by calendar date, today included).


def timed_reference(node, sub):
    """`sub`: created (day), confirmed (day or None), born (day or None: the date attribute `d`),
    mail [(type, day, campaign or None)] of opened / clicked events."""
    if "all" in node:
        return all(timed_reference(c, sub) for c in node["all"])
    if "any" in node:
        return any(timed_reference(c, sub) for c in node["any"])
    if "not" in node:
        return not timed_reference(node["not"], sub)
    for column in ("created_at", "confirmed_at"):
        if column in node:
            day = sub["created" if column == "created_at" else "confirmed"]
            spec = node[column]
            if spec["op"] == "exists":
                return (day is not None) == spec["value"]
            return day is not None and day < spec["value"]["days"]
    if "attribute" in node:
        day = sub["born"]
        if node["op"] == "exists":
            return (day is not None) == node["value"]
        return day is not None and 0 <= day <= node["value"]["days"]
    if node["engagement"] == "never_opened":
        return not any(kind == "opened" for kind, _, _ in sub["mail"])
    return any(
        kind == node["engagement"]
        and (day < node["within_days"] if "within_days" in node else True)
        and (campaign == node["campaign_id"] if "campaign_id" in node else True)
        for kind, day, campaign in sub["mail"]
    )


some_days = st.sampled_from([1, 3, 7])
timed_leaves = st.one_of(
    st.builds(
        lambda c, d: {c: {"op": "within_last", "value": {"days": d}}},
        st.sampled_from(["created_at", "confirmed_at"]),
        some_days,
    ),
    st.builds(lambda b: {"confirmed_at": {"op": "exists", "value": b}}, st.booleans()),
    st.builds(lambda d: {"attribute": "d", "op": "within_last", "value": {"days": d}}, some_days),
    st.builds(lambda b: {"attribute": "d", "op": "exists", "value": b}, st.booleans()),
    st.builds(
        lambda kind, d, c: {
            "engagement": kind,
            **({"within_days": d} if d else {}),
            **({"campaign_id": c} if c else {}),
        },
        st.sampled_from(["opened", "clicked"]),
        st.sampled_from([None, 2, 5]),
        st.sampled_from([None, 1, 2]),
    ),
    st.just({"engagement": "never_opened"}),
)
timed_trees = st.recursive(
    timed_leaves,
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=5,
)
day = st.integers(0, 9)
timed_subscribers = st.lists(
    st.fixed_dictionaries(
        {
            "created": day,
            "confirmed": st.none() | day,
            "born": st.none() | st.integers(-2, 9),
            "mail": st.lists(
                st.tuples(st.sampled_from(["opened", "clicked"]), day, st.sampled_from([None, 1, 2])), max_size=3
            ),
        }
    ),
    max_size=6,
)


@pytest.mark.django_db
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subs=timed_subscribers, tree=timed_trees)
def test_dates_and_engagement_match_reference(workspace, other_workspace, subs, tree):
    with transaction.atomic():
        FieldDefinitionFactory(workspace=workspace, key="d", type=FieldType.DATE)
        # A twin in another workspace that opens and clicks everything: it must never match.
        twin = SubscriberFactory(workspace=other_workspace, created_at=NOW, attributes={"d": NOW.date().isoformat()})
        Event.objects.create(workspace=other_workspace, subscriber=twin, type=EventType.OPENED, name="opened")
        expected = set()
        ago = dt.timedelta(hours=1)
        for i, sub in enumerate(subs):
            born = sub["born"]
            row = SubscriberFactory(
                workspace=workspace,
                email=f"s{i}@x.org",
                created_at=NOW - dt.timedelta(days=sub["created"]) - ago,
                confirmed_at=None if sub["confirmed"] is None else NOW - dt.timedelta(days=sub["confirmed"]) - ago,
                attributes={} if born is None else {"d": (NOW.date() - dt.timedelta(days=born)).isoformat()},
            )
            for kind, days, campaign in sub["mail"]:
                Event.objects.create(
                    workspace=workspace, subscriber=row, type=kind, name=kind, campaign_id=campaign,
                    occurred_at=NOW - dt.timedelta(days=days) - ago,
                )  # fmt: skip
            if timed_reference(tree, sub):
                expected.add(f"s{i}@x.org")
        assert set(emails(workspace, tree)) == expected, (tree, subs)
        transaction.set_rollback(True)
