"""Date-attribute triggers: evaluated in each subscriber's time zone, once per day, set-based."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automation.models import ReEntry, TriggerType, Workflow, WorkflowRun, WorkflowStatus
from automation.tasks.triggers import workflow_date_triggers_tick
from automation.triggers import workflow_date_trigger_evaluate
from subscribers.models import FieldType, SubscriberStatus
from tests.factories import FieldDefinitionFactory, SubscriberFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def fields(workspace):
    FieldDefinitionFactory(workspace=workspace, key="birthday", type=FieldType.DATE)
    FieldDefinitionFactory(workspace=workspace, key="renewal", type=FieldType.DATE)
    FieldDefinitionFactory(workspace=workspace, key="last_order_at", type=FieldType.DATETIME)


def date_workflow(workspace, name="Birthday", re_entry=ReEntry.ALWAYS, **config) -> Workflow:
    config.setdefault("field", "birthday")
    return Workflow.objects.create(
        workspace=workspace, name=name, status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.DATE,
        trigger_config=config, trigger_key=config["field"], re_entry=re_entry,
    )  # fmt: skip


def runs(workflow) -> list[tuple[str, str]]:
    return sorted(WorkflowRun.objects.filter(workflow=workflow).values_list("subscriber__email", "dedupe_key"))


def test_same_birthday_fires_at_nine_local_in_auckland_then_in_los_angeles_and_never_twice(workspace, fields):
    workflow = date_workflow(workspace, offset_days=0, anniversary=True, at_hour=9)
    SubscriberFactory(workspace=workspace, email="kiwi@x.org", time_zone="Pacific/Auckland",
                      attributes={"birthday": "1990-06-15"})  # fmt: skip
    SubscriberFactory(workspace=workspace, email="angeleno@x.org", time_zone="America/Los_Angeles",
                      attributes={"birthday": "1990-06-15"})  # fmt: skip

    # 2026-06-14 20:59 UTC is 08:59 on June 15 in Auckland (NZST, UTC+12): not yet nine.
    assert workflow_date_triggers_tick(now=at(2026, 6, 14, 20, 59)) == 0
    # 21:00 UTC: nine in Auckland; Los Angeles is still on June 14 (14:00 PDT).
    assert workflow_date_triggers_tick(now=at(2026, 6, 14, 21, 0)) == 1
    assert runs(workflow) == [("kiwi@x.org", "date:2026-06-15")]
    assert workflow_date_triggers_tick(now=at(2026, 6, 14, 21, 5)) == 0  # the next tick starts nothing new
    # 15:59 UTC June 15 is 08:59 in Los Angeles; Auckland is on June 16 at 03:59.
    assert workflow_date_triggers_tick(now=at(2026, 6, 15, 15, 59)) == 0
    assert workflow_date_triggers_tick(now=at(2026, 6, 15, 16, 0)) == 1
    # Later that day both zones are past nine: Auckland's June 16 matches nobody, Los Angeles is done.
    assert workflow_date_triggers_tick(now=at(2026, 6, 15, 23, 0)) == 0
    assert runs(workflow) == [("angeleno@x.org", "date:2026-06-15"), ("kiwi@x.org", "date:2026-06-15")]
    run = WorkflowRun.objects.get(workflow=workflow, subscriber__email="angeleno@x.org")
    assert run.context == {"trigger": "date", "field": "birthday", "date": "2026-06-15"}
    assert run.due_at == at(2026, 6, 15, 16, 0)
    assert run.trigger_type == TriggerType.DATE


def test_offset_fires_days_before_the_exact_date_and_datetime_attributes_compare_their_date(workspace, fields):
    before = date_workflow(workspace, name="Renewal reminder", field="renewal", offset_days=-3, at_hour=8)
    after = date_workflow(workspace, name="Order follow-up", field="last_order_at", offset_days=3, at_hour=8)
    SubscriberFactory(workspace=workspace, email="renews@x.org", attributes={"renewal": "2026-06-18"})
    SubscriberFactory(workspace=workspace, email="renews-later@x.org", attributes={"renewal": "2027-06-18"})
    SubscriberFactory(
        workspace=workspace, email="ordered@x.org", attributes={"last_order_at": "2026-06-12T23:30:00+00:00"}
    )
    SubscriberFactory(
        workspace=workspace, email="ordered-late@x.org", attributes={"last_order_at": "2026-06-13T00:30:00+00:00"}
    )

    assert workflow_date_triggers_tick(now=at(2026, 6, 15, 7, 59)) == 0  # workspace zone UTC: before 08:00
    assert workflow_date_triggers_tick(now=at(2026, 6, 15, 8, 0)) == 2
    assert runs(before) == [("renews@x.org", "date:2026-06-18")]
    assert runs(after) == [("ordered@x.org", "date:2026-06-12")]


def test_an_empty_time_zone_is_the_workspaces(fields):
    tokyo = WorkspaceFactory(time_zone="Asia/Tokyo")
    FieldDefinitionFactory(workspace=tokyo, key="birthday", type=FieldType.DATE)
    workflow = date_workflow(tokyo, anniversary=True, at_hour=9)
    SubscriberFactory(workspace=tokyo, email="local@x.org", time_zone="", attributes={"birthday": "1985-03-01"})
    SubscriberFactory(workspace=tokyo, email="bogus-zone@x.org", time_zone="Mars/Olympus",
                      attributes={"birthday": "1985-03-01"})  # fmt: skip

    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2026, 2, 28, 23, 59)) == 0  # 08:59 JST
    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2026, 3, 1, 0, 0)) == 2  # 09:00 JST
    assert runs(workflow) == [("bogus-zone@x.org", "date:2026-03-01"), ("local@x.org", "date:2026-03-01")]


def test_feb_29_anniversaries_fire_on_feb_28_in_common_years_and_on_feb_29_in_leap_years(workspace, fields):
    workflow = date_workflow(workspace, anniversary=True, at_hour=0)
    SubscriberFactory(workspace=workspace, email="leapling@x.org", attributes={"birthday": "2000-02-29"})
    SubscriberFactory(workspace=workspace, email="feb28@x.org", attributes={"birthday": "2001-02-28"})
    SubscriberFactory(workspace=workspace, email="born-today@x.org", attributes={"birthday": "2027-02-28"})

    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2027, 2, 28, 12)) == 2
    assert runs(workflow) == [("feb28@x.org", "date:2027-02-28"), ("leapling@x.org", "date:2027-02-28")]
    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2027, 3, 1, 12)) == 0
    # 2028 is a leap year: Feb 28 is the Feb 28 people's day only, Feb 29 the leaplings'.
    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2028, 2, 28, 12)) == 2  # feb28 + born-today
    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2028, 2, 29, 12)) == 1
    assert ("leapling@x.org", "date:2028-02-29") in runs(workflow)
    assert ("leapling@x.org", "date:2028-02-28") not in runs(workflow)


def test_without_entry_conditions_only_active_subscribers_start_and_paused_workflows_never(workspace, fields):
    workflow = date_workflow(workspace, anniversary=True, at_hour=9)
    SubscriberFactory(workspace=workspace, email="active@x.org", attributes={"birthday": "1990-06-15"})
    SubscriberFactory(workspace=workspace, email="gone@x.org", status=SubscriberStatus.UNSUBSCRIBED,
                      attributes={"birthday": "1990-06-15"})  # fmt: skip
    paused = date_workflow(workspace, name="Paused", anniversary=True, at_hour=9)
    Workflow.objects.filter(pk=paused.pk).update(status=WorkflowStatus.PAUSED)

    assert workflow_date_triggers_tick(now=at(2026, 6, 15, 12)) == 1
    assert runs(workflow) == [("active@x.org", "date:2026-06-15")]
    assert runs(paused) == []


def test_other_workspaces_subscribers_never_start(workspace, other_workspace, fields):
    workflow = date_workflow(workspace, anniversary=True, at_hour=9)
    SubscriberFactory(workspace=other_workspace, email="elsewhere@x.org", attributes={"birthday": "1990-06-15"})
    assert workflow_date_trigger_evaluate(workflow=workflow, now=at(2026, 6, 15, 12)) == 0


def test_the_number_of_queries_does_not_grow_with_the_number_of_subscribers(workspace, fields):
    workflow = date_workflow(workspace, anniversary=True, at_hour=9)

    def queries_for(count: int, day: int) -> int:
        for _ in range(count):
            SubscriberFactory(workspace=workspace, attributes={"birthday": f"1990-06-{day:02d}"})
        with CaptureQueriesContext(connection) as captured:
            started = workflow_date_trigger_evaluate(workflow=workflow, now=at(2026, 6, day, 12))
        assert started == count
        return len(captured.captured_queries)

    assert queries_for(2, 10) == queries_for(30, 11)
