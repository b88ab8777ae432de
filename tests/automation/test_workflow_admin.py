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
    assert admin_client.get("/admin/automation/workflow/add/").status_code == 403


def test_activate_and_pause_actions_keep_the_cron_task_in_step(admin_client, workspace):
    workflow = Workflow.objects.create(
        workspace=workspace, name="Nightly", status=WorkflowStatus.DRAFT, trigger_type=TriggerType.CRON,
        trigger_config={"cron": "0 2 * * *", "timezone": "Europe/Paris"},
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
        trigger_config={"cron": "every day"},
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
