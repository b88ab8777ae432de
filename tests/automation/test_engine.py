"""The workflow engine on PostgreSQL: actions, waits, branches, wait-for-event with a key, dedupe and
re-entry, failures, pause / resume / cancel, timeouts, the tick, and test mode without writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from automation import services
from automation.engine import (
    run_advance,
    workflow_runs_advance_due,
    workflow_test,
)
from automation.models import RunStatus, StepStatus, WorkflowRun, WorkflowRunStep
from automation.runs import StartOutcome, workflow_run_start
from core.errors import Conflict, ValidationFailed
from sequences.models import Enrollment, Message, SequenceStatus
from subscribers.models import Event, EventType, FieldType, ListMembership, Tag
from tests.automation.test_engine_support import eager, record, workflow_make  # noqa: F401
from tests.factories import (
    FieldDefinitionFactory,
    MailingListFactory,
    MembershipFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]


@pytest.fixture
def ada(workspace):
    return SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="Ada")


@pytest.fixture
def sequence(workspace):
    sequence = SequenceFactory(workspace=workspace, name="Win-back", status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=TemplateFactory(workspace=workspace), position=1, delay_value=1)
    return sequence


def start(workflow, subscriber, *, key="k1", properties=None, now=None):
    result = workflow_run_start(
        workflow=workflow, subscriber=subscriber, dedupe_key=key, context={"properties": properties or {}}, now=now
    )
    assert result.started, result.outcome
    run_advance(result.run.pk, now)
    return WorkflowRun.objects.get(pk=result.run.pk)


def log(run) -> list[tuple[str, str, str, str]]:
    return [
        (s.path, s.action_type, s.status, s.detail) for s in WorkflowRunStep.objects.filter(run=run).order_by("seq")
    ]


# Validation ------------------------------------------------------------------------------------


def test_a_bad_nested_action_is_named_by_its_path(workspace):
    actions = [
        {"type": "add_tag", "tag": "ok"},
        {"type": "wait", "duration": {"value": 1, "unit": "days"}},
        {"type": "branch", "rules": {"status": "active"}, "then": [{"type": "add_tag", "tag": ""}]},
    ]
    with pytest.raises(ValidationFailed) as error:
        workflow_make(workspace, actions=actions)
    assert error.value.details == {"actions[2].then[0].tag": ["Must be a non-empty string."]}


@pytest.mark.parametrize(
    ("trigger_type", "config", "path"),
    [
        ("event", {}, "trigger_config.name"),
        ("cron", {"cron": "61 * * * *"}, "trigger_config.cron"),
        ("cron", {"cron": "* * *"}, "trigger_config.cron"),
        ("cron", {"cron": "0 9 * * 1", "timezone": "Mars/Olympus"}, "trigger_config.timezone"),
        ("date", {"field": "plan"}, "trigger_config.field"),
        ("segment_entered", {"segment_id": 999999}, "trigger_config.segment_id"),
        ("list_subscribed", {"list_id": "x"}, "trigger_config.list_id"),
        ("tag_added", {"tag": "vip", "extra": 1}, "trigger_config.extra"),
        ("nonsense", {}, "trigger_type"),
    ],
)
def test_every_trigger_config_is_validated(workspace, trigger_type, config, path):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    with pytest.raises(ValidationFailed) as error:
        services.workflow_create(
            workspace=workspace, name="w", trigger_type=trigger_type, trigger_config=config,
            actions=[{"type": "add_tag", "tag": "x"}],
        )  # fmt: skip
    assert path in error.value.details


def test_ids_of_another_workspace_are_refused_with_their_path(workspace, other_workspace):
    theirs = MailingListFactory(workspace=other_workspace)
    with pytest.raises(ValidationFailed) as error:
        workflow_make(workspace, actions=[{"type": "wait", "until_time": "09:00"},
                                          {"type": "subscribe_list", "list_id": theirs.pk}])  # fmt: skip
    assert "actions[1].list_id" in error.value.details
    with pytest.raises(ValidationFailed) as error:
        workflow_make(workspace, actions=[{"type": "add_tag", "tag": "x"}], entry_rules={"list": theirs.pk})
    assert any(key.startswith("entry_rules") for key in error.value.details)


def test_trigger_keys_are_derived_and_lower_cased(workspace):
    lst = MailingListFactory(workspace=workspace)
    FieldDefinitionFactory(workspace=workspace, key="birthday", type=FieldType.DATE)
    cases = [
        ("event", {"name": "Order_Placed"}, "order_placed"),
        ("list_subscribed", {"list_id": lst.pk}, str(lst.pk)),
        ("unsubscribed", {"list_id": None}, "*"),
        ("tag_added", {"tag": "VIP"}, "vip"),
        ("field_changed", {"field": "Plan", "to": "pro"}, "plan"),
        ("date", {"field": "birthday", "offset_days": -3}, "birthday"),
        ("cron", {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}, ""),
        ("api", {}, ""),
    ]
    for index, (kind, config, key) in enumerate(cases):
        workflow = services.workflow_create(
            workspace=workspace, name=f"w{index}", trigger_type=kind, trigger_config=config,
            actions=[{"type": "add_tag", "tag": "x"}],
        )  # fmt: skip
        assert workflow.trigger_key == key, kind
    date = services.workflow_create(workspace=workspace, name="date2", trigger_type="date",
                                    trigger_config={"field": "birthday"})  # fmt: skip
    assert date.trigger_config == {"field": "birthday", "offset_days": 0, "anniversary": False, "at_hour": 9}


@pytest.mark.parametrize("expression", ["0 9 31 12 *", "30 8 1 1,7 *", "0 6 * * 1-5", "*/15 * * * *"])
def test_cron_expressions_are_read_minute_hour_day_month_weekday(workspace, expression):
    # "0 9 31 12 *" is Dec 31 at 09:00: read in Celery's positional order (minute, hour, day of week,
    # ...) the 31 would be a day of the week and the expression refused.
    workflow = services.workflow_create(
        workspace=workspace, name="yearly", trigger_type="cron", trigger_config={"cron": expression},
        actions=[{"type": "add_tag", "tag": "x"}],
    )  # fmt: skip
    assert workflow.trigger_config == {"cron": expression, "timezone": "UTC"}


def test_the_workspace_limit_answers_409(workspace, settings):
    settings.AUTOMATION_MAX_WORKFLOWS = 2
    workflow_make(workspace, actions=[{"type": "add_tag", "tag": "x"}], activate=False)
    workflow_make(workspace, actions=[{"type": "add_tag", "tag": "x"}], activate=False)
    with pytest.raises(Conflict) as error:
        workflow_make(workspace, actions=[{"type": "add_tag", "tag": "x"}], activate=False)
    assert error.value.status_code == 409 and error.value.code == "workflow_limit_reached"


# Running ---------------------------------------------------------------------------------------


def test_tag_wait_branch_enroll_with_time_moved_by_the_tick(workspace, ada, sequence):
    buyer = Tag.objects.create(workspace=workspace, name="buyer")
    workflow = workflow_make(workspace, actions=[
        {"type": "add_tag", "tag": "buyer"},
        {"type": "wait", "duration": {"value": 1, "unit": "days"}},
        {"type": "branch", "rules": {"tag": buyer.pk},
         "then": [{"type": "enroll", "sequence_id": sequence.pk}], "else": [{"type": "add_tag", "tag": "never"}]},
        {"type": "add_tag", "tag": "after-branch"},
    ])  # fmt: skip
    run = start(workflow, ada)
    assert run.status == RunStatus.ACTIVE and run.position == [1] and run.due_at > timezone.now()
    assert set(ada.tags.values_list("name", flat=True)) == {"buyer"}
    assert log(run)[-1][2] == StepStatus.WAITING

    assert workflow_runs_advance_due(now=timezone.now() + timedelta(hours=23)) == 0  # not yet
    assert workflow_runs_advance_due(now=timezone.now() + timedelta(days=1, minutes=1)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.outcome == "completed: all actions done"
    assert Enrollment.objects.filter(subscriber=ada, sequence=sequence, status="active").count() == 1
    assert set(ada.tags.values_list("name", flat=True)) == {"buyer", "after-branch"}
    assert [(p, t, s) for p, t, s, _ in log(run)] == [
        ("0", "add_tag", "done"), ("1", "wait", "done"), ("2", "branch", "done"), ("2.then.0", "enroll", "done"),
        ("3", "add_tag", "done"),
    ]  # fmt: skip
    details = [d for *_, d in log(run)]
    assert details[1] == "waiting 1 day; wait over"
    assert details[2] == "condition held: then"
    assert details[3].startswith("enrolled in 'Win-back'")


def test_the_else_branch_and_an_empty_branch_continue_after_the_node(workspace, ada):
    nope = Tag.objects.create(workspace=workspace, name="nope")
    workflow = workflow_make(workspace, actions=[
        {"type": "branch", "rules": {"tag": nope.pk}, "then": [{"type": "add_tag", "tag": "then"}]},
        {"type": "add_tag", "tag": "next"},
    ])  # fmt: skip
    run = start(workflow, ada)
    assert run.status == RunStatus.COMPLETED
    assert [d for *_, d in log(run)] == ["condition did not hold: else", "tagged 'next'"]


def test_wait_for_event_with_a_key_matching_other_key_and_timeout(workspace, ada, django_capture_on_commit_callbacks):
    workflow = workflow_make(workspace, trigger_config={"name": "cart_abandoned"}, actions=[
        {"type": "wait_for_event", "event": "order_placed", "match_key": "cart_id",
         "timeout": {"value": 2, "unit": "days"},
         "on_event": [{"type": "add_tag", "tag": "bought"}], "on_timeout": [{"type": "add_tag", "tag": "lost"}]},
    ], re_entry="always")  # fmt: skip
    record(django_capture_on_commit_callbacks, workspace, ada, "cart_abandoned", properties={"cart_id": 42})
    record(django_capture_on_commit_callbacks, workspace, ada, "cart_abandoned", properties={"cart_id": 7})
    runs = {r.context["properties"]["cart_id"]: r for r in WorkflowRun.objects.filter(workflow=workflow)}
    assert set(runs) == {42, 7}
    assert all(r.wait_event_name == "order_placed" for r in runs.values())

    # An order for another cart (99) continues neither; the order for cart 42 continues only that run.
    record(django_capture_on_commit_callbacks, workspace, ada, "order_placed", properties={"cart_id": 99})
    assert WorkflowRun.objects.filter(workflow=workflow, status=RunStatus.ACTIVE).count() == 2
    record(django_capture_on_commit_callbacks, workspace, ada, "Order_Placed", properties={"cart_id": "42"})
    run42, run7 = (WorkflowRun.objects.get(pk=runs[k].pk) for k in (42, 7))
    assert run42.status == RunStatus.COMPLETED and run7.status == RunStatus.ACTIVE
    assert log(run42)[0][3].endswith("with cart_id=42: on_event")
    assert log(run42)[1][:3] == ("0.on_event.0", "add_tag", "done")

    # The other run's timeout takes on_timeout.
    workflow_runs_advance_due(now=timezone.now() + timedelta(days=2, minutes=1))
    run7.refresh_from_db()
    assert run7.status == RunStatus.COMPLETED
    assert log(run7)[0][3].endswith("no 'order_placed' within 2 days: on_timeout")
    assert log(run7)[1][:3] == ("0.on_timeout.0", "add_tag", "done")
    assert set(ada.tags.values_list("name", flat=True)) == {"bought", "lost"}


def test_an_event_of_another_subscriber_does_not_end_a_wait(workspace, ada, django_capture_on_commit_callbacks):
    bob = SubscriberFactory(workspace=workspace)
    workflow = workflow_make(workspace, actions=[
        {"type": "wait_for_event", "event": "paid", "timeout": {"value": 1, "unit": "hours"}},
    ])  # fmt: skip
    run = start(workflow, ada)
    record(django_capture_on_commit_callbacks, workspace, bob, "paid")
    run.refresh_from_db()
    assert run.status == RunStatus.ACTIVE and run.wait_event_name == "paid"
    record(django_capture_on_commit_callbacks, workspace, ada, "paid")
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_duplicate_events_and_the_same_order_id_enter_once(workspace, ada, django_capture_on_commit_callbacks):
    by_event = workflow_make(workspace, name="by event", actions=[{"type": "add_tag", "tag": "a"}], re_entry="always")
    by_order = workflow_make(workspace, name="by order", actions=[{"type": "add_tag", "tag": "b"}], re_entry="always",
                             dedupe_property="order_id")  # fmt: skip
    first = record(django_capture_on_commit_callbacks, workspace, ada, "order_placed",
                   properties={"order_id": "A1"}, dedupe_key="evt-1")  # fmt: skip
    again = record(django_capture_on_commit_callbacks, workspace, ada, "order_placed",
                   properties={"order_id": "A1"}, dedupe_key="evt-1")  # fmt: skip
    assert first.pk == again.pk  # the event log itself refused the duplicate
    record(django_capture_on_commit_callbacks, workspace, ada, "order_placed", properties={"order_id": "A1"})
    assert WorkflowRun.objects.filter(workflow=by_event).count() == 2  # two distinct events
    assert list(WorkflowRun.objects.filter(workflow=by_order).values_list("dedupe_key", flat=True)) == ["order_id:A1"]
    # The same event handed to the matcher twice (a retried task) starts nothing new.
    from automation.matching import events_match

    assert events_match(event_ids=[first.pk])["started"] == 0


@pytest.mark.parametrize(
    ("re_entry", "second_while_open", "second_after_finish"),
    [("once", "re_entry_blocked", "re_entry_blocked"), ("after_finish", "re_entry_blocked", "started"),
     ("always", "started", "started")],
)  # fmt: skip
def test_re_entry_rules(workspace, ada, re_entry, second_while_open, second_after_finish):
    workflow = workflow_make(workspace, re_entry=re_entry, actions=[
        {"type": "wait", "duration": {"value": 1, "unit": "hours"}},
    ])  # fmt: skip
    first = start(workflow, ada, key="k1")
    assert workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="k2").outcome == second_while_open
    WorkflowRun.objects.filter(workflow=workflow).exclude(pk=first.pk).delete()
    workflow_runs_advance_due(now=timezone.now() + timedelta(hours=2))
    first.refresh_from_db()
    assert first.status == RunStatus.COMPLETED
    assert workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="k3").outcome == second_after_finish
    assert workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="k1").outcome == StartOutcome.DUPLICATE


def test_entry_conditions_are_checked_when_the_run_starts(workspace, ada):
    bob = SubscriberFactory(workspace=workspace)
    vip = Tag.objects.create(workspace=workspace, name="vip")
    ada.tags.add(vip)
    workflow = workflow_make(workspace, entry_rules={"tag": vip.pk}, actions=[{"type": "add_tag", "tag": "x"}])
    assert workflow_run_start(workflow=workflow, subscriber=bob, dedupe_key="k").outcome == StartOutcome.CONDITIONS
    assert workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="k").outcome == StartOutcome.STARTED


def test_every_simple_action_does_its_work(workspace, ada, sequence, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    plan = FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    lst = MailingListFactory(workspace=workspace, name="News")
    template = TemplateFactory(workspace=workspace, name="Receipt")
    owner = UserFactory(email="boss@acme.test")
    MembershipFactory(workspace=workspace, user=owner, role="owner")
    workflow = workflow_make(workspace, actions=[
        {"type": "subscribe_list", "list_id": lst.pk},
        {"type": "update_field", "field": plan.key, "value": "{{ trigger.properties.plan|upper }}"},
        {"type": "update_field", "field": "first_name", "value": "Augusta"},
        {"type": "send_email", "template_id": template.pk},
        {"type": "enroll", "sequence_id": sequence.pk},
        {"type": "exit_sequence", "sequence_id": sequence.pk},
        {"type": "unsubscribe_list", "list_id": lst.pk},
        {"type": "add_tag", "tag": "t"},
        {"type": "remove_tag", "tag": "t"},
        {"type": "notify", "subject": "New {{ trigger.properties.plan }} customer", "body": "{{ subscriber.email }}"},
        {"type": "goal", "name": "converted"},
        {"type": "add_tag", "tag": "never-reached"},
    ])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # the notification is sent after commit
        run = start(workflow, ada, properties={"plan": "pro"})
    ada.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.outcome == "goal reached: converted"
    assert ada.attributes["plan"] == "PRO" and ada.first_name == "Augusta"
    assert ListMembership.objects.get(subscriber=ada, mailing_list=lst).status == "unsubscribed"
    message = Message.objects.get(subscriber=ada)
    assert message.template_id == template.pk and message.enrollment_id is None
    # Sent through the normal sender after commit (eager Celery, locmem backend): unsubscribe header and all.
    assert message.status == "sent"
    receipt = next(m for m in mail.outbox if m.to == ["ada@example.org"])
    assert receipt.subject == "Hello Augusta" and "List-Unsubscribe" in receipt.extra_headers
    assert Enrollment.objects.get(subscriber=ada, sequence=sequence).status == "exited"
    assert not ada.tags.filter(name="t").exists() and not ada.tags.filter(name="never-reached").exists()
    goal = Event.objects.get(subscriber=ada, type=EventType.GOAL)
    assert goal.properties == {"workflow_id": workflow.pk, "run_id": run.pk, "name": "converted"}
    notices = [m for m in mail.outbox if m.subject == "New pro customer"]
    assert len(notices) == 1 and notices[0].to == ["boss@acme.test"] and notices[0].body == "ada@example.org"
    assert all(status == "done" for _, _, status, _ in log(run)), log(run)
    assert len(log(run)) == 11


def test_a_failing_action_fails_the_run_with_its_error(workspace, ada):
    FieldDefinitionFactory(workspace=workspace, key="age", type=FieldType.NUMBER)
    workflow = workflow_make(workspace, actions=[
        {"type": "add_tag", "tag": "a"},
        {"type": "update_field", "field": "age", "value": "{{ trigger.properties.age }}"},
        {"type": "add_tag", "tag": "b"},
    ])  # fmt: skip
    run = start(workflow, ada, properties={"age": "old"})
    assert run.status == RunStatus.FAILED and run.outcome == "failed at 1 (update_field)"
    assert "age refused 'old'" in run.error
    assert [s for _, _, s, _ in log(run)] == ["done", "failed"]
    assert list(ada.tags.values_list("name", flat=True)) == ["a"]
    assert workflow_runs_advance_due(now=timezone.now() + timedelta(days=1)) == 0  # no retry loop


def test_an_inactive_sequence_is_logged_and_the_run_goes_on(workspace, ada, sequence):
    sequence.status = SequenceStatus.PAUSED
    sequence.save()
    workflow = workflow_make(workspace, actions=[{"type": "enroll", "sequence_id": sequence.pk},
                                                 {"type": "add_tag", "tag": "after"}])  # fmt: skip
    run = start(workflow, ada)
    assert run.status == RunStatus.COMPLETED
    assert log(run)[0][2:] == ("skipped", "not enrolled in 'Win-back': The sequence is paused; only an active "
                                          "sequence accepts enrollments.")  # fmt: skip


def test_wait_until_a_time_of_day_in_the_subscribers_zone(workspace, ada):
    ada.time_zone = "Asia/Tokyo"
    ada.save()
    workflow = workflow_make(workspace, actions=[{"type": "wait", "until_time": "09:00"}])
    now = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo: tomorrow's 09:00 is 00:00 UTC on the 11th
    run = start(workflow, ada, now=now)
    assert run.due_at == datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    bob = SubscriberFactory(workspace=workspace)  # no zone: the workspace's (UTC) -> 09:00 UTC the same day
    run = start(workflow, bob, now=now)
    assert run.due_at == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def test_pausing_a_workflow_holds_its_runs_and_resume_continues(workspace, ada):
    workflow = workflow_make(workspace, actions=[{"type": "wait", "duration": {"value": 1, "unit": "hours"}},
                                                 {"type": "add_tag", "tag": "done"}])  # fmt: skip
    run = start(workflow, ada)
    services.workflow_pause(workspace=workspace, workflow=workflow)
    later = timezone.now() + timedelta(hours=2)
    assert workflow_runs_advance_due(now=later) == 0
    workflow.refresh_from_db()
    assert workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="x").outcome == StartOutcome.INACTIVE
    services.workflow_resume(workspace=workspace, workflow=workflow)
    assert workflow_runs_advance_due(now=later) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_cancelling_a_workflow_pauses_it_and_cancels_its_open_runs(workspace, ada):
    workflow = workflow_make(workspace, re_entry="always",
                             actions=[{"type": "wait", "duration": {"value": 1, "unit": "hours"}}])  # fmt: skip
    start(workflow, ada, key="a")
    start(workflow, ada, key="b")
    assert services.workflow_cancel(workspace=workspace, workflow=workflow) == 2
    workflow.refresh_from_db()
    assert workflow.status == "paused"
    assert set(WorkflowRun.objects.filter(workflow=workflow).values_list("status", flat=True)) == {"cancelled"}


def test_one_run_paused_resumed_and_cancelled(workspace, ada):
    workflow = workflow_make(workspace, actions=[{"type": "wait", "duration": {"value": 1, "unit": "hours"}},
                                                 {"type": "add_tag", "tag": "done"}])  # fmt: skip
    run = start(workflow, ada)
    services.workflow_run_pause(workspace=workspace, run=run)
    later = timezone.now() + timedelta(hours=2)
    assert workflow_runs_advance_due(now=later) == 0
    services.workflow_run_resume(workspace=workspace, run=run)
    services.workflow_run_cancel(workspace=workspace, run=run)
    assert workflow_runs_advance_due(now=later) == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and not ada.tags.exists()
    with pytest.raises(Conflict):
        services.workflow_run_resume(workspace=workspace, run=run)


def test_a_run_open_longer_than_the_execution_timeout_times_out(workspace, ada, settings):
    settings.WORKFLOW_EXECUTION_TIMEOUT = 7 * 86400
    workflow = workflow_make(workspace, actions=[
        {"type": "wait_for_event", "event": "paid", "timeout": {"value": 30, "unit": "days"}},
    ])  # fmt: skip
    run = start(workflow, ada)
    workflow_runs_advance_due(now=timezone.now() + timedelta(days=6))
    run.refresh_from_db()
    assert run.status == RunStatus.ACTIVE
    workflow_runs_advance_due(now=timezone.now() + timedelta(days=7, minutes=1))
    run.refresh_from_db()
    assert run.status == RunStatus.TIMED_OUT and run.wait_event_name == "" and run.outcome.startswith("timed out")


def test_the_tick_claims_in_batches_and_leaves_no_due_run_behind(workspace, settings):
    settings.WORKFLOW_TICK_BATCH = 3
    workflow = workflow_make(workspace, actions=[{"type": "wait", "duration": {"value": 1, "unit": "hours"}},
                                                 {"type": "add_tag", "tag": "done"}])  # fmt: skip
    people = [SubscriberFactory(workspace=workspace) for _ in range(7)]
    for person in people:
        start(workflow, person)
    assert workflow_runs_advance_due(now=timezone.now() + timedelta(hours=2)) == 7
    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {"completed"}
    assert Tag.objects.get(name="done").subscribers.count() == 7


def test_test_mode_shows_the_path_and_writes_nothing(workspace, ada, sequence):
    vip = Tag.objects.create(workspace=workspace, name="vip")
    template = TemplateFactory(workspace=workspace, name="Nudge")
    workflow = workflow_make(workspace, actions=[
        {"type": "add_tag", "tag": "t"},
        {"type": "wait_for_event", "event": "paid", "match_key": "cart_id", "timeout": {"value": 1, "unit": "days"},
         "on_event": [{"type": "goal", "name": "paid"}],
         "on_timeout": [{"type": "branch", "rules": {"tag": vip.pk},
                         "then": [{"type": "send_email", "template_id": template.pk}],
                         "else": [{"type": "enroll", "sequence_id": sequence.pk}]}]},
        {"type": "add_tag", "tag": "end"},
    ])  # fmt: skip
    counts = lambda: (WorkflowRun.objects.count(), WorkflowRunStep.objects.count(), Tag.objects.count(),  # noqa: E731
                      Message.objects.count(), Event.objects.count(), Enrollment.objects.count())  # fmt: skip
    before = counts()
    timeout = workflow_test(workflow=workflow, subscriber=ada, context={"properties": {"cart_id": 5}})
    assert [(p["path"], p["type"]) for p in timeout] == [
        ("0", "add_tag"), ("1", "wait_for_event"), ("1.on_timeout.0", "branch"), ("1.on_timeout.0.else.0", "enroll"),
        ("2", "add_tag"),
    ]  # fmt: skip
    assert timeout[1]["outcome"] == "would wait up to 1 day for 'paid' with cart_id=5; taking on_timeout"
    assert timeout[3]["outcome"] == "would enroll in 'Win-back'"
    event = workflow_test(workflow=workflow, subscriber=ada, wait_outcome="event")
    assert [p["path"] for p in event] == ["0", "1", "1.on_event.0"]
    assert event[-1]["outcome"] == "would reach goal 'paid'; the run ends"
    assert counts() == before


def test_editing_actions_under_a_waiting_run_continues_from_its_position(workspace, ada):
    workflow = workflow_make(workspace, actions=[
        {"type": "branch", "rules": {"status": "active"},
         "then": [{"type": "wait", "duration": {"value": 1, "unit": "hours"}}]},
        {"type": "add_tag", "tag": "after"},
    ])  # fmt: skip
    run = start(workflow, ada)
    assert run.position == [0, "then", 0]
    services.workflow_update(workspace=workspace, workflow=workflow, actions=[{"type": "add_tag", "tag": "only"}])
    workflow_runs_advance_due(now=timezone.now() + timedelta(hours=2))
    run.refresh_from_db()
    # The branch it was in is gone: the wait ends and the run goes on after the node it was in, which
    # no longer exists either, so it completes rather than failing or doing the new first action again.
    assert run.status == RunStatus.COMPLETED
    assert not ada.tags.exists()


def test_the_segment_usage_checker_names_the_workflows_that_use_a_segment(workspace):
    from automation.selectors import workflow_segment_usage
    from subscribers.segments import segment_create

    used, unused = (segment_create(workspace=workspace, name=n, rules={"status": "active"}) for n in ("a", "b"))
    workflow_make(workspace, name="On entry", trigger_type="segment_entered", trigger_config={"segment_id": used.pk},
                  actions=[{"type": "add_tag", "tag": "x"}])  # fmt: skip
    assert workflow_segment_usage(used) == ["workflow 'On entry' (trigger)"]
    assert workflow_segment_usage(unused) == []


def test_a_crash_before_the_step_is_recorded_leaves_no_email_and_the_retry_queues_one(workspace, ada, monkeypatch):
    from django.db import OperationalError

    template = TemplateFactory(workspace=workspace, name="Receipt")
    workflow = workflow_make(workspace, actions=[{"type": "send_email", "template_id": template.pk}])
    run = workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="k").run
    original, calls = WorkflowRunStep.save, []

    def crash_once(self, *args, **kwargs):
        calls.append(self.action_type)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WorkflowRunStep, "save", crash_once)
    with pytest.raises(OperationalError):
        run_advance(run.pk)
    run.refresh_from_db()
    assert Message.objects.count() == 0 and run.step_count == 0 and run.position == [0] and run.status == "active"
    run_advance(run.pk)  # the tick's next try
    run.refresh_from_db()
    assert Message.objects.filter(subscriber=ada, template=template).count() == 1
    assert run.status == RunStatus.COMPLETED and [t for _, t, _, _ in log(run)] == ["send_email"]
    run_advance(run.pk)
    assert Message.objects.count() == 1


def test_a_long_run_stops_after_the_per_advance_cap_and_the_tick_finishes_it(workspace, ada, monkeypatch):
    from automation import engine

    monkeypatch.setattr(engine, "MAX_ACTIONS_PER_ADVANCE", 2)
    workflow = workflow_make(workspace, actions=[{"type": "add_tag", "tag": f"t{i}"} for i in range(5)])
    run = start(workflow, ada)
    assert run.status == RunStatus.ACTIVE and run.position == [2] and run.step_count == 2
    while workflow_runs_advance_due(now=timezone.now() + timedelta(minutes=10)):
        pass
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and ada.tags.count() == 5
