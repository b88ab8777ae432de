"""Segment entered / left triggers: a baseline first, then diffs against the membership snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from automation.models import ReEntry, TriggerType, Workflow, WorkflowRun, WorkflowSegmentMember, WorkflowStatus
from automation.tasks.triggers import workflow_segment_triggers_tick
from automation.triggers import workflow_segment_trigger_evaluate
from subscribers.models import Segment
from tests.factories import SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def vip(workspace):
    return TagFactory(workspace=workspace, name="vip")


@pytest.fixture
def segment(workspace, vip):
    return Segment.objects.create(workspace=workspace, name="VIPs", rules={"tag": [vip.pk]})


def segment_workflow(workspace, segment, kind=TriggerType.SEGMENT_ENTERED, name=None) -> Workflow:
    return Workflow.objects.create(
        workspace=workspace, name=name or f"On {kind}", status=WorkflowStatus.ACTIVE, trigger_type=kind,
        trigger_config={"segment_id": segment.pk}, trigger_key=str(segment.pk), re_entry=ReEntry.ALWAYS,
    )  # fmt: skip


def members(workflow) -> set[str]:
    return set(WorkflowSegmentMember.objects.filter(workflow=workflow).values_list("subscriber__email", flat=True))


def started(workflow) -> list[tuple[str, str]]:
    return sorted(WorkflowRun.objects.filter(workflow=workflow).values_list("subscriber__email", "dedupe_key"))


def test_first_evaluation_is_a_baseline_then_entries_and_exits_start_runs(workspace, segment, vip):
    entered = segment_workflow(workspace, segment)
    left = segment_workflow(workspace, segment, TriggerType.SEGMENT_LEFT)
    alice = SubscriberFactory(workspace=workspace, email="alice@x.org")
    bob = SubscriberFactory(workspace=workspace, email="bob@x.org")
    alice.tags.add(vip)

    assert workflow_segment_triggers_tick(now=T0) == 0  # baseline: alice is recorded, nobody starts
    assert members(entered) == members(left) == {"alice@x.org"}
    assert not WorkflowRun.objects.exists()

    bob.tags.add(vip)
    alice.tags.remove(vip)
    t1 = T0 + timedelta(minutes=5)
    assert workflow_segment_triggers_tick(now=t1) == 2
    assert started(entered) == [("bob@x.org", f"segment:entered:{t1.isoformat()}")]
    assert started(left) == [("alice@x.org", f"segment:left:{t1.isoformat()}")]
    assert members(entered) == members(left) == {"bob@x.org"}
    run = WorkflowRun.objects.get(workflow=entered)
    assert run.context == {"trigger": "segment_entered", "segment_id": segment.pk, "segment": "VIPs"}
    assert run.due_at == t1

    assert workflow_segment_triggers_tick(now=t1 + timedelta(minutes=5)) == 0  # nothing changed


def test_a_workflow_not_evaluated_for_a_while_still_diffs_against_its_snapshot(workspace, segment, vip):
    workflow = segment_workflow(workspace, segment)
    carol = SubscriberFactory(workspace=workspace, email="carol@x.org")
    dave = SubscriberFactory(workspace=workspace, email="dave@x.org")
    assert workflow_segment_triggers_tick(now=T0) == 0
    Workflow.objects.filter(pk=workflow.pk).update(status=WorkflowStatus.PAUSED)

    carol.tags.add(vip)  # enters while the workflow is paused...
    assert workflow_segment_triggers_tick(now=T0 + timedelta(hours=1)) == 0
    dave.tags.add(vip)

    Workflow.objects.filter(pk=workflow.pk).update(status=WorkflowStatus.ACTIVE)
    assert workflow_segment_triggers_tick(now=T0 + timedelta(days=3)) == 2  # ...and is found on resume
    assert [email for email, _ in started(workflow)] == ["carol@x.org", "dave@x.org"]


def test_changing_the_segment_takes_a_new_baseline(workspace, segment, vip):
    workflow = segment_workflow(workspace, segment)
    erin = SubscriberFactory(workspace=workspace, email="erin@x.org")
    erin.tags.add(vip)
    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0) == 0
    everyone = Segment.objects.create(workspace=workspace, name="Everyone", rules={"status": ["active"]})
    SubscriberFactory(workspace=workspace, email="frank@x.org")
    workflow.trigger_config = {"segment_id": everyone.pk}
    workflow.save()

    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0 + timedelta(minutes=5)) == 0
    assert members(workflow) == {"erin@x.org", "frank@x.org"}
    SubscriberFactory(workspace=workspace, email="gina@x.org")
    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0 + timedelta(minutes=10)) == 1
    assert [email for email, _ in started(workflow)] == ["gina@x.org"]


def test_an_empty_segment_at_baseline_still_counts_as_a_baseline(workspace, segment, vip):
    workflow = segment_workflow(workspace, segment)
    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0) == 0
    SubscriberFactory(workspace=workspace, email="hal@x.org").tags.add(vip)
    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0 + timedelta(minutes=5)) == 1


def test_a_segment_of_another_workspace_is_never_evaluated(workspace, other_workspace):
    foreign = Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": ["active"]})
    SubscriberFactory(workspace=other_workspace)
    workflow = segment_workflow(workspace, foreign)
    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0) == 0
    assert workflow_segment_trigger_evaluate(workflow=workflow, now=T0 + timedelta(minutes=5)) == 0
    assert members(workflow) == set()
    assert Workflow.objects.get(pk=workflow.pk).trigger_state == {}


def test_a_segment_that_no_longer_validates_is_skipped_and_the_others_still_run(workspace, segment, vip):
    from subscribers.models import FieldDefinition, FieldType

    plan = FieldDefinition.objects.create(workspace=workspace, key="plan", label="Plan", type=FieldType.TEXT)
    broken_segment = Segment.objects.create(
        workspace=workspace, name="Pro", rules={"attribute": "plan", "op": "eq", "value": "pro"}
    )
    broken = segment_workflow(workspace, broken_segment, name="Broken")
    working = segment_workflow(workspace, segment, name="Working")
    assert workflow_segment_triggers_tick(now=T0) == 0
    plan.delete()  # the segment's rule now names an unknown field
    SubscriberFactory(workspace=workspace, email="ivy@x.org").tags.add(vip)

    assert workflow_segment_triggers_tick(now=T0 + timedelta(minutes=5)) == 1
    assert [email for email, _ in started(working)] == ["ivy@x.org"]
    assert started(broken) == []
