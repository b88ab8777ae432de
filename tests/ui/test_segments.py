"""The segment builder: list, rows of conditions -> rule tree -> segment services, preview, JSON, delete."""

from __future__ import annotations

import json

import pytest

from accounts.models import Role
from subscribers.models import FieldType, Segment, SubscriberStatus
from tests.factories import (
    FieldDefinitionFactory,
    MailingListFactory,
    SubscriberFactory,
    TagFactory,
)
from ui import segment_rules, segment_tree

pytestmark = pytest.mark.django_db


def form(name: str = "Engaged VIPs", match: str = "all", **fields: object) -> dict[str, object]:
    """The builder's flat fields: `item` tokens in document order, `r<id>-<input>` per row."""
    return {"name": name, "description": "", "match": match, "source": "rows", "rules_json": "", **fields}


def two_conditions(tag_id: int) -> dict[str, object]:
    return form(
        item=["r:a1", "r:b2"],
        **{"ra1-kind": "status", "ra1-statuses": ["active"], "rb2-kind": "tag", "rb2-tags": [str(tag_id)]},
    )


def test_list_shows_counts_usages_and_links_of_the_own_workspace_only(ui_client, workspace, other_workspace):
    tag = TagFactory(workspace=workspace, name="vip")
    SubscriberFactory(workspace=workspace).tags.add(tag)
    SubscriberFactory(workspace=workspace)
    vips = Segment.objects.create(workspace=workspace, name="VIPs", description="Tagged vip", rules={"tag": tag.pk})
    Segment.objects.create(workspace=workspace, name="Active VIPs", rules={"all": [{"segment": vips.pk}]})
    Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": "active"})
    client = ui_client(Role.VIEWER)
    page = client.get("/app/segments/")
    assert page.status_code == 200
    rows = {r["segment"].name: r for r in page.context["rows"]}
    assert set(rows) == {"VIPs", "Active VIPs"}
    assert rows["VIPs"]["count"] == 1 and rows["VIPs"]["usages"] == ["segment 'Active VIPs'"]
    assert b"Tagged vip" in page.content and b"Theirs" not in page.content
    assert f"/app/subscribers/?segment={vips.pk}".encode() in page.content
    assert b"New segment" not in page.content  # viewers get no write controls
    assert b'href="/app/segments/"' in client.get("/app/subscribers/").content


def test_a_segment_made_invalid_since_is_listed_with_its_problem_not_a_500(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    Segment.objects.create(workspace=workspace, name="Stale", rules={"tag": tag.pk})
    tag.delete()
    page = ui_client().get("/app/segments/")
    assert page.status_code == 200 and b"Not found in this workspace" in page.content


def test_create_from_two_conditions_and_a_nested_group(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    data = two_conditions(tag.pk)
    data["item"] = ["r:a1", "g:g1", "r:c3", "r:d4", "r:b2"]
    data.update({
        "gg1-match": "any",
        "rc3-group": "g1", "rc3-kind": "attribute", "rc3-field": "plan", "rc3-op": "in", "rc3-value": "pro, team",
        "rd4-group": "g1", "rd4-kind": "event", "rd4-event": "order", "rd4-did": "yes", "rd4-at_least": "2",
        "rd4-within_days": "30", "rd4-properties": "sku=A, qty=3", "rd4-negate": "on",
    })  # fmt: skip
    response = ui_client().post("/app/segments/new/", data)
    segment = Segment.objects.get(workspace=workspace, name="Engaged VIPs")
    assert response.status_code == 302 and response["Location"] == f"/app/segments/{segment.pk}/"
    assert segment.rules == {
        "all": [
            {"status": ["active"]},
            {"any": [
                {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
                {"not": {"event": "order", "did": True, "properties": {"sku": "A", "qty": 3}, "at_least": 2,
                         "within_days": 30}},
            ]},
            {"tag": [tag.pk]},
        ]
    }  # fmt: skip


def test_edit_page_shows_the_saved_rules_as_rows_and_saves_changes(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    segment = Segment.objects.create(
        workspace=workspace, name="Old", rules={"any": [{"tag": [tag.pk]}, {"not": {"status": "bounced"}}]}
    )
    client = ui_client()
    page = client.get(f"/app/segments/{segment.pk}/")
    assert page.status_code == 200
    editor = page.context["editor"]
    assert editor.match == "any" and [r.kind for r in editor.rows()] == ["tag", "status"]
    assert editor.rows()[1].negate and editor.source == "rows"
    assert b"ui/segments.js" in page.content and b"Delete segment" in page.content
    response = client.post(f"/app/segments/{segment.pk}/", {**two_conditions(tag.pk), "name": "New name"})
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "New name" and segment.rules == {"all": [{"status": ["active"]}, {"tag": [tag.pk]}]}


def test_a_refused_rule_is_shown_beside_its_row_with_400_and_nothing_lost(ui_client, workspace, other_workspace):
    theirs = TagFactory(workspace=other_workspace)
    FieldDefinitionFactory(workspace=workspace, key="score", type=FieldType.NUMBER)
    data = two_conditions(theirs.pk)
    data["item"] = ["r:a1", "r:b2", "r:c3"]
    data.update({"rc3-kind": "attribute", "rc3-field": "score", "rc3-op": "gt", "rc3-value": "lots"})
    response = ui_client().post("/app/segments/new/", data)
    assert response.status_code == 400 and not Segment.objects.exists()
    rows = {r.id: r for r in response.context["editor"].rows()}
    assert rows["b2"].errors == ["tag[0]: Not found in this workspace."]
    assert response.context["form"]["name"].value() == "Engaged VIPs"  # nothing typed is lost
    assert rows["c3"].get("value") == "lots"
    assert b'id="err-rb2"' in response.content and b"tag[0]: Not found in this workspace." in response.content
    # The service reports the first bad node only; fixing it shows the next one, at its row.
    data["rb2-tags"] = [str(TagFactory(workspace=workspace).pk)]
    response = ui_client().post("/app/segments/new/", data)
    assert response.status_code == 400
    assert {r.id: r.errors for r in response.context["editor"].rows()}["c3"] == ["value: Must be a number."]


def test_missing_name_and_empty_rules_are_both_reported(ui_client, workspace):
    response = ui_client().post("/app/segments/new/", form(name="", item=[]))
    assert response.status_code == 400
    assert "name" in response.context["form"].errors
    assert response.context["editor"].errors == ["rules.all: Must be a non-empty list of conditions."]
    assert not Segment.objects.exists()


def test_a_taken_name_is_shown_on_the_name_field(ui_client, workspace):
    Segment.objects.create(workspace=workspace, name="Engaged VIPs", rules={"status": "active"})
    response = ui_client().post("/app/segments/new/", form(item=["r:a1"], **{"ra1-statuses": ["active"]}))
    assert response.status_code == 400
    assert "exists" in response.context["form"].errors["name"][0]
    assert Segment.objects.count() == 1


def test_save_from_the_json_textarea_and_its_errors(ui_client, workspace):
    client = ui_client()
    bad = form(item=[], source="json", rules_json="{not json")
    response = client.post("/app/segments/new/", bad)
    assert response.status_code == 400 and b"Not valid JSON" in response.content
    tree = {"not": {"any": [{"status": "active"}, {"engagement": "never_opened"}]}}
    response = client.post("/app/segments/new/", {**bad, "rules_json": json.dumps({"all": [{"op": "eq"}]})})
    assert response.status_code == 400 and b"rules.all[0]: Must contain one of" in response.content
    response = client.post("/app/segments/new/", {**bad, "rules_json": json.dumps(tree)})
    segment = Segment.objects.get()
    assert response.status_code == 302 and segment.rules == tree
    # A `not` over a group is beyond the rows: the page opens the JSON editor and says why.
    page = client.get(f"/app/segments/{segment.pk}/")
    assert page.context["editor"].source == "json" and b"edit them as JSON below" in page.content
    assert json.loads(page.context["editor"].json_text) == tree


def test_preview_counts_the_unsaved_rules_and_lists_the_first_ten(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    for i in range(12):
        SubscriberFactory(workspace=workspace, email=f"tagged{i}@example.org").tags.add(tag)
    SubscriberFactory(workspace=workspace, status=SubscriberStatus.UNSUBSCRIBED).tags.add(tag)
    SubscriberFactory(workspace=workspace, email="untagged@example.org")
    response = ui_client(Role.VIEWER).post("/app/segments/preview", two_conditions(tag.pk))
    assert response.status_code == 200
    assert response.context["count"] == 12 and len(response.context["subscribers"]) == 10
    assert b'<strong id="segment-count">12</strong>' in response.content
    assert b"untagged@example.org" not in response.content and not Segment.objects.exists()


def test_preview_puts_errors_beside_their_rows_out_of_band(ui_client, workspace, other_workspace):
    data = two_conditions(TagFactory(workspace=other_workspace).pk)
    response = ui_client().post("/app/segments/preview", data)
    assert response.status_code == 200 and response.context["count"] is None
    content = response.content.decode()
    assert 'id="err-rb2" role="alert" hx-swap-oob="true"><p>tag[0]: Not found in this workspace.</p>' in content
    assert 'id="err-ra1" role="alert" hx-swap-oob="true"></div>' in content  # cleared


def test_row_partial_offers_the_operators_of_the_fields_type(ui_client, workspace):
    FieldDefinitionFactory(workspace=workspace, key="vip", label="VIP", type=FieldType.BOOLEAN)
    client = ui_client(Role.VIEWER)
    new = client.get("/app/segments/row?group=root")
    assert new.status_code == 200 and new.context["row"].kind == "status"
    changed = client.get("/app/segments/row", {"id": "x1", "rx1-kind": "attribute", "rx1-group": "g7"})
    row = changed.context["row"]
    assert row.get("field") == "vip" and row.group == "g7" and row.widget == "bool"
    assert [op for op, _ in row.ops] == ["eq", "ne", "exists"]
    dated = client.get("/app/segments/row", {"id": "x1", "rx1-kind": "created_at", "rx1-op": "between"})
    assert dated.context["row"].widget == "between" and b'id="rx1-value2"' in dated.content
    assert client.get("/app/segments/row?group=../bad").status_code == 404
    group = client.get("/app/segments/group")
    assert group.status_code == 200 and len(group.context["group"].rows) == 1


def test_editor_partial_loads_json_into_rows_and_back(ui_client, workspace):
    lists = MailingListFactory(workspace=workspace)
    tree = {"any": [{"list": [lists.pk], "status": "pending"}, {"all": [{"created_at": {
        "op": "within_last", "value": {"days": 7}}}, {"engagement": "opened", "within_days": 14}]}]}  # fmt: skip
    client = ui_client()
    loaded = client.post("/app/segments/editor", form(item=[], load="json", rules_json=json.dumps(tree)))
    editor = loaded.context["editor"]
    assert loaded.status_code == 200 and editor.source == "rows"
    assert [getattr(i, "kind", "group") for i in editor.items] == ["list", "group"]
    # The rows post back the same tree.
    assert segment_rules.editor_tree(editor) == tree
    shown = client.post("/app/segments/editor", form(item=["r:a1"], **{"ra1-statuses": ["active"], "load": "rows"}))
    assert json.loads(shown.context["editor"].json_text) == {"all": [{"status": ["active"]}]}


def test_delete_keeps_a_segment_in_use_and_says_by_what(ui_client, workspace):
    used = Segment.objects.create(workspace=workspace, name="Base", rules={"status": "active"})
    user = Segment.objects.create(workspace=workspace, name="Uses base", rules={"segment": used.pk})
    client = ui_client()
    response = client.post(f"/app/segments/{used.pk}/delete", follow=True)
    assert b"Base was not deleted" in response.content and b"segment &#x27;Uses base&#x27;" in response.content
    assert Segment.objects.filter(pk=used.pk).exists()
    response = client.post(f"/app/segments/{user.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/app/segments/"
    assert list(Segment.objects.values_list("name", flat=True)) == ["Base"]


def test_viewer_reads_and_previews_but_cannot_write(ui_client, workspace):
    segment = Segment.objects.create(workspace=workspace, name="Keep", rules={"status": "active"})
    client = ui_client(Role.VIEWER)
    page = client.get(f"/app/segments/{segment.pk}/")
    assert page.status_code == 200 and b"Save segment" not in page.content and b"Delete segment" not in page.content
    assert client.get("/app/segments/new/").status_code == 200
    data = form(item=["r:a1"], **{"ra1-statuses": ["bounced"]})
    assert client.post("/app/segments/new/", data).status_code == 403
    assert client.post(f"/app/segments/{segment.pk}/", data).status_code == 403
    assert client.post(f"/app/segments/{segment.pk}/delete").status_code == 403
    segment.refresh_from_db()
    assert segment.name == "Keep" and Segment.objects.count() == 1


def test_another_workspaces_segment_is_404_everywhere(ui_client, other_workspace):
    segment = Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": "active"})
    client = ui_client(Role.OWNER)
    assert client.get(f"/app/segments/{segment.pk}/").status_code == 404
    assert client.post(f"/app/segments/{segment.pk}/", form(item=[])).status_code == 404
    assert client.post(f"/app/segments/{segment.pk}/delete").status_code == 404
    assert client.get(f"/app/segments/row?segment_id={segment.pk}").status_code == 404
    # Referring to it from a new segment is refused by the service, at the row.
    data = form(item=["r:a1"], **{"ra1-kind": "segment", "ra1-segment": str(segment.pk)})
    response = client.post("/app/segments/new/", data)
    assert response.status_code == 400 and response.context["editor"].rows()[0].errors
    assert Segment.objects.count() == 1


def test_csrf_is_enforced(ui_client, workspace):
    segment = Segment.objects.create(workspace=workspace, name="Keep", rules={"status": "active"})
    client = ui_client(enforce_csrf_checks=True)
    data = form(item=["r:a1"], **{"ra1-statuses": ["bounced"]})
    for path in ["/app/segments/new/", f"/app/segments/{segment.pk}/", f"/app/segments/{segment.pk}/delete",
                 "/app/segments/preview", "/app/segments/editor"]:  # fmt: skip
        assert client.post(path, data).status_code == 403, path
    assert Segment.objects.count() == 1
    client.get("/app/segments/new/")
    token = client.cookies["csrftoken"].value
    assert client.post("/app/segments/new/", {**data, "csrfmiddlewaretoken": token}).status_code == 302


def test_a_hostile_form_is_a_400_not_a_500(ui_client, workspace):
    data = form(
        item=["r:a1", "x:zz", "r:../../", "g:", "r:b2"],
        match="none",
        **{"ra1-kind": "nonsense", "rb2-kind": "list", "rb2-lists": ["abc"], "rb2-membership": "maybe"},
    )
    response = ui_client().post("/app/segments/new/", data)
    assert response.status_code == 400 and not Segment.objects.exists()
    assert [r.id for r in response.context["editor"].rows()] == ["a1", "b2"]
    assert response.context["editor"].rows()[0].errors


def test_a_deleted_tag_or_field_stays_chosen_and_is_refused_at_its_row(ui_client, workspace):
    kept, gone = TagFactory(workspace=workspace, name="kept"), TagFactory(workspace=workspace, name="gone")
    FieldDefinitionFactory(workspace=workspace, key="other", type=FieldType.TEXT)
    plan = FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.TEXT)
    rules = {"all": [{"tag": [kept.pk, gone.pk]}, {"attribute": "plan", "op": "eq", "value": "pro"}]}
    segment = Segment.objects.create(workspace=workspace, name="Stale", rules=rules)
    gone_pk = gone.pk
    gone.delete()
    plan.delete()
    client = ui_client()
    page = client.get(f"/app/segments/{segment.pk}/").content.decode()
    assert f'<option value="{gone_pk}" selected>tag #{gone_pk} (deleted)</option>' in page
    assert '<option value="plan" selected>plan (not defined)</option>' in page
    # Posting the page back as shown: nothing is silently swapped, the service names the rows.
    data = form(name="Renamed", item=["r:a1", "r:b2"], **{
        "ra1-kind": "tag", "ra1-tags": [str(kept.pk), str(gone_pk)],
        "rb2-kind": "attribute", "rb2-field": "plan", "rb2-op": "eq", "rb2-value": "pro",
    })  # fmt: skip
    response = client.post(f"/app/segments/{segment.pk}/", data)
    assert response.status_code == 400
    assert response.context["editor"].rows()[0].errors == ["tag[1]: Not found in this workspace."]
    assert b"<h1>Stale</h1>" in response.content
    segment.refresh_from_db()
    assert (segment.name, segment.rules) == ("Stale", rules)


def test_preview_of_the_json_shows_its_errors_with_their_path(ui_client, workspace):
    data = form(item=[], source="json", rules_json=json.dumps({"any": [{"status": "active"}, {"tag": 0}]}))
    response = ui_client().post("/app/segments/preview", data)
    assert response.status_code == 200 and response.context["count"] is None
    assert response.context["editor"].json_errors == [
        "rules.any[1].tag: Must be an integer between 1 and 4611686018427387904."
    ]
    response = ui_client().post("/app/segments/preview", {**data, "rules_json": '{"status": "active"}'})
    assert response.context["count"] == 0 and response.context["editor"].json_errors == []


@pytest.mark.parametrize(
    "tree",
    [
        {
            "all": [
                {"attribute": "n", "op": "between", "value": ["1", "5"]},
                {"attribute": "d", "op": "exists", "value": False},
            ]
        },
        {"any": [{"not": {"event": "order", "did": False, "properties": {"sku": "A", "n": 2, "code": "7"}}}]},
        {"all": [{"confirmed_at": {"op": "between", "value": ["2026-01-01", "2026-02-01"]}}, {"segment": 3}]},
        {"any": [{"engagement": "clicked", "sequence_id": 9}, {"any": [{"status": ["active", "bounced"]}]}]},
    ],
)
def test_rows_round_trip_the_trees_they_can_show(tree):
    assert segment_rules.editor_tree(segment_tree.editor_from_tree(tree)) == tree


@pytest.mark.parametrize(
    "tree",
    [
        {"all": [{"all": [{"any": [{"status": "active"}]}]}]},  # two levels of groups
        {"not": {"all": [{"status": "active"}]}},  # not over a group
        {"event": "order", "between": ["2026-01-01", "2026-02-01"]},
        {"engagement": "opened", "campaign_id": 4},
        {"attribute": "plan", "op": "in", "value": ["a,b"]},
        ["not", "an", "object"],
    ],
)
def test_trees_beyond_the_rows_are_unrepresentable(tree):
    with pytest.raises(segment_tree.Unrepresentable):
        segment_tree.editor_from_tree(tree)


def test_the_subscribers_list_filtered_by_a_segment_made_invalid_says_why_instead_of_a_500(ui_client, workspace):
    tag = TagFactory(workspace=workspace)
    SubscriberFactory(workspace=workspace, email="someone@example.org")
    segment = Segment.objects.create(workspace=workspace, name="Stale", rules={"not": {"tag": tag.pk}})
    tag.delete()
    client = ui_client(Role.VIEWER)
    page = client.get(f"/app/subscribers/?segment={segment.pk}")
    assert page.status_code == 200 and b"Not found in this workspace" in page.content
    assert b"someone@example.org" not in page.content
    export = client.get(f"/app/subscribers/export.csv?segment={segment.pk}")
    assert export.status_code == 200 and b"someone@example.org" not in b"".join(export.streaming_content)
