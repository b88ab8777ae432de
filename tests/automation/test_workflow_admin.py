"""Admin for workflows and runs: pages render, counts without N+1, the step log at a glance, actions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from automation.models import (
    RunStatus,
    StepStatus,
    TriggerType,
    Workflow,
    WorkflowRun,
    WorkflowRunStep,
    WorkflowStatus,
)
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def admin_client(db) -> Client:
    user = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def workflow_with_runs(workspace, name: str, statuses: list[str]) -> Workflow:
    workflow = Workflow.objects.create(
        workspace=workspace, name=name, status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.WEBHOOK
    )
    for index, status in enumerate(statuses):
        WorkflowRun.objects.create(
            workspace=workspace, workflow=workflow, subscriber=SubscriberFactory(workspace=workspace),
            status=status, dedupe_key=str(index), trigger_type=workflow.trigger_type,
        )  # fmt: skip
    return workflow


def test_workflow_changelist_counts_runs_by_state_in_one_query(admin_client, workspace):
    workflow_with_runs(
        workspace, "Welcome", [RunStatus.ACTIVE, RunStatus.PAUSED, RunStatus.COMPLETED, RunStatus.FAILED]
    )
    page = admin_client.get("/admin/automation/workflow/")
    assert page.status_code == 200
    cells = re.findall(r'<td class="field-runs_(\w+)">(\d+)</td>', page.content.decode())
    assert cells == [("open", "2"), ("completed", "1"), ("failed", "1")]

    with CaptureQueriesContext(connection) as few:
        admin_client.get("/admin/automation/workflow/")
    for index in range(5):
        workflow_with_runs(workspace, f"More {index}", [RunStatus.COMPLETED, RunStatus.ACTIVE])
    with CaptureQueriesContext(connection) as many:
        admin_client.get("/admin/automation/workflow/")
    assert len(many.captured_queries) == len(few.captured_queries)


def test_workflow_change_page_shows_the_trigger_readably_and_the_hook_url(admin_client, workspace, settings):
    settings.PUBLIC_BASE_URL = "https://mail.example.com"
    workflow = workflow_with_runs(workspace, "Hooked", [])
    workflow.trigger_config = {"event_name": "order_placed"}
    workflow.actions = [{"type": "tag_add", "tag": "buyer"}]
    workflow.save()
    page = admin_client.get(f"/admin/automation/workflow/{workflow.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert f"https://mail.example.com/hooks/{workflow.hook_token}" in body
    assert "&quot;event_name&quot;: &quot;order_placed&quot;" in body
    assert "&quot;tag&quot;: &quot;buyer&quot;" in body


def test_activate_and_pause_actions_keep_the_cron_task_in_step(admin_client, workspace):
    workflow = Workflow.objects.create(
        workspace=workspace, name="Nightly", status=WorkflowStatus.DRAFT, trigger_type=TriggerType.CRON,
        trigger_config={"cron": "0 2 * * *", "timezone": "Europe/Paris"}, actions=[{"type": "add_tag", "tag": "x"}],
    )  # fmt: skip
    admin_client.post("/admin/automation/workflow/", {"action": "activate", "_selected_action": [workflow.pk]})
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE and workflow.activated_at is not None
    assert PeriodicTask.objects.get(pk=workflow.periodic_task_id).enabled is True

    admin_client.post("/admin/automation/workflow/", {"action": "pause", "_selected_action": [workflow.pk]})
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.PAUSED
    assert PeriodicTask.objects.get(pk=workflow.periodic_task_id).enabled is False

    admin_client.post(f"/admin/automation/workflow/{workflow.pk}/delete/", {"post": "yes"})
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not PeriodicTask.objects.filter(name__startswith=f"workflow {workflow.pk}:").exists()


def test_activating_a_cron_workflow_with_a_bad_schedule_says_why(admin_client, workspace):
    workflow = Workflow.objects.create(
        workspace=workspace, name="Broken", status=WorkflowStatus.DRAFT, trigger_type=TriggerType.CRON,
        trigger_config={"cron": "every day"}, actions=[{"type": "add_tag", "tag": "x"}],
    )  # fmt: skip
    page = admin_client.post(
        "/admin/automation/workflow/", {"action": "activate", "_selected_action": [workflow.pk]}, follow=True
    )
    assert "trigger_config.cron" in page.content.decode()
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.DRAFT  # the status change rolled back with the failed sync


def test_run_pages_render_with_the_step_log_and_runs_cannot_be_added(admin_client, workspace):
    workflow = workflow_with_runs(workspace, "Win-back", [RunStatus.COMPLETED])
    run = WorkflowRun.objects.get(workflow=workflow)
    run.outcome = "completed: goal reached"
    run.save()
    WorkflowRunStep.objects.create(
        run=run, seq=1, path="0", action_type="tag_add", status=StepStatus.DONE, detail="tagged win-back",
        started_at=T0, finished_at=T0 + timedelta(milliseconds=12),
    )  # fmt: skip
    WorkflowRunStep.objects.create(
        run=run, seq=2, path="1.then.0", action_type="webhook", status=StepStatus.FAILED, detail="POST refused",
        error="HTTP 500 from https://hooks.example.com", started_at=T0, finished_at=T0 + timedelta(seconds=2.5),
    )  # fmt: skip

    listing = admin_client.get("/admin/automation/workflowrun/?status=completed")
    assert listing.status_code == 200
    assert run.subscriber.email in listing.content.decode()
    assert "completed: goal reached" in listing.content.decode()
    assert admin_client.get(f"/admin/automation/workflowrun/?workflow__id__exact={workflow.pk}").status_code == 200

    page = admin_client.get(f"/admin/automation/workflowrun/{run.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    for text in ("tagged win-back", "1.then.0", "HTTP 500 from https://hooks.example.com", "12 ms", "2.5 s"):
        assert text in body, text
    assert body.index("tagged win-back") < body.index("POST refused")  # in order of seq
    assert admin_client.get("/admin/automation/workflowrun/add/").status_code == 403


def add_form(workspace, **changes) -> dict:
    form = {
        "workspace": workspace.pk, "name": "Buyers", "description": "Tags buyers.", "trigger_type": "event",
        "trigger_config": '{"name": "Order_Placed"}', "entry_rules": "", "re_entry": "once", "dedupe_property": "",
        "actions": '[{"type": "add_tag", "tag": "buyer"}]',
    }  # fmt: skip
    return {**form, **changes}


def form_errors(page) -> dict[str, list[str]]:
    return {field: list(errors) for field, errors in page.context["adminform"].form.errors.items()}


def test_adding_a_workflow_goes_through_the_service(admin_client, workspace):
    blank = admin_client.get("/admin/automation/workflow/add/")
    assert blank.status_code == 200
    assert 'name="status"' not in blank.content.decode()  # the status changes by the actions only
    page = admin_client.post("/admin/automation/workflow/add/", add_form(workspace))
    assert page.status_code == 302, form_errors(page)
    workflow = Workflow.objects.get(workspace=workspace, name="Buyers")
    assert workflow.status == WorkflowStatus.DRAFT
    assert workflow.trigger_key == "order_placed"  # derived by workflow_create, not typed in the form
    assert workflow.trigger_config == {"name": "Order_Placed", "properties": {}}  # normalized by the service
    assert workflow.actions == [{"type": "add_tag", "tag": "buyer"}]
    assert page["Location"].endswith("/admin/automation/workflow/")

    # The change page shows the stored JSON indented, one key a line (in jsonb's order of keys).
    body = admin_client.get(f"/admin/automation/workflow/{workflow.pk}/change/").content.decode()
    assert "[\n  {\n    &quot;tag&quot;: &quot;buyer&quot;,\n    &quot;type&quot;: &quot;add_tag&quot;\n  }\n]" in body


def test_adding_a_cron_workflow_creates_its_disabled_periodic_task(admin_client, workspace):
    form = add_form(
        workspace,
        name="Nightly",
        trigger_type="cron",
        trigger_config='{"cron": "0 2 * * *", "timezone": "Europe/Paris"}',
    )
    page = admin_client.post("/admin/automation/workflow/add/", form)
    assert page.status_code == 302, form_errors(page)
    workflow = Workflow.objects.get(workspace=workspace, name="Nightly")
    task = PeriodicTask.objects.get(pk=workflow.periodic_task_id)
    assert task.enabled is False  # a draft: enabled only once activated
    assert task.crontab.hour == "2" and str(task.crontab.timezone) == "Europe/Paris"


def test_an_invalid_action_is_a_form_error_naming_its_path_and_nothing_is_saved(admin_client, workspace):
    actions = """[
      {"type": "add_tag", "tag": "buyer"},
      {"type": "wait_for_event", "event": "paid", "timeout": {"value": 1, "unit": "days"},
       "on_event": [{"type": "add_tag", "tag": "  "}]}
    ]"""
    form = add_form(workspace, trigger_type="cron", trigger_config='{"cron": "0 2 * * *"}', actions=actions)
    page = admin_client.post("/admin/automation/workflow/add/", form)
    assert page.status_code == 200
    assert form_errors(page) == {"actions": ["actions[1].on_event[0].tag: Must be a non-empty string."]}
    assert "actions[1].on_event[0].tag: Must be a non-empty string." in page.content.decode()
    assert "&quot;tag&quot;: &quot;  &quot;" in page.content.decode()  # the text is shown again to be fixed
    assert not Workflow.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="workflow ").exists()  # the dry run rolled back


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"actions": '[{"type": "add_tag", "tag": "x"'}, "actions", "Enter a valid JSON."),
        ({"trigger_config": "{}"}, "trigger_config", "trigger_config.name: This key is required."),
        ({"trigger_type": "cron", "trigger_config": '{"cron": "61 * * * *"}'}, "trigger_config", "trigger_config.cron"),
        ({"actions": '[{"type": "fly"}]'}, "actions", "actions[0].type: Must be one of"),
        ({"actions": '{"type": "add_tag"}'}, "actions", "Must be a list of actions."),
        ({"entry_rules": '{"bogus": 1}'}, "entry_rules", "Must contain one of: all, any"),
        ({"name": "   "}, "name", "This field is required."),
    ],
)
def test_bad_input_in_the_add_form_is_a_form_error_on_its_field(admin_client, workspace, changes, field, message):
    page = admin_client.post("/admin/automation/workflow/add/", add_form(workspace, **changes))
    assert page.status_code == 200
    errors = form_errors(page)
    assert list(errors) == [field], errors
    assert any(message in text for text in errors[field]), errors
    assert not Workflow.objects.exists()


def test_changing_a_workflow_goes_through_the_service_and_refusals_leave_it_as_it_was(admin_client, workspace):
    admin_client.post("/admin/automation/workflow/add/", add_form(workspace))
    admin_client.post("/admin/automation/workflow/add/", add_form(workspace, name="Other"))
    workflow = Workflow.objects.get(name="Buyers")
    url = f"/admin/automation/workflow/{workflow.pk}/change/"

    page = admin_client.post(url, add_form(workspace, name="Big buyers", trigger_config='{"name": "big_order"}'))
    assert page.status_code == 302, form_errors(page)
    workflow.refresh_from_db()
    assert (workflow.name, workflow.trigger_key) == ("Big buyers", "big_order")

    page = admin_client.post(url, add_form(workspace, name="Other"))
    assert form_errors(page) == {"name": ["A workflow named 'Other' exists."]}
    page = admin_client.post(url, add_form(workspace, name="Renamed", actions='[{"type": "add_tag"}]'))
    assert form_errors(page) == {"actions": ["actions[0].tag: This key is required."]}
    workflow.refresh_from_db()
    assert (workflow.name, workflow.actions) == ("Big buyers", [{"type": "add_tag", "tag": "buyer"}])
    # The status and the workspace are not in the form: posting them changes nothing.
    admin_client.post(url, add_form(workspace, name="Big buyers", status="active", description="still a draft"))
    workflow.refresh_from_db()
    assert (workflow.name, workflow.status, workflow.description) == ("Big buyers", "draft", "still a draft")


def test_workflow_state_actions_go_through_the_services_and_say_what_happened(admin_client, workspace):
    workflow = workflow_with_runs(workspace, "Welcome", [RunStatus.ACTIVE, RunStatus.PAUSED, RunStatus.COMPLETED])
    Workflow.objects.filter(pk=workflow.pk).update(
        status=WorkflowStatus.DRAFT, actions=[{"type": "add_tag", "tag": "x"}]
    )
    empty = Workflow.objects.create(workspace=workspace, name="Empty", trigger_type=TriggerType.API)

    def act(action: str, *workflows: Workflow) -> list[str]:
        page = admin_client.post(
            "/admin/automation/workflow/",
            {"action": action, "_selected_action": [w.pk for w in workflows]},
            follow=True,
        )
        for item in workflows:
            item.refresh_from_db()
        return [str(message) for message in page.context["messages"]]

    assert act("activate", workflow, empty) == [
        "Empty: A workflow needs at least one action to run.",
        "1 workflow activated.",
    ]
    assert (workflow.status, empty.status) == (WorkflowStatus.ACTIVE, WorkflowStatus.DRAFT)
    assert act("resume", workflow, empty) == ["Empty: The workflow is draft.", "1 workflow resumed."]
    assert act("pause", workflow) == ["1 workflow paused."]
    assert workflow.status == WorkflowStatus.PAUSED
    assert act("resume", workflow) == ["1 workflow resumed."]
    assert workflow.status == WorkflowStatus.ACTIVE

    assert act("cancel", workflow) == ["1 workflow cancelled (paused); 2 open runs cancelled."]
    assert workflow.status == WorkflowStatus.PAUSED
    statuses = sorted(WorkflowRun.objects.filter(workflow=workflow).values_list("status", "outcome"))
    assert statuses == [
        (RunStatus.CANCELLED, "cancelled with the workflow"),
        (RunStatus.CANCELLED, "cancelled with the workflow"),
        (RunStatus.COMPLETED, ""),
    ]


def test_deleting_cron_workflows_in_the_admin_removes_their_periodic_tasks(admin_client, workspace):
    for name in ("One", "Two", "Three"):
        form = add_form(workspace, name=name, trigger_type="cron", trigger_config='{"cron": "0 2 * * *"}')
        assert admin_client.post("/admin/automation/workflow/add/", form).status_code == 302
    one, two, three = (Workflow.objects.get(name=name) for name in ("One", "Two", "Three"))
    assert PeriodicTask.objects.filter(name__startswith="workflow ").count() == 3

    admin_client.post(f"/admin/automation/workflow/{one.pk}/delete/", {"post": "yes"})
    assert not Workflow.objects.filter(pk=one.pk).exists()
    assert not PeriodicTask.objects.filter(pk=one.periodic_task_id).exists()

    admin_client.post(
        "/admin/automation/workflow/",
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"},
    )
    assert not Workflow.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="workflow ").exists()


def test_run_state_actions_go_through_the_services_with_per_run_refusals(admin_client, workspace):
    workflow = workflow_with_runs(workspace, "Runs", [RunStatus.ACTIVE, RunStatus.ACTIVE, RunStatus.COMPLETED])
    first, second, done = WorkflowRun.objects.filter(workflow=workflow).order_by("dedupe_key")

    def act(action: str, *runs: WorkflowRun) -> list[str]:
        page = admin_client.post(
            "/admin/automation/workflowrun/", {"action": action, "_selected_action": [r.pk for r in runs]}, follow=True
        )
        for run in runs:
            run.refresh_from_db()
        return [str(message) for message in page.context["messages"]]

    assert act("pause", first, done) == [f"{done}: The run is completed.", "1 run paused."]
    assert (first.status, done.status) == (RunStatus.PAUSED, RunStatus.COMPLETED)
    assert act("resume", first, second) == ["2 runs resumed."]  # resuming an active run is a no-op
    assert first.status == RunStatus.ACTIVE
    assert act("cancel", first, done) == [f"{done}: The run is completed.", "1 run cancelled."]
    assert (first.status, first.outcome, second.status) == (RunStatus.CANCELLED, "cancelled", RunStatus.ACTIVE)
    assert act("resume", first) == [f"{first}: The run is cancelled."]


def test_run_page_says_at_the_top_why_the_run_is_where_it_is(admin_client, workspace):
    workflow = workflow_with_runs(workspace, "Carts", [RunStatus.ACTIVE, RunStatus.FAILED])
    waiting, failed = WorkflowRun.objects.filter(workflow=workflow).order_by("dedupe_key")
    waiting.wait = {"type": "wait_for_event", "event": "paid", "match_key": "cart_id"}
    waiting.wait_event_name, waiting.wait_key_value, waiting.due_at = "paid", "5", T0
    waiting.save()
    failed.outcome, failed.error = "failed at 1: webhook", "HTTP 500 from https://hooks.example.com"
    failed.save()
    WorkflowRunStep.objects.create(
        run=failed, seq=1, path="1", action_type="webhook", status=StepStatus.FAILED, detail="POST refused",
        error="HTTP 500 from https://hooks.example.com", started_at=T0, finished_at=T0,
    )  # fmt: skip

    body = admin_client.get(f"/admin/automation/workflowrun/{waiting.pk}/change/").content.decode()
    why = body[body.index("field-why") : body.index("field-workspace")]
    assert "still open" in why
    assert "waiting for &#x27;paid&#x27; with cart_id=5, timing out at 2026-06-01 09:00 UTC" in why

    body = admin_client.get(f"/admin/automation/workflowrun/{failed.pk}/change/").content.decode()
    why = body[body.index("field-why") : body.index("field-workspace")]
    assert "failed at 1: webhook" in why
    assert "HTTP 500 from https://hooks.example.com" in why
    assert "#1 webhook at 1: failed" in why
    assert "waiting" not in why


def test_staff_without_permissions_gets_403_on_workflow_and_run_admin(workspace):
    user = get_user_model().objects.create_user("staff@example.com", "staff@example.com", "pw-123456789")
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    workflow = workflow_with_runs(workspace, "Guarded", [RunStatus.ACTIVE])
    run = WorkflowRun.objects.get(workflow=workflow)
    for url in (
        "/admin/automation/workflow/", "/admin/automation/workflow/add/",
        f"/admin/automation/workflow/{workflow.pk}/change/", f"/admin/automation/workflow/{workflow.pk}/delete/",
        "/admin/automation/workflowrun/", f"/admin/automation/workflowrun/{run.pk}/change/",
    ):  # fmt: skip
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/automation/workflow/add/", add_form(workspace, name="Sneaky")).status_code == 403
    page = client.post("/admin/automation/workflow/", {"action": "cancel", "_selected_action": [workflow.pk]})
    assert page.status_code == 403
    page = client.post("/admin/automation/workflowrun/", {"action": "cancel", "_selected_action": [run.pk]})
    assert page.status_code == 403
    workflow.refresh_from_db()
    run.refresh_from_db()
    assert (workflow.status, run.status) == (WorkflowStatus.ACTIVE, RunStatus.ACTIVE)
    assert Workflow.objects.count() == 1
