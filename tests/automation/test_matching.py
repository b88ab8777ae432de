"""Matching events to workflow triggers: each trigger kind, its filters, and the cost on the hot path."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automation.matching import events_match, workflows_events_handler, workflows_usage
from automation.models import WorkflowRun
from subscribers.models import Event, EventType
from subscribers.services import list_membership_add, list_membership_remove, subscriber_unsubscribe
from tests.automation.test_engine_support import eager, record, workflow_make  # noqa: F401
from tests.factories import MailingListFactory, SubscriberFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

TAG = [{"type": "add_tag", "tag": "hit"}]


@pytest.fixture
def ada(workspace):
    return SubscriberFactory(workspace=workspace, email="ada@example.org")


def started(workflow) -> int:
    return WorkflowRun.objects.filter(workflow=workflow).count()


def test_list_subscribed_matches_its_list_and_any_list(workspace, ada, django_capture_on_commit_callbacks):
    news, promo = MailingListFactory(workspace=workspace), MailingListFactory(workspace=workspace)
    on_news = workflow_make(workspace, trigger_type="list_subscribed", trigger_config={"list_id": news.pk}, actions=TAG)
    on_any = workflow_make(workspace, trigger_type="list_subscribed", trigger_config={"list_id": None}, actions=TAG,
                           re_entry="always")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        list_membership_add(workspace=workspace, subscriber=ada, mailing_list=promo)
    assert (started(on_news), started(on_any)) == (0, 1)
    with django_capture_on_commit_callbacks(execute=True):
        list_membership_add(workspace=workspace, subscriber=ada, mailing_list=news)
    assert (started(on_news), started(on_any)) == (1, 2)
    assert WorkflowRun.objects.get(workflow=on_news).status == "completed"


def test_unsubscribed_from_a_list_or_from_everything(workspace, ada, django_capture_on_commit_callbacks):
    news = MailingListFactory(workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        list_membership_add(workspace=workspace, subscriber=ada, mailing_list=news)
    from_news = workflow_make(workspace, trigger_type="unsubscribed", trigger_config={"list_id": news.pk}, actions=TAG)
    from_any = workflow_make(workspace, trigger_type="unsubscribed", trigger_config={}, actions=TAG, re_entry="always")
    with django_capture_on_commit_callbacks(execute=True):
        list_membership_remove(workspace=workspace, subscriber=ada, mailing_list=news)
    assert (started(from_news), started(from_any)) == (1, 1)
    with django_capture_on_commit_callbacks(execute=True):
        subscriber_unsubscribe(workspace=workspace, subscriber=ada, reason="bye")
    assert (started(from_news), started(from_any)) == (1, 2)


def test_tag_and_field_triggers_with_from_and_to(workspace, ada, django_capture_on_commit_callbacks):
    tagged = workflow_make(workspace, trigger_type="tag_added", trigger_config={"tag": "VIP"}, actions=TAG)
    untagged = workflow_make(workspace, trigger_type="tag_removed", trigger_config={"tag": "vip"}, actions=TAG)
    upgraded = workflow_make(workspace, trigger_type="field_changed", actions=TAG, re_entry="always",
                             trigger_config={"field": "plan", "from": "free", "to": "pro"})  # fmt: skip
    capture = django_capture_on_commit_callbacks
    record(capture, workspace, ada, type="tag_added", properties={"tag": "other"})
    record(capture, workspace, ada, type="tag_added", properties={"tag": "vip"})
    assert (started(tagged), started(untagged)) == (1, 0)
    record(capture, workspace, ada, type="tag_removed", properties={"tag": "Vip"})
    assert started(untagged) == 1
    record(capture, workspace, ada, type="field_changed", properties={"field": "plan", "from": "pro", "to": "free"})
    record(capture, workspace, ada, type="field_changed", properties={"field": "plan", "from": None, "to": "pro"})
    assert started(upgraded) == 0
    record(capture, workspace, ada, type="field_changed", properties={"field": "plan", "from": "free", "to": "pro"})
    assert started(upgraded) == 1


def test_an_event_trigger_filters_on_properties_and_matches_built_in_names(
    workspace, ada, django_capture_on_commit_callbacks
):
    big = workflow_make(workspace, trigger_config={"name": "order_placed", "properties": {"tier": "gold"}},
                        actions=TAG, re_entry="always")  # fmt: skip
    opened = workflow_make(workspace, trigger_config={"name": "opened"}, actions=TAG)
    capture = django_capture_on_commit_callbacks
    record(capture, workspace, ada, "order_placed", properties={"tier": "silver"})
    record(capture, workspace, ada, "order_placed")
    assert started(big) == 0
    record(capture, workspace, ada, "order_placed", properties={"tier": "gold", "total": 10})
    assert started(big) == 1
    record(capture, workspace, ada, type=EventType.OPENED)
    assert started(opened) == 1


def test_another_workspace_never_triggers(workspace, other_workspace, django_capture_on_commit_callbacks):
    mine = workflow_make(workspace, actions=TAG)
    theirs = SubscriberFactory(workspace=other_workspace)
    record(django_capture_on_commit_callbacks, other_workspace, theirs, "order_placed")
    assert started(mine) == 0


def test_the_handler_costs_no_query_for_events_no_workflow_uses(workspace, ada, django_assert_num_queries):
    workflow_make(workspace, actions=TAG)  # an "order_placed" trigger
    workflows_usage()  # warm, as after the first chunk
    sent = [Event.objects.create(workspace=workspace, subscriber=ada, type=EventType.SENT, name="sent")
            for _ in range(20)]  # fmt: skip
    with django_assert_num_queries(0):
        workflows_events_handler(sent)
    assert WorkflowRun.objects.count() == 0


def test_a_workflow_write_refreshes_what_the_handler_looks_for(workspace, ada):
    assert "order_placed" not in workflows_usage().event_names
    workflow_make(workspace, actions=[
        {"type": "wait_for_event", "event": "Paid", "timeout": {"value": 1, "unit": "days"}},
    ])  # fmt: skip
    usage = workflows_usage()
    assert {"order_placed", "paid"} <= usage.event_names and "event" in usage.trigger_types


def test_matching_cost_does_not_grow_with_the_number_of_workflows(workspace, ada):
    def queries_for_one_event(name: str) -> int:
        event = Event.objects.create(workspace=workspace, subscriber=ada, type=EventType.CUSTOM, name=name)
        with CaptureQueriesContext(connection) as captured:
            events_match(event_ids=[event.pk])
        return len(captured)

    workflow_make(workspace, name="the one", trigger_config={"name": "nothing_matches_this"}, actions=TAG)
    few = queries_for_one_event("order_placed")
    for index in range(40):
        workflow_make(workspace, name=f"other {index}", trigger_config={"name": f"event_{index}"}, actions=TAG)
    assert queries_for_one_event("order_placed") == few
