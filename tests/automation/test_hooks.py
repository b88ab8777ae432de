"""The inbound workflow hook: POST /hooks/<token> upserts the subscriber and starts a run."""

from __future__ import annotations

import json

import pytest

from automation import triggers
from automation.hooks import HOOK_MAX_BYTES
from automation.models import ReEntry, TriggerType, Workflow, WorkflowRun, WorkflowStatus
from subscribers.models import FieldType, Subscriber
from tests.factories import FieldDefinitionFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "details": None}}


@pytest.fixture
def advanced(monkeypatch) -> list[int]:
    """The run ids handed to the engine's run_advance (a stub until the engine merges)."""
    calls: list[int] = []
    monkeypatch.setattr(triggers, "run_advance", calls.append)
    return calls


@pytest.fixture
def workflow(workspace) -> Workflow:
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    FieldDefinitionFactory(workspace=workspace, key="seats", type=FieldType.NUMBER)
    return Workflow.objects.create(
        workspace=workspace, name="Order placed", status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.WEBHOOK,
        trigger_config={"event_name": "order_placed"}, re_entry=ReEntry.ALWAYS, dedupe_property="order_id",
    )  # fmt: skip


def post(client, workflow_or_token, body, capture=None, **extra):
    token = workflow_or_token if isinstance(workflow_or_token, str) else workflow_or_token.hook_token
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    if capture is None:
        return client.post(f"/hooks/{token}", data, content_type="application/json", **extra)
    with capture(execute=True):
        return client.post(f"/hooks/{token}", data, content_type="application/json", **extra)


def test_a_post_creates_the_subscriber_starts_a_run_and_advances_it_after_commit(
    client, workflow, advanced, django_capture_on_commit_callbacks
):
    body = {
        "email": "New.Buyer@Example.org", "first_name": "Nia", "attributes": {"plan": "pro", "seats": "3"},
        "properties": {"order_id": "A-100", "total": 42.5},
    }  # fmt: skip
    response = post(client, workflow, body, django_capture_on_commit_callbacks)

    assert response.status_code == 202
    run = WorkflowRun.objects.get(workflow=workflow)
    assert response.json() == {"run_id": run.pk, "outcome": "started"}
    assert advanced == [run.pk]
    subscriber = run.subscriber
    assert (subscriber.email, subscriber.first_name, subscriber.attributes) == (
        "new.buyer@example.org", "Nia", {"plan": "pro", "seats": 3},
    )  # fmt: skip
    assert subscriber.consent_source == "webhook"
    assert run.dedupe_key == "A-100"  # the workflow's dedupe_property, read from the properties
    assert run.context == {
        "trigger": "webhook", "event_name": "order_placed", "properties": {"order_id": "A-100", "total": 42.5},
    }  # fmt: skip


def test_an_existing_subscriber_is_found_by_address_and_its_attributes_merged(client, workspace, workflow, advanced):
    existing = SubscriberFactory(workspace=workspace, email="ann@x.org", attributes={"plan": "free", "seats": 1})

    response = post(client, workflow, {"email": "ANN@x.org", "attributes": {"plan": "pro"}})

    assert response.status_code == 202
    existing.refresh_from_db()
    assert existing.attributes == {"plan": "pro", "seats": 1}
    assert Subscriber.objects.filter(workspace=workspace).count() == 1
    assert WorkflowRun.objects.get(workflow=workflow).subscriber_id == existing.pk


def test_the_same_dedupe_key_enters_once(client, workflow, advanced, django_capture_on_commit_callbacks):
    first = post(client, workflow, {"email": "a@x.org", "dedupe_key": "evt-1"}, django_capture_on_commit_callbacks)
    again = post(client, workflow, {"email": "a@x.org", "dedupe_key": "evt-1"}, django_capture_on_commit_callbacks)
    by_property = post(client, workflow, {"email": "a@x.org", "properties": {"order_id": 7}})
    by_property_again = post(client, workflow, {"email": "a@x.org", "properties": {"order_id": 7}})

    assert again.status_code == 202
    assert again.json() == {"run_id": first.json()["run_id"], "outcome": "duplicate"}
    assert by_property_again.json() == {"run_id": by_property.json()["run_id"], "outcome": "duplicate"}
    assert advanced == [first.json()["run_id"]]  # a duplicate is not advanced again
    assert sorted(WorkflowRun.objects.filter(workflow=workflow).values_list("dedupe_key", flat=True)) == ["7", "evt-1"]


def test_without_any_key_every_post_is_a_new_run(client, workflow, advanced):
    workflow.dedupe_property = ""
    workflow.save()
    for _ in range(2):
        assert post(client, workflow, {"email": "a@x.org"}).json()["outcome"] == "started"
    assert WorkflowRun.objects.filter(workflow=workflow).count() == 2


def test_the_re_entry_rule_answers_with_its_outcome(client, workflow, advanced):
    workflow.re_entry = ReEntry.ONCE
    workflow.save()
    post(client, workflow, {"email": "a@x.org", "dedupe_key": "1"})
    response = post(client, workflow, {"email": "a@x.org", "dedupe_key": "2"})
    assert response.status_code == 202
    assert response.json() == {"run_id": None, "outcome": "re_entry_blocked"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@x.org", "attributes": {"seats": "many"}}, "attributes.seats"),
        ({"email": "a@x.org", "attributes": {"unknown": 1}}, "attributes.unknown"),
        ({"email": "a@x.org", "attributes": []}, "attributes"),
        ({"email": "a@x.org", "properties": [1]}, "properties"),
        ({"email": "a@x.org", "properties": {"note": "nul\u0000"}}, "properties"),
        ({"email": "a@x.org", "dedupe_key": {"x": 1}}, "dedupe_key"),
        ({"email": "a@x.org", "dedupe_key": ""}, "dedupe_key"),
        ({"email": "a@x.org", "first_name": 5}, "first_name"),
        ({"email": "a@x.org", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"email": "a@x.org", "colour": "red"}, "colour"),
        ([{"email": "a@x.org"}], "body"),
        ('"just text"', "body"),
    ],
)
def test_bad_payloads_answer_400_naming_the_field_and_change_nothing(client, workflow, advanced, body, field):
    response = post(client, workflow, body)

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Subscriber.objects.exists() and not WorkflowRun.objects.exists()


def test_a_body_that_is_not_json_is_a_400_and_a_large_one_a_413(client, workflow, advanced):
    assert post(client, workflow, b"{not json").status_code == 400
    assert post(client, workflow, b"\xff\xfe").status_code == 400
    assert post(client, workflow, b"[" * 30_000 + b"]" * 30_000).status_code == 400  # nesting past the stack
    large = json.dumps({"email": "a@x.org", "properties": {"blob": "x" * HOOK_MAX_BYTES}})
    response = post(client, workflow, large)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Subscriber.objects.exists()


def test_unknown_tokens_and_workflows_that_take_no_hooks_answer_the_same_404(client, workspace, workflow, advanced):
    paused = Workflow.objects.create(
        workspace=workspace, name="Paused", status=WorkflowStatus.PAUSED, trigger_type=TriggerType.WEBHOOK
    )
    cron = Workflow.objects.create(
        workspace=workspace, name="Cron", status=WorkflowStatus.ACTIVE, trigger_type=TriggerType.CRON,
        trigger_config={"cron": "0 9 * * *"},
    )  # fmt: skip
    for token in ("no-such-token", paused.hook_token, cron.hook_token):
        response = post(client, token, {"email": "a@x.org"})
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert not Subscriber.objects.exists()
    assert client.get(f"/hooks/{workflow.hook_token}").status_code == 405


def test_the_subscriber_is_upserted_in_the_workflows_workspace_only(client, other_workspace, workflow, advanced):
    theirs = SubscriberFactory(workspace=other_workspace, email="shared@x.org", first_name="Theirs")

    response = post(client, workflow, {"email": "shared@x.org", "first_name": "Ours"})

    assert response.status_code == 202
    run = WorkflowRun.objects.get(pk=response.json()["run_id"])
    assert run.subscriber.workspace_id == workflow.workspace_id != theirs.workspace_id
    theirs.refresh_from_db()
    assert theirs.first_name == "Theirs"


def test_posts_are_rate_limited_per_ip(client, workflow, advanced, settings):
    settings.WORKFLOW_HOOK_RATE_LIMIT = "2/h"  # per hour: a fixed window ending mid-test would reset the count
    statuses = [post(client, workflow, {"email": f"p{i}@x.org"}).status_code for i in range(3)]
    assert statuses == [202, 202, 429]
    assert post(client, workflow, {"email": "q@x.org"}).headers["Retry-After"] == "60"
    assert post(client, workflow, {"email": "r@x.org"}, REMOTE_ADDR="198.51.100.8").status_code == 202


def test_a_failure_to_advance_does_not_fail_the_post(client, workflow, monkeypatch, django_capture_on_commit_callbacks):
    def broken(run_id: int) -> None:
        raise RuntimeError("engine down")

    monkeypatch.setattr(triggers, "run_advance", broken)
    response = post(client, workflow, {"email": "a@x.org"}, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    assert WorkflowRun.objects.get(pk=response.json()["run_id"]).due_at is not None  # the tick picks it up


@pytest.mark.parametrize(
    ("config", "stored"), [({"event_name": "order_placed"}, {"event_name": "order_placed"}), ({}, {}), (None, {})]
)
def test_a_webhook_workflow_may_name_the_event_its_runs_carry(workspace, config, stored):
    from automation.services import workflow_create

    created = workflow_create(workspace=workspace, name="Hook", trigger_type=TriggerType.WEBHOOK, trigger_config=config)

    assert created.trigger_config == stored


@pytest.mark.parametrize(
    ("config", "path"), [({"event_name": 5}, "trigger_config.event_name"), ({"name": "x"}, "trigger_config")]
)
def test_a_webhook_workflow_refuses_a_bad_event_name_or_another_key(workspace, config, path):
    from automation.services import workflow_create
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        workflow_create(workspace=workspace, name="Hook", trigger_type=TriggerType.WEBHOOK, trigger_config=config)

    assert any(key.startswith(path) for key in refused.value.details)
