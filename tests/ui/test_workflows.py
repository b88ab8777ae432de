"""Workflow pages: list and status controls, the editor (trigger, entry conditions, actions) through the
automation services, the actions' JSON editor, and the run log with one run's steps and controls."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Role
from automation import services
from automation.engine import run_advance
from automation.models import RunStatus, WebhookEndpoint, Workflow, WorkflowRun, WorkflowStatus
from automation.runs import workflow_run_start
from subscribers.models import FieldType, Segment
from tests.automation.test_engine_support import workflow_make
from tests.factories import (
    FieldDefinitionFactory,
    MailingListFactory,
    SequenceFactory,
    SubscriberFactory,
    TagFactory,
    TemplateFactory,
)
from ui.forms_workflow_actions import ACTION_KINDS
from ui.segment_rules import Editor, Group

pytestmark = pytest.mark.django_db

BASE = {
    "name": "After an order", "description": "", "trigger_type": "event", "event_name": "order_placed",
    "event_properties": "", "re_entry": "once", "dedupe_property": "", "cron_timezone": "UTC",
    "offset_days": "0", "at_hour": "9", "op": "save",
}  # fmt: skip
WAIT = {"type": "wait", "duration": {"value": 1, "unit": "hours"}}


def with_actions(*rows: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The editor's POST: the workflow fields plus one prefixed group of inputs per action row."""
    data: dict[str, Any] = {**BASE, **fields, "action_count": str(len(rows))}
    for index, row in enumerate(rows):
        data.update({f"a{index}-{name}": value for name, value in row.items()})
    return data


def entry_json(text: str) -> dict[str, str]:
    """The entry conditions typed in the builder's JSON panel (and chosen as the source)."""
    return {"entry-source": "json", "entry-rules_json": text}


def entry_back(editor: Editor) -> dict[str, Any]:
    """What the entry conditions' inputs post as rendered: the segment builder's rows, prefixed `entry-`."""
    data: dict[str, Any] = {
        "entry-match": editor.match, "entry-source": editor.source, "entry-rules_json": editor.json_text,
        "entry-item": [],
    }  # fmt: skip
    for item in editor.items:
        rows = item.rows if isinstance(item, Group) else [item]
        if isinstance(item, Group):
            data["entry-item"].append(f"g:{item.id}")
            data[f"entry-g{item.id}-match"] = item.match
        for row in rows:
            data["entry-item"].append(f"r:{row.id}")
            prefix = f"entry-r{row.id}-"
            data.update({prefix + "group": row.group, prefix + "kind": row.kind})
            data.update({prefix + name: value for name, value in row.values.items()})
            data.update({prefix + name: values for name, values in row.choices.items()})
            if row.negate:
                data[prefix + "negate"] = "on"
    return data


def posted_back(response) -> dict[str, Any]:
    """What a browser would post for the editor page as rendered (every form's shown values)."""
    data: dict[str, Any] = {"op": "save", "action_count": str(len(response.context["rows"]))}
    data.update(entry_back(response.context["entry"]))
    for form in [response.context["form"], *response.context["rows"]]:
        for bound in form:
            value = bound.value()
            if value is True:
                data[bound.html_name] = "on"
            elif value not in (None, False):
                data[bound.html_name] = str(value)
    return data


def errors_of(response) -> Any:
    """A failed save's errors, for the assertion message."""
    context = response.context
    return context and [context["form"].errors, *(row.errors for row in context["rows"])]


def started_run(workflow: Workflow, subscriber, key: str = "k") -> WorkflowRun:
    run = workflow_run_start(workflow=workflow, subscriber=subscriber, dedupe_key=key).run
    assert run is not None
    run_advance(run.pk)
    run.refresh_from_db()
    return run


def test_the_editor_offers_every_action_kind_the_service_checks():
    assert sorted(kind for kind, _ in ACTION_KINDS) == sorted(services.ACTION_TYPES)


def test_list_shows_status_trigger_and_run_counts_and_the_nav_entry(ui_client, workspace):
    workflow = workflow_make(workspace, name="Buyers", actions=[WAIT], trigger_type="api", trigger_config={})
    started_run(workflow, SubscriberFactory(workspace=workspace))
    news = MailingListFactory(workspace=workspace, name="News")
    services.workflow_create(
        workspace=workspace, name="Joined", trigger_type="list_subscribed", trigger_config={"list_id": news.pk}
    )
    page = ui_client(Role.VIEWER).get("/app/workflows/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Buyers" in html and "API call" in html and "Subscribed to News" in html
    assert [(r["workflow"].name, r["workflow"].runs_open) for r in page.context["rows"]] == [
        ("Buyers", 1),
        ("Joined", 0),
    ]
    assert html.index(">Workflows</a>") < html.index(">Templates</a>")
    assert "Activate" not in html and "New workflow" not in html  # a viewer gets no write controls


def test_create_with_an_event_trigger_and_two_actions(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, name="Thanks")
    client = ui_client()
    page = client.get("/app/workflows/new/")
    assert page.status_code == 200 and b'<label for="id_event_name"' in page.content and b"workflows.js" in page.content
    response = client.post(
        "/app/workflows/new/",
        with_actions(
            {"type": "send_email", "template": str(template.pk)},
            {"type": "wait", "duration_value": "2", "duration_unit": "days"},
            **entry_json('{"status": "active"}'), dedupe_property="order_id", re_entry="always",
        ),
    )  # fmt: skip
    assert response.status_code == 302, errors_of(response)
    workflow = Workflow.objects.get(workspace=workspace, name="After an order")
    assert response["Location"] == f"/app/workflows/{workflow.pk}/"
    assert workflow.status == WorkflowStatus.DRAFT and workflow.trigger_type == "event"
    assert workflow.trigger_config == {"name": "order_placed", "properties": {}}
    assert workflow.entry_rules == {"status": ["active"]} and workflow.re_entry == "always"
    assert workflow.actions == [
        {"type": "send_email", "template_id": template.pk},
        {"type": "wait", "duration": {"value": 2, "unit": "days"}},
    ]


@pytest.mark.parametrize(
    ("trigger_type", "fields", "expected"),
    [
        ("tag_added", {"trigger_tag": "vip"}, {"tag": "vip"}),
        ("field_changed", {"changed_field": "plan", "changed_to": "pro"}, {"field": "plan", "to": "pro"}),
        ("cron", {"cron": "30 9 * * 1-5", "cron_timezone": "Europe/Paris"},
         {"cron": "30 9 * * 1-5", "timezone": "Europe/Paris"}),
        ("webhook", {"event_name": ""}, {}),
        ("webhook", {"event_name": "order_placed"}, {"event_name": "order_placed"}),
        ("api", {}, {}),
    ],
)  # fmt: skip
def test_each_trigger_type_saves_its_own_settings(ui_client, workspace, trigger_type, fields, expected):
    data = with_actions({"type": "add_tag", "tag": "t"}, trigger_type=trigger_type, **fields)
    response = ui_client().post("/app/workflows/new/", data)
    assert response.status_code == 302, errors_of(response)
    workflow = Workflow.objects.get(workspace=workspace)
    assert (workflow.trigger_type, workflow.trigger_config) == (trigger_type, expected)


def test_list_date_and_segment_triggers_choose_from_the_workspace(ui_client, workspace):
    news = MailingListFactory(workspace=workspace)
    FieldDefinitionFactory(workspace=workspace, key="birthday", type=FieldType.DATE)
    segment = Segment.objects.create(workspace=workspace, name="VIPs", rules={"status": "active"})
    client = ui_client()
    cases = [
        ("list_subscribed", {"trigger_list": str(news.pk)}, {"list_id": news.pk}),
        ("unsubscribed", {"trigger_list": ""}, {"list_id": None}),
        ("date", {"date_field": "birthday", "offset_days": "-3", "anniversary": "on", "at_hour": "8"},
         {"field": "birthday", "offset_days": -3, "anniversary": True, "at_hour": 8}),
        ("segment_entered", {"segment": str(segment.pk)}, {"segment_id": segment.pk}),
    ]  # fmt: skip
    for index, (trigger_type, fields, expected) in enumerate(cases):
        data = with_actions(WAIT_ROW, name=f"w{index}", trigger_type=trigger_type, **fields)
        response = client.post("/app/workflows/new/", data)
        assert response.status_code == 302, (trigger_type, errors_of(response))
        workflow = Workflow.objects.get(workspace=workspace, name=f"w{index}")
        assert workflow.trigger_config == expected
        page = client.get(f"/app/workflows/{workflow.pk}/")  # and it shows again as it was saved
        response = client.post(f"/app/workflows/{workflow.pk}/", posted_back(page))
        assert response.status_code == 302, (trigger_type, errors_of(response))
        workflow.refresh_from_db()
        assert workflow.trigger_config == expected


WAIT_ROW = {"type": "wait", "duration_value": "1", "duration_unit": "hours"}


def test_every_action_kind_round_trips_through_the_form(ui_client, workspace):
    sequence = SequenceFactory(workspace=workspace)
    template = TemplateFactory(workspace=workspace)
    news = MailingListFactory(workspace=workspace)
    endpoint = WebhookEndpoint.objects.create(workspace=workspace, url="https://example.com/hook")
    FieldDefinitionFactory(workspace=workspace, key="score", type=FieldType.NUMBER)
    vip = TagFactory(workspace=workspace, name="vip")
    actions = [
        {"type": "enroll", "sequence_id": sequence.pk}, {"type": "exit_sequence", "sequence_id": sequence.pk},
        {"type": "send_email", "template_id": template.pk}, {"type": "add_tag", "tag": "vip"},
        {"type": "remove_tag", "tag": "old"}, {"type": "subscribe_list", "list_id": news.pk},
        {"type": "unsubscribe_list", "list_id": news.pk}, {"type": "update_field", "field": "score", "value": 5},
        {"type": "update_field", "field": "first_name", "value": "{{ trigger.properties.name }}"},
        {"type": "wait", "until_time": "09:00"}, {"type": "wait", "duration": {"value": 3, "unit": "weeks"}},
        {"type": "wait_for_event", "event": "paid", "match_key": "cart_id", "timeout": {"value": 1, "unit": "days"},
         "on_event": [{"type": "add_tag", "tag": "paid"}], "on_timeout": []},
        {"type": "branch", "rules": {"tag": vip.pk}, "then": [{"type": "goal", "name": "vip"}], "else": []},
        {"type": "webhook", "endpoint_id": endpoint.pk},
        {"type": "notify", "to": ["team@example.org"], "subject": "New {{ subscriber.email }}", "body": "Hi"},
        {"type": "notify", "subject": "To the owners", "body": "Hello"},
        {"type": "goal", "name": "converted"},
    ]  # fmt: skip
    workflow = services.workflow_create(workspace=workspace, name="All", trigger_type="api", actions=actions)
    stored = workflow.actions  # as the service normalized them (a rule's status becomes a list)
    client = ui_client()
    page = client.get(f"/app/workflows/{workflow.pk}/")
    assert page.status_code == 200 and len(page.context["rows"]) == len(actions)
    response = client.post(f"/app/workflows/{workflow.pk}/", posted_back(page))
    assert response.status_code == 302, errors_of(response)
    workflow.refresh_from_db()
    assert workflow.actions == stored and len(stored) == len(actions)


def test_a_service_error_is_shown_beside_its_action_and_the_input_is_kept(ui_client, workspace):
    rows = ({"type": "add_tag", "tag": "first"}, {"type": "add_tag", "tag": "   "}, WAIT_ROW)
    response = ui_client().post("/app/workflows/new/", with_actions(*rows, description="Keep me"))
    assert response.status_code == 400
    assert response.context["rows"][1].errors["tag"] == ["Must be a non-empty string."]
    assert b"Keep me" in response.content and b'value="first"' in response.content
    assert not Workflow.objects.filter(workspace=workspace).exists()


@pytest.mark.parametrize(
    ("change", "where", "text"),
    [
        ({"a0-type": "branch", "a0-rules": '{"status": "active"}', "a0-then": '[{"type": "add_tag", "tag": ""}]'},
         ("row", 0, "then"), "actions[0].then[0].tag: Must be a non-empty string."),
        ({"a0-type": "wait", "a0-duration_value": "", "a0-until_time": "25:00"},
         ("row", 0, "until_time"), "Must be a time of day as HH:MM (24-hour clock)."),
        ({"a0-type": "wait", "a0-duration_value": "999999", "a0-duration_unit": "days"},
         ("row", 0, "duration_value"), "Must be an integer"),
        ({"a0-type": "branch", "a0-rules": "{not json"}, ("row", 0, "rules"), "Not valid JSON"),
        ({"a0-type": "send_email"}, ("row", 0, "template"), "Choose a template."),
        ({"event_name": ""}, ("form", "event_name"), "Must be a non-empty string."),
        ({"trigger_type": "cron", "cron": "every day"}, ("form", "cron"), "cron"),
        ({"trigger_type": "date", "date_field": ""}, ("form", "date_field"), "Must be"),
        ({"trigger_type": "sometimes"}, ("form", "trigger_type"), "Select a valid choice"),
    ],
)  # fmt: skip
def test_bad_input_answers_400_with_the_error_on_its_field(ui_client, workspace, change, where, text):
    data = {**with_actions({"type": "add_tag", "tag": "ok"}), **change}
    response = ui_client().post("/app/workflows/new/", data)
    assert response.status_code == 400
    form = response.context["rows"][where[1]] if where[0] == "row" else response.context["form"]
    assert text in " ".join(form.errors[where[-1]])
    assert not Workflow.objects.filter(workspace=workspace).exists()


def test_a_name_taken_and_another_workspaces_template_are_refused(ui_client, workspace, other_workspace):
    services.workflow_create(workspace=workspace, name="After an order", trigger_type="api")
    foreign = TemplateFactory(workspace=other_workspace)
    client = ui_client()
    taken = client.post("/app/workflows/new/", with_actions(WAIT_ROW))
    assert taken.status_code == 400 and "exists" in taken.context["form"].errors["name"][0]
    refused = client.post("/app/workflows/new/", with_actions({"type": "send_email", "template": str(foreign.pk)}))
    assert refused.status_code == 400 and refused.context["rows"][0].errors["template"]


def test_add_remove_and_move_rows_keep_the_input_and_save_nothing(ui_client, workspace):
    client = ui_client()
    rows = ({"type": "add_tag", "tag": "one"}, {"type": "add_tag", "tag": "two"}, {"type": "add_tag", "tag": "three"})

    def tags(response) -> list[str]:
        return [row["tag"].value() for row in response.context["rows"]]

    moved = client.post("/app/workflows/new/", with_actions(*rows, op="up-2"))
    assert moved.status_code == 200 and tags(moved) == ["one", "three", "two"]
    assert (
        client.post("/app/workflows/new/", with_actions(*rows, op="down-0")).context["rows"][0]["tag"].value() == "two"
    )
    removed = client.post("/app/workflows/new/", with_actions(*rows, op="remove-1", description="Kept"))
    assert tags(removed) == ["one", "three"] and b"Kept" in removed.content
    added = client.post("/app/workflows/new/", with_actions(*rows, op="add", new_action_type="goal"))
    assert [row.kind() for row in added.context["rows"]] == ["add_tag", "add_tag", "add_tag", "goal"]
    assert not Workflow.objects.exists()


def test_edit_saves_through_workflow_update(ui_client, workspace):
    workflow = services.workflow_create(workspace=workspace, name="Old", trigger_type="api", actions=[WAIT])
    rows = (WAIT_ROW, {"type": "goal", "goal_name": "done"})
    response = ui_client().post(f"/app/workflows/{workflow.pk}/", with_actions(*rows))
    assert response.status_code == 302, errors_of(response)
    workflow.refresh_from_db()
    assert workflow.name == "After an order" and workflow.trigger_type == "event"
    assert workflow.actions[1] == {"type": "goal", "name": "done"}


def test_status_controls_go_through_the_services(ui_client, workspace):
    empty = services.workflow_create(workspace=workspace, name="Empty", trigger_type="api")
    client = ui_client()
    response = client.post(f"/app/workflows/{empty.pk}/activate", follow=True)
    assert b"needs at least one action" in response.content
    workflow = workflow_make(workspace, name="W", actions=[WAIT], trigger_type="api", trigger_config={}, activate=False)
    assert client.post(f"/app/workflows/{workflow.pk}/activate").status_code == 302
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE
    run = started_run(workflow, SubscriberFactory(workspace=workspace))
    client.post(f"/app/workflows/{workflow.pk}/pause")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.PAUSED
    client.post(f"/app/workflows/{workflow.pk}/resume", {"next": "edit"})
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE
    cancelled = client.post(f"/app/workflows/{workflow.pk}/cancel", follow=True)
    assert b"1 open run(s) cancelled" in cancelled.content
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert client.post(f"/app/workflows/{workflow.pk}/explode").status_code == 404
    assert client.post(f"/app/workflows/{workflow.pk}/delete").status_code == 302
    assert not Workflow.objects.filter(pk=workflow.pk).exists()


def test_actions_json_round_trips_and_shows_errors_with_their_path(ui_client, workspace):
    actions = [{"type": "branch", "rules": {"status": "active"}, "then": [{"type": "add_tag", "tag": "a"}], "else": []}]
    workflow = services.workflow_create(workspace=workspace, name="J", trigger_type="api", actions=actions)
    actions = workflow.actions  # as stored
    client = ui_client()
    url = f"/app/workflows/{workflow.pk}/actions/"
    page = client.get(url)
    assert page.status_code == 200
    text = page.context["form"]["actions"].value()
    assert client.post(url, {"actions": text}).status_code == 302
    workflow.refresh_from_db()
    assert workflow.actions == actions
    bad = '[{"type": "branch", "rules": {"status": "active"}, "then": [{"type": "add_tag"}]}]'
    response = client.post(url, {"actions": bad})
    assert response.status_code == 400 and b"actions[0].then[0].tag: This key is required." in response.content
    assert response.context["form"]["actions"].value() == bad
    assert client.post(url, {"actions": "[oops"}).status_code == 400
    workflow.refresh_from_db()
    assert workflow.actions == actions


def test_run_log_lists_filters_and_pages_runs(ui_client, workspace):
    workflow = workflow_make(workspace, name="Log", actions=[WAIT], trigger_type="api", trigger_config={})
    runs = [started_run(workflow, SubscriberFactory(workspace=workspace)) for _ in range(26)]
    services.workflow_run_cancel(workspace=workspace, run=runs[0])
    client = ui_client(Role.VIEWER)
    page = client.get(f"/app/workflows/{workflow.pk}/runs/")
    assert page.status_code == 200 and page.context["page"].paginator.num_pages == 2
    assert "waiting 1 hour" in page.content.decode()
    second = client.get(f"/app/workflows/{workflow.pk}/runs/?page=2")
    assert len(second.context["rows"]) == 1
    cancelled = client.get(f"/app/workflows/{workflow.pk}/runs/?status=cancelled")
    assert [row["run"].pk for row in cancelled.context["rows"]] == [runs[0].pk]
    assert client.get(f"/app/workflows/{workflow.pk}/runs/?status=bogus").status_code == 400


def test_run_detail_shows_its_steps_and_pause_resume_cancel(ui_client, workspace):
    workflow = workflow_make(
        workspace,
        name="Steps",
        actions=[{"type": "add_tag", "tag": "seen"}, WAIT],
        trigger_type="api",
        trigger_config={},
    )
    run = started_run(workflow, SubscriberFactory(workspace=workspace, email="ada@example.org"))
    client = ui_client()
    page = client.get(f"/app/workflows/runs/{run.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and "tagged &#x27;seen&#x27;" in html and "ada@example.org" in html
    assert [(row["step"].action_type, row["where"]) for row in page.context["steps"]] == [
        ("add_tag", "1"),
        ("wait", "2"),
    ]
    client.post(f"/app/workflows/runs/{run.pk}/pause")
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED
    client.post(f"/app/workflows/runs/{run.pk}/resume")
    run.refresh_from_db()
    assert run.status == RunStatus.ACTIVE
    client.post(f"/app/workflows/runs/{run.pk}/cancel")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    refused = client.post(f"/app/workflows/runs/{run.pk}/pause", follow=True)
    assert b"The run is cancelled." in refused.content
    assert client.post(f"/app/workflows/runs/{run.pk}/explode").status_code == 404


def test_a_viewer_reads_but_cannot_write(ui_client, workspace):
    workflow = workflow_make(workspace, name="V", actions=[WAIT], trigger_type="api", trigger_config={})
    run = started_run(workflow, SubscriberFactory(workspace=workspace))
    client = ui_client(Role.VIEWER)
    for url in ["/app/workflows/", f"/app/workflows/{workflow.pk}/", f"/app/workflows/{workflow.pk}/actions/",
                f"/app/workflows/{workflow.pk}/runs/", f"/app/workflows/runs/{run.pk}/"]:  # fmt: skip
        assert client.get(url).status_code == 200, url
    for url in ["/app/workflows/new/", f"/app/workflows/{workflow.pk}/", f"/app/workflows/{workflow.pk}/pause",
                f"/app/workflows/{workflow.pk}/cancel", f"/app/workflows/{workflow.pk}/delete",
                f"/app/workflows/{workflow.pk}/actions/", f"/app/workflows/runs/{run.pk}/cancel"]:  # fmt: skip
        assert client.post(url, with_actions(WAIT_ROW)).status_code == 403, url
    workflow.refresh_from_db()
    run.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE and run.status == RunStatus.ACTIVE


def test_another_workspaces_workflow_and_run_answer_404(ui_client, workspace, other_workspace):
    workflow = workflow_make(other_workspace, name="Theirs", actions=[WAIT], trigger_type="api", trigger_config={})
    run = started_run(workflow, SubscriberFactory(workspace=other_workspace))
    client = ui_client(Role.OWNER)
    for url in [f"/app/workflows/{workflow.pk}/", f"/app/workflows/{workflow.pk}/actions/",
                f"/app/workflows/{workflow.pk}/runs/", f"/app/workflows/runs/{run.pk}/"]:  # fmt: skip
        assert client.get(url).status_code == 404, url
    for url in [f"/app/workflows/{workflow.pk}/", f"/app/workflows/{workflow.pk}/pause",
                f"/app/workflows/{workflow.pk}/delete", f"/app/workflows/runs/{run.pk}/cancel"]:  # fmt: skip
        assert client.post(url, with_actions(WAIT_ROW)).status_code == 404, url
    assert "Theirs" not in client.get("/app/workflows/").content.decode()
    workflow.refresh_from_db()
    assert workflow.name == "Theirs" and workflow.status == WorkflowStatus.ACTIVE


def test_csrf_is_enforced(ui_client, workspace):
    workflow = workflow_make(workspace, name="C", actions=[WAIT], trigger_type="api", trigger_config={}, activate=False)
    client = ui_client(enforce_csrf_checks=True)
    assert client.post("/app/workflows/new/", with_actions(WAIT_ROW)).status_code == 403
    assert client.post(f"/app/workflows/{workflow.pk}/activate").status_code == 403
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.DRAFT and Workflow.objects.count() == 1


def test_a_webhook_workflow_shows_its_hook_url(ui_client, workspace):
    workflow = services.workflow_create(workspace=workspace, name="Hook", trigger_type="webhook")
    page = ui_client().get(f"/app/workflows/{workflow.pk}/")
    assert f"/hooks/{workflow.hook_token}".encode() in page.content


def test_paths_and_current_steps_read_as_people_count():
    from ui.workflow_display import action_at, step_path_words

    actions = [{"type": "add_tag", "tag": "a"}, {"type": "branch", "rules": {}, "then": [{"type": "goal"}], "else": []}]
    assert step_path_words("1.then.0") == "2 › then › 1"
    assert action_at(actions, [1, "then", 0]) == {"type": "goal"}
    assert action_at(actions, [1, "else", 0]) is None and action_at(actions, [7]) is None


def test_a_run_waiting_for_an_event_says_so_in_the_log(ui_client, workspace):
    wait_for = {"type": "wait_for_event", "event": "paid", "timeout": {"value": 2, "unit": "days"}}
    workflow = workflow_make(workspace, name="Paid", actions=[wait_for], trigger_type="api", trigger_config={})
    started_run(workflow, SubscriberFactory(workspace=workspace))
    page = ui_client(Role.VIEWER).get(f"/app/workflows/{workflow.pk}/runs/")
    assert [row["current"] for row in page.context["rows"]] == ["waiting up to 2 days for 'paid'"]


@pytest.mark.parametrize(
    "change",
    [
        {"a0-type": "branch", "a0-rules": "[" * 5000 + "]" * 5000},  # Python's parser would recurse out
        {"a0-type": "branch", "a0-rules": '{"status": "active"}', "a0-then": '[{"type": "goal", "name": NaN}]'},
        {"a0-type": "update_field", "a0-field": "first_name", "a0-value": "1e999", "a0-value_literal": "on"},
        entry_json('{"all": [{"attribute": "x", "op": "gt", "value": 1e999}]}'),
        entry_json("[" * 5000 + "]" * 5000),
        {"entry-item": ["r:a1", "g:zz", "r:!!", "x:1"], "entry-ra1-kind": "nonsense", "entry-match": "neither"},
        {"action_count": "99999"},
        {"action_count": "-3", "op": "up-0"},
        {"op": "remove-99"},
        {"trigger_type": "date", "date_field": "x", "offset_days": "99999999999999999999"},
        {"trigger_type": "cron", "cron": "* * * * * * *", "cron_timezone": "Mars/Base"},
        {"a0-type": "add_tag", "a0-tag": "a\x00b"},
    ],
)
def test_odd_input_never_answers_500(ui_client, workspace, change):
    response = ui_client().post("/app/workflows/new/", {**with_actions({"type": "add_tag", "tag": "ok"}), **change})
    assert response.status_code in (200, 302, 400)
    if response.status_code == 302:  # saved: then what was stored is what PostgreSQL could take
        assert Workflow.objects.get(workspace=workspace).actions


def test_field_changed_values_keep_their_json_type(ui_client, workspace):
    client = ui_client()
    data = with_actions(WAIT_ROW, trigger_type="field_changed", changed_field="score", changed_to="5")
    assert client.post("/app/workflows/new/", {**data, "changed_literal": "on"}).status_code == 302
    workflow = Workflow.objects.get(workspace=workspace)
    assert workflow.trigger_config == {"field": "score", "to": 5}  # the matcher compares exactly: 5 is not "5"
    services.workflow_update(
        workspace=workspace, workflow=workflow, trigger_config={"field": "plan", "from": None, "to": "pro"}
    )
    page = client.get(f"/app/workflows/{workflow.pk}/")
    assert client.post(f"/app/workflows/{workflow.pk}/", posted_back(page)).status_code == 302
    workflow.refresh_from_db()
    assert workflow.trigger_config == {"field": "plan", "from": None, "to": "pro"}


def test_the_editor_reads_its_choices_once_not_once_per_action(ui_client, workspace):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    template = TemplateFactory(workspace=workspace)
    client = ui_client()
    client.get("/app/workflows/")  # the session's first request writes it; later ones do not

    def queries_for(count: int) -> int:
        actions = [{"type": "send_email", "template_id": template.pk}] * count
        workflow = services.workflow_create(workspace=workspace, name=f"n{count}", trigger_type="api", actions=actions)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/app/workflows/{workflow.pk}/").status_code == 200
        return len(captured)

    assert queries_for(2) == queries_for(30)


# Entry conditions: the segment builder's rows inside the workflow form ----------------------------


def entry_rows(tag_id: int) -> dict[str, Any]:
    """Two condition rows (status is active, has the tag) as the builder posts them, prefixed `entry-`."""
    return {
        "entry-match": "all", "entry-source": "rows", "entry-rules_json": "", "entry-item": ["r:a1", "r:b2"],
        "entry-ra1-kind": "status", "entry-ra1-statuses": ["active"],
        "entry-rb2-kind": "tag", "entry-rb2-tags": [str(tag_id)],
    }  # fmt: skip


def test_entry_conditions_are_built_from_rows(ui_client, workspace):
    tag = TagFactory(workspace=workspace, name="vip")
    client = ui_client()
    page = client.get("/app/workflows/new/")
    assert page.status_code == 200 and b'name="entry-match"' in page.content and b"segments.js" in page.content
    assert b"prefix=entry-" in page.content  # the rows' htmx partials know their inputs' prefix
    response = client.post("/app/workflows/new/", with_actions(WAIT_ROW, **entry_rows(tag.pk)))
    assert response.status_code == 302, errors_of(response)
    workflow = Workflow.objects.get(workspace=workspace)
    assert workflow.entry_rules == {"all": [{"status": ["active"]}, {"tag": [tag.pk]}]}


def test_no_condition_rows_and_blank_json_store_no_entry_rules(ui_client, workspace):
    client = ui_client()
    assert client.post("/app/workflows/new/", with_actions(WAIT_ROW)).status_code == 302
    workflow = Workflow.objects.get(workspace=workspace)
    assert workflow.entry_rules is None
    services.workflow_update(workspace=workspace, workflow=workflow, entry_rules={"status": "active"})
    page = client.get(f"/app/workflows/{workflow.pk}/")
    emptied = {**posted_back(page), "entry-item": []}
    assert client.post(f"/app/workflows/{workflow.pk}/", emptied).status_code == 302
    workflow.refresh_from_db()
    assert workflow.entry_rules is None
    services.workflow_update(workspace=workspace, workflow=workflow, entry_rules={"status": "active"})
    blank = {**posted_back(page), **entry_json("  ")}
    assert client.post(f"/app/workflows/{workflow.pk}/", blank).status_code == 302
    workflow.refresh_from_db()
    assert workflow.entry_rules is None


def test_the_edit_page_shows_stored_entry_rules_as_rows_and_saves_them_back(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    rules = {"any": [{"status": ["active"]}, {"all": [{"tag": [tag.pk]}, {"not": {"status": ["bounced"]}}]}]}
    workflow = workflow_make(workspace, name="Tagged", actions=[WAIT], trigger_type="api", trigger_config={})
    services.workflow_update(workspace=workspace, workflow=workflow, entry_rules=rules)
    client = ui_client()
    page = client.get(f"/app/workflows/{workflow.pk}/")
    editor = page.context["entry"]
    assert page.status_code == 200 and editor.source == "rows" and editor.match == "any"
    assert [row.kind for row in editor.rows()] == ["status", "tag", "status"] and len(editor.groups()) == 1
    group_id = editor.groups()[0].id
    assert f'name="entry-g{group_id}-match"'.encode() in page.content
    assert client.post(f"/app/workflows/{workflow.pk}/", posted_back(page)).status_code == 302
    workflow.refresh_from_db()
    assert workflow.entry_rules == rules


def test_an_unrepresentable_entry_tree_is_edited_as_json_and_round_trips(ui_client, workspace):
    rules = {"all": [{"any": [{"status": ["active"]}, {"all": [{"status": ["bounced"]}]}]}]}  # 2 levels deep
    workflow = workflow_make(workspace, name="Deep", actions=[WAIT], trigger_type="api", trigger_config={})
    services.workflow_update(workspace=workspace, workflow=workflow, entry_rules=rules)
    client = ui_client()
    page = client.get(f"/app/workflows/{workflow.pk}/")
    editor = page.context["entry"]
    assert editor.source == "json" and not editor.items and "cannot show" in editor.note
    assert b"edit them as JSON below" in page.content and b'name="entry-rules_json"' in page.content
    assert client.post(f"/app/workflows/{workflow.pk}/", posted_back(page)).status_code == 302
    workflow.refresh_from_db()
    assert workflow.entry_rules == rules


def test_a_bad_entry_condition_is_shown_beside_its_row_and_the_rows_are_kept(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    data = with_actions(WAIT_ROW, description="Kept", **entry_rows(tag.pk))
    data["entry-rb2-tags"] = ["999999"]  # no such tag in this workspace
    response = ui_client().post("/app/workflows/new/", data)
    assert response.status_code == 400
    editor = response.context["entry"]
    assert [row.kind for row in editor.rows()] == ["status", "tag"]
    assert editor.rows()[1].errors and not editor.rows()[0].errors and not editor.errors
    assert editor.rows()[1].errors[0].encode() in response.content.replace(b"&#x27;", b"'")
    assert b'id="err-rb2"' in response.content and b"Kept" in response.content
    assert not Workflow.objects.filter(workspace=workspace).exists()


def test_bad_entry_json_is_shown_under_the_json_with_its_path(ui_client, workspace):
    client = ui_client()
    refused = client.post("/app/workflows/new/", with_actions(WAIT_ROW, **entry_json('{"all": [{"tag": 999999}]}')))
    assert refused.status_code == 400
    assert any("entry_rules.all[0].tag" in e for e in refused.context["entry"].json_errors)
    assert b"entry_rules.all[0].tag" in refused.content and b"999999" in refused.content
    broken = client.post("/app/workflows/new/", with_actions(WAIT_ROW, **entry_json("{not json")))
    assert broken.status_code == 400 and b"Not valid JSON" in broken.content
    assert not Workflow.objects.filter(workspace=workspace).exists()


def test_rearranging_actions_keeps_the_entry_rows(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    data = with_actions(WAIT_ROW, WAIT_ROW, op="remove-1", **entry_rows(tag.pk))
    response = ui_client().post("/app/workflows/new/", data)
    assert response.status_code == 200
    assert [row.kind for row in response.context["entry"].rows()] == ["status", "tag"]


def test_the_builder_partials_answer_with_the_entry_prefix(ui_client, workspace):
    client = ui_client(Role.VIEWER)
    row = client.get("/app/segments/row?group=root&prefix=entry-")
    assert row.status_code == 200 and b'name="entry-item"' in row.content and b'-kind"' in row.content
    assert b'name="entry-r' in row.content and b"prefix=entry-" in row.content
    group = client.get("/app/segments/group?prefix=entry-")
    assert b'name="entry-item" value="g:' in group.content
    changed = client.get("/app/segments/row?id=a1&prefix=entry-&entry-ra1-kind=tag")
    assert b'name="entry-ra1-tags"' in changed.content
    loaded = client.post(
        "/app/segments/editor?prefix=entry-", {"load": "json", **entry_json('{"all": [{"status": "active"}]}')}
    )
    assert loaded.status_code == 200 and b'name="entry-match"' in loaded.content
    assert b'name="entry-r' in loaded.content and b'-statuses"' in loaded.content
    odd = client.get("/app/segments/row?group=root&prefix=%22%3E%3Cx")  # an unknown prefix: the page's own
    assert odd.status_code == 200 and b'name="item"' in odd.content


def test_a_missing_name_still_reports_the_entry_conditions_errors(ui_client, workspace):
    data = with_actions(WAIT_ROW, name="", **entry_rows(999999))  # no such tag, and no name
    response = ui_client().post("/app/workflows/new/", data)
    assert response.status_code == 400 and response.context["form"].errors["name"]
    editor = response.context["entry"]
    assert editor.rows()[1].errors and editor.rows()[1].errors[0].startswith("tag")


def test_loading_blank_json_into_the_rows_gives_no_conditions(ui_client, workspace):
    loaded = ui_client().post("/app/segments/editor?prefix=entry-", {"load": "json", **entry_json(" ")})
    assert loaded.status_code == 200 and not loaded.context["editor"].items
    assert b"Not valid JSON" not in loaded.content
