"""Workflows end to end: an event posted to the API starts a workflow that tags, waits (time moved by the
tick), branches and enrolls into a sequence whose email arrives at a real SMTP server on loopback; and the
issue's "done when" story, which must happen once, with a run log that says why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from automation.engine import workflow_runs_advance_due
from automation.models import WorkflowRun
from sequences.models import Enrollment, SequenceStatus
from subscribers.models import EventType, Tag
from subscribers.services import event_record
from tests.automation.test_engine_support import eager, workflow_make  # noqa: F401
from tests.factories import SequenceFactory, StepFactory, SubscriberFactory, TemplateFactory
from tests.sequences.test_delivery_support import smtp_server  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


def sequence_make(workspace, name: str, subject: str):
    sequence = SequenceFactory(workspace=workspace, name=name, status=SequenceStatus.ACTIVE)
    template = TemplateFactory(workspace=workspace, name=name, subject=subject, html=f"<p>{subject}</p>")
    StepFactory(sequence=sequence, template=template, position=1, delay_value=0, delay_unit="minutes")
    return sequence


def post_event(api, capture, **body):
    with capture(execute=True):  # what happens after the request commits: the matcher, the engine
        response = api.post("/api/v1/events", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def tick(capture, *, after: timedelta) -> int:
    with capture(execute=True):  # enrollments made by the runs are processed and sent after commit
        return workflow_runs_advance_due(now=timezone.now() + after)


def test_an_api_event_tags_waits_branches_and_enrolls_and_the_email_arrives(
    api, workspace, smtp, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="Ada")
    onboarding = sequence_make(workspace, "Onboarding", "Your order is on its way, {{ subscriber.first_name }}")
    buyer = Tag.objects.create(workspace=workspace, name="buyer")
    created = api.post("/api/v1/workflows", {
        "name": "After an order", "trigger_type": "event", "trigger_config": {"name": "order_placed"},
        "actions": [
            {"type": "add_tag", "tag": "buyer"},
            {"type": "wait", "duration": {"value": 1, "unit": "days"}},
            {"type": "branch", "rules": {"tag": buyer.pk},
             "then": [{"type": "enroll", "sequence_id": onboarding.pk}],
             "else": [{"type": "add_tag", "tag": "odd"}]},
        ],
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    workflow_id = created.json()["id"]
    assert api.post(f"/api/v1/workflows/{workflow_id}/activate").status_code == 200

    post_event(api, capture, email="ada@example.org", name="order_placed", properties={"order_id": "A1"})
    run = WorkflowRun.objects.get(workflow_id=workflow_id, subscriber=ada)
    assert run.status == "active" and run.position == [1]
    assert list(ada.tags.values_list("name", flat=True)) == ["buyer"]
    assert smtp.messages == []

    assert tick(capture, after=timedelta(hours=23)) == 0
    assert tick(capture, after=timedelta(days=1, seconds=1)) == 1
    received = smtp.to("ada@example.org")
    assert [m["Subject"] for m in received] == ["Your order is on its way, Ada"]
    assert received[0]["List-Unsubscribe"]

    steps = api.get(f"/api/v1/workflow-runs/{run.pk}").json()
    assert steps["status"] == "completed"
    assert [(s["path"], s["action_type"], s["status"], s["detail"].split(" (")[0]) for s in steps["steps"]] == [
        ("0", "add_tag", "done", "tagged 'buyer'"),
        ("1", "wait", "done", "waiting 1 day; wait over"),
        ("2", "branch", "done", "condition held: then"),
        ("2.then.0", "enroll", "done", "enrolled in 'Onboarding'"),
    ]


def test_first_order_then_a_day_then_not_opened_welcome_tags_and_enrolls_in_win_back_once(
    api, workspace, smtp, django_capture_on_commit_callbacks
):
    """ "When someone places their first order, wait a day, and if they have not opened the welcome email,
    tag them and enroll them in the win-back sequence": it happens, once, with a run log that shows why."""
    capture = django_capture_on_commit_callbacks
    welcome = sequence_make(workspace, "Welcome", "Welcome!")
    win_back = sequence_make(workspace, "Win-back", "We miss you, {{ subscriber.first_name }}")
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="Ada")
    bob = SubscriberFactory(workspace=workspace, email="bob@example.org", first_name="Bob")
    # Bob opened the welcome email; Ada did not.
    event_record(workspace=workspace, subscriber=bob, type=EventType.OPENED, sequence_id=welcome.pk)
    workflow = workflow_make(workspace, name="First order win-back", re_entry="once", dedupe_property="order_id",
                             trigger_config={"name": "order_placed"}, actions=[
        {"type": "wait", "duration": {"value": 1, "unit": "days"}},
        {"type": "branch", "rules": {"not": {"engagement": "opened", "sequence_id": welcome.pk}},
         "then": [{"type": "add_tag", "tag": "win-back"}, {"type": "enroll", "sequence_id": win_back.pk}]},
    ])  # fmt: skip

    for person in ("ada@example.org", "bob@example.org"):
        post_event(api, capture, email=person, name="order_placed", properties={"order_id": f"{person[:3]}-1"})
    # The same order reported twice, and Ada's second order: neither starts anything (first order only).
    post_event(api, capture, email="ada@example.org", name="order_placed", properties={"order_id": "ada-1"})
    post_event(api, capture, email="ada@example.org", name="order_placed", properties={"order_id": "ada-2"})
    assert WorkflowRun.objects.filter(workflow=workflow).count() == 2
    assert WorkflowRun.objects.get(subscriber=ada).dedupe_key == "order_id:ada-1"

    assert tick(capture, after=timedelta(days=1, minutes=1)) == 2
    assert tick(capture, after=timedelta(days=3)) == 0  # nothing happens twice
    assert [m["Subject"] for m in smtp.messages] == ["We miss you, Ada"]
    assert list(ada.tags.values_list("name", flat=True)) == ["win-back"] and not bob.tags.exists()
    assert Enrollment.objects.filter(sequence=win_back).values_list("subscriber_id", flat=True).get() == ada.pk

    ada_run = api.get(f"/api/v1/workflow-runs/{WorkflowRun.objects.get(subscriber=ada).pk}").json()
    bob_run = api.get(f"/api/v1/workflow-runs/{WorkflowRun.objects.get(subscriber=bob).pk}").json()
    assert ada_run["context"]["properties"] == {"order_id": "ada-1"}
    assert [(s["path"], s["detail"].split(" (")[0]) for s in ada_run["steps"]] == [
        ("0", "waiting 1 day; wait over"),
        ("1", "condition held: then"),
        ("1.then.0", "tagged 'win-back'"),
        ("1.then.1", "enrolled in 'Win-back'"),
    ]
    assert [(s["path"], s["detail"]) for s in bob_run["steps"]] == [
        ("0", "waiting 1 day; wait over"),
        ("1", "condition did not hold: else"),
    ]
    assert ada_run["outcome"] == bob_run["outcome"] == "completed: all actions done"
