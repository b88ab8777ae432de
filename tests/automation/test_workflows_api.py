"""The workflows and workflow-runs API: every endpoint, its validation errors, roles and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from automation.engine import workflow_runs_advance_due
from automation.models import Workflow, WorkflowRun, WorkflowRunStep
from tests.automation.test_engine_support import eager, workflow_make  # noqa: F401
from tests.factories import SubscriberFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager")]

BODY = {
    "name": "First order",
    "trigger_type": "event",
    "trigger_config": {"name": "order_placed"},
    "actions": [{"type": "add_tag", "tag": "buyer"}, {"type": "wait", "duration": {"value": 1, "unit": "days"}},
                {"type": "add_tag", "tag": "later"}],
    "dedupe_property": "order_id",
}  # fmt: skip
WAIT = [{"type": "wait", "duration": {"value": 1, "unit": "hours"}}]


@pytest.fixture
def ada(workspace):
    return SubscriberFactory(workspace=workspace, email="ada@example.org")


@pytest.fixture
def waiting_run(workspace, ada):
    workflow = workflow_make(workspace, name="Waits", actions=WAIT, trigger_type="api", trigger_config={})
    from automation.engine import run_advance
    from automation.runs import workflow_run_start

    run = workflow_run_start(workflow=workflow, subscriber=ada, dedupe_key="k").run
    run_advance(run.pk)
    return run


def test_create_read_update_list_and_delete(api, workspace):
    created = api.post("/api/v1/workflows", BODY, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft" and body["trigger_config"] == {"name": "order_placed", "properties": {}}
    assert body["hook_url"] is None and "hook_token" not in body
    workflow_id = body["id"]
    assert api.get(f"/api/v1/workflows/{workflow_id}").json()["name"] == "First order"
    changed = api.patch(f"/api/v1/workflows/{workflow_id}", {"name": "Renamed", "re_entry": "always"}, format="json")
    assert changed.status_code == 200 and changed.json()["re_entry"] == "always"
    assert [w["name"] for w in api.get("/api/v1/workflows").json()["results"]] == ["Renamed"]
    assert api.get("/api/v1/workflows?status=active").json()["results"] == []
    assert api.delete(f"/api/v1/workflows/{workflow_id}").status_code == 204
    assert not Workflow.objects.exists()


def test_a_webhook_workflow_shows_its_hook_url_only(api):
    created = api.post("/api/v1/workflows", {**BODY, "trigger_type": "webhook", "trigger_config": {}}, format="json")
    workflow = Workflow.objects.get(pk=created.json()["id"])
    assert created.json()["hook_url"] == f"http://testserver/hooks/{workflow.hook_token}"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"actions": [{"type": "add_tag", "tag": "x"}, {"type": "branch", "rules": {"status": "active"},
                                                         "then": [{"type": "add_tag"}]}]}, "actions[1].then[0].tag"),
        ({"actions": [{"type": "teleport"}]}, "actions[0].type"),
        ({"actions": [{"type": "wait", "duration": {"value": 0, "unit": "days"}}]}, "actions[0].duration.value"),
        ({"actions": [{"type": "wait", "until_time": "25:00"}]}, "actions[0].until_time"),
        ({"actions": [{"type": "enroll", "sequence_id": 10**17}]}, "actions[0].sequence_id"),
        ({"actions": [{"type": "notify", "subject": "{% bad %}", "body": "b"}]}, "actions[0].subject"),
        ({"actions": "tag them"}, "actions"),
        ({"entry_rules": {"status": "nope"}}, "entry_rules.status"),
        ({"trigger_config": {"name": ""}}, "trigger_config.name"),
        ({"trigger_type": "cron", "trigger_config": {"cron": "every day"}}, "trigger_config.cron"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_path(api, change, path):
    response = api.post("/api/v1/workflows", {**BODY, **change}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert path in error["details"], error


def test_the_limit_answers_409(api, settings):
    settings.AUTOMATION_MAX_WORKFLOWS = 1
    assert api.post("/api/v1/workflows", BODY, format="json").status_code == 201
    response = api.post("/api/v1/workflows", {**BODY, "name": "Second"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "workflow_limit_reached"


def test_activate_pause_resume_cancel(api, workspace, ada):
    workflow_id = api.post("/api/v1/workflows", BODY, format="json").json()["id"]
    assert api.post(f"/api/v1/workflows/{workflow_id}/resume").status_code == 409  # a draft is not paused
    assert api.post(f"/api/v1/workflows/{workflow_id}/activate").json()["status"] == "active"
    triggered = api.post(
        f"/api/v1/workflows/{workflow_id}/trigger",
        {"email": "ADA@example.org", "properties": {"order_id": 7}},
        format="json",
    )
    assert triggered.status_code == 200, triggered.content
    assert triggered.json()["outcome"] == "started" and triggered.json()["run_status"] == "active"
    again = api.post(
        f"/api/v1/workflows/{workflow_id}/trigger",
        {"subscriber_id": ada.pk, "properties": {"order_id": 7}},
        format="json",
    )
    assert again.json()["outcome"] == "duplicate" and again.json()["run_id"] == triggered.json()["run_id"]
    assert api.post(f"/api/v1/workflows/{workflow_id}/pause").json()["status"] == "paused"
    paused = api.post(f"/api/v1/workflows/{workflow_id}/trigger", {"subscriber_id": ada.pk}, format="json")
    assert paused.json()["outcome"] == "workflow_not_active"
    assert api.post(f"/api/v1/workflows/{workflow_id}/resume").json()["status"] == "active"
    cancelled = api.post(f"/api/v1/workflows/{workflow_id}/cancel")
    assert cancelled.json() == {**cancelled.json(), "runs_cancelled": 1}
    assert cancelled.json()["workflow"]["status"] == "paused"
    runs = api.get(f"/api/v1/workflows/{workflow_id}/runs").json()["results"]
    assert [r["status"] for r in runs] == ["cancelled"]


def test_trigger_answers_why_nothing_started(api, workspace, ada):
    workflow = workflow_make(
        workspace, trigger_type="api", trigger_config={}, actions=[{"type": "add_tag", "tag": "x"}],
        entry_rules={"status": "unsubscribed"},
    )  # fmt: skip
    response = api.post(f"/api/v1/workflows/{workflow.pk}/trigger", {"subscriber_id": ada.pk}, format="json")
    assert response.json()["outcome"] == "conditions_not_met"
    assert response.json()["detail"] == "The subscriber does not meet the entry conditions."
    missing = api.post(f"/api/v1/workflows/{workflow.pk}/trigger", {"email": "nobody@example.org"}, format="json")
    assert missing.status_code == 404
    neither = api.post(f"/api/v1/workflows/{workflow.pk}/trigger", {}, format="json")
    assert neither.status_code == 400 and "subscriber_id" in neither.json()["error"]["details"]


def test_test_mode_answers_the_path_and_a_viewer_may_use_it(client_for, workspace, ada):
    workflow = workflow_make(workspace, actions=[
        {"type": "wait_for_event", "event": "paid", "match_key": "cart_id", "timeout": {"value": 1, "unit": "days"},
         "on_event": [{"type": "goal", "name": "paid"}], "on_timeout": [{"type": "add_tag", "tag": "lost"}]},
    ])  # fmt: skip
    viewer = client_for(workspace, Role.VIEWER)
    response = viewer.post(f"/api/v1/workflows/{workflow.pk}/test",
                           {"subscriber_id": ada.pk, "properties": {"cart_id": 3}, "wait_outcome": "event"},
                           format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json() == {
        "entry_conditions_met": True,
        "path": [
            {"path": "0", "type": "wait_for_event",
             "outcome": "would wait up to 1 day for 'paid' with cart_id=3; taking on_event"},
            {"path": "0.on_event.0", "type": "goal", "outcome": "would reach goal 'paid'; the run ends"},
        ],
    }  # fmt: skip
    assert not WorkflowRun.objects.exists()


def test_runs_list_filters_and_detail_with_steps(api, workspace, ada, waiting_run):
    other = SubscriberFactory(workspace=workspace)
    listed = api.get(f"/api/v1/workflow-runs?subscriber={ada.pk}&status=active").json()["results"]
    assert [r["id"] for r in listed] == [waiting_run.pk]
    assert api.get(f"/api/v1/workflow-runs?subscriber={other.pk}").json()["results"] == []
    assert api.get(f"/api/v1/workflow-runs?workflow={waiting_run.workflow_id}").json()["count"] == 1
    assert api.get("/api/v1/workflow-runs?workflow=99999999999999999999").status_code == 400
    detail = api.get(f"/api/v1/workflow-runs/{waiting_run.pk}").json()
    assert detail["subscriber_email"] == "ada@example.org" and detail["workflow_name"] == "Waits"
    assert [(s["seq"], s["action_type"], s["status"]) for s in detail["steps"]] == [(1, "wait", "waiting")]


def test_run_pause_resume_cancel(api, waiting_run):
    url = f"/api/v1/workflow-runs/{waiting_run.pk}"
    assert api.post(f"{url}/pause").json()["status"] == "paused"
    assert workflow_runs_advance_due(now=timezone.now() + timedelta(hours=2)) == 0
    assert api.post(f"{url}/resume").json()["status"] == "active"
    cancelled = api.post(f"{url}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["outcome"] == "cancelled"
    refused = api.post(f"{url}/pause")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "run_state"


def test_another_workspace_sees_nothing_and_reaches_nothing(other_api, workspace, ada, waiting_run):
    workflow_id = waiting_run.workflow_id
    assert other_api.get("/api/v1/workflows").json()["results"] == []
    assert other_api.get("/api/v1/workflow-runs").json()["results"] == []
    for method, url in [
        ("get", f"/api/v1/workflows/{workflow_id}"), ("patch", f"/api/v1/workflows/{workflow_id}"),
        ("delete", f"/api/v1/workflows/{workflow_id}"), ("post", f"/api/v1/workflows/{workflow_id}/activate"),
        ("post", f"/api/v1/workflows/{workflow_id}/pause"), ("post", f"/api/v1/workflows/{workflow_id}/resume"),
        ("post", f"/api/v1/workflows/{workflow_id}/cancel"), ("post", f"/api/v1/workflows/{workflow_id}/trigger"),
        ("post", f"/api/v1/workflows/{workflow_id}/test"), ("get", f"/api/v1/workflows/{workflow_id}/runs"),
        ("get", f"/api/v1/workflow-runs/{waiting_run.pk}"), ("post", f"/api/v1/workflow-runs/{waiting_run.pk}/pause"),
        ("post", f"/api/v1/workflow-runs/{waiting_run.pk}/resume"),
        ("post", f"/api/v1/workflow-runs/{waiting_run.pk}/cancel"),
    ]:  # fmt: skip
        response = getattr(other_api, method)(url, {"subscriber_id": ada.pk, "name": "x"}, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    waiting_run.refresh_from_db()
    assert waiting_run.status == "active" and Workflow.objects.get(pk=workflow_id).status == "active"


def test_my_workflow_cannot_be_triggered_for_a_subscriber_of_another_workspace(api, workspace, other_workspace):
    workflow = workflow_make(workspace, trigger_type="api", trigger_config={}, actions=WAIT)
    theirs = SubscriberFactory(workspace=other_workspace)
    for action in ("trigger", "test"):
        response = api.post(f"/api/v1/workflows/{workflow.pk}/{action}", {"subscriber_id": theirs.pk}, format="json")
        assert response.status_code == 404
    assert not WorkflowRun.objects.exists()


def test_a_viewer_reads_but_cannot_write(client_for, workspace, waiting_run):
    viewer = client_for(workspace, Role.VIEWER)
    workflow_id = waiting_run.workflow_id
    assert viewer.get("/api/v1/workflows").status_code == 200
    assert viewer.get(f"/api/v1/workflows/{workflow_id}/runs").status_code == 200
    assert viewer.get(f"/api/v1/workflow-runs/{waiting_run.pk}").status_code == 200
    for method, url in [
        ("post", "/api/v1/workflows"), ("patch", f"/api/v1/workflows/{workflow_id}"),
        ("delete", f"/api/v1/workflows/{workflow_id}"), ("post", f"/api/v1/workflows/{workflow_id}/activate"),
        ("post", f"/api/v1/workflows/{workflow_id}/pause"), ("post", f"/api/v1/workflows/{workflow_id}/resume"),
        ("post", f"/api/v1/workflows/{workflow_id}/cancel"), ("post", f"/api/v1/workflows/{workflow_id}/trigger"),
        ("post", f"/api/v1/workflow-runs/{waiting_run.pk}/pause"),
        ("post", f"/api/v1/workflow-runs/{waiting_run.pk}/resume"),
        ("post", f"/api/v1/workflow-runs/{waiting_run.pk}/cancel"),
    ]:  # fmt: skip
        response = getattr(viewer, method)(url, BODY, format="json")
        assert response.status_code == 403, (method, url, response.status_code)
    assert WorkflowRunStep.objects.count() == 1 and Workflow.objects.count() == 1
    marketer = client_for(workspace, Role.MARKETER)
    assert marketer.post(f"/api/v1/workflow-runs/{waiting_run.pk}/pause").status_code == 200


def test_unstorable_properties_answer_400_not_500(api, workspace, ada):
    workflow = workflow_make(workspace, trigger_type="api", trigger_config={}, actions=WAIT)
    for action in ("trigger", "test"):
        response = api.post(
            f"/api/v1/workflows/{workflow.pk}/{action}",
            {"subscriber_id": ada.pk, "properties": {"note": "nul\u0000here"}}, format="json",
        )  # fmt: skip
        assert response.status_code == 400 and "properties" in response.json()["error"]["details"]
    bad_name = api.post("/api/v1/workflows", {**BODY, "trigger_config": {"name": "a\u0000b"}}, format="json")
    assert bad_name.status_code == 400 and "trigger_config.name" in bad_name.json()["error"]["details"]
