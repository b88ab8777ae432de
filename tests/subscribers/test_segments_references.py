"""Saved-segment references in rule trees ({"segment": id}): inlined at compile time, checked for
tenancy, cycles and depth, and a referenced segment kept from deletion; the usage registry."""

from __future__ import annotations

import pytest

from core.errors import Conflict, ValidationFailed
from subscribers import segments
from subscribers.models import Segment
from subscribers.segments import (
    MAX_REFERENCE_DEPTH,
    segment_create,
    segment_delete,
    segment_update,
    segment_usage_register,
    segment_usages,
    segment_validate,
)
from tests.factories import SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db


def emails(workspace, tree) -> list[str]:
    return sorted(s.email for s in segments.segment_subscribers(workspace=workspace, tree=tree))


@pytest.fixture
def vip(workspace, other_workspace):
    tag = TagFactory(workspace=workspace, name="vip")
    SubscriberFactory(workspace=workspace, email="a@x.org").tags.add(tag)
    SubscriberFactory(workspace=workspace, email="b@x.org", status="unsubscribed").tags.add(tag)
    SubscriberFactory(workspace=workspace, email="c@x.org")
    SubscriberFactory(workspace=other_workspace, email="x@x.org")
    return tag


def test_a_reference_means_in_that_saved_segment(workspace, vip):
    vips = segment_create(workspace=workspace, name="VIPs", rules={"tag": vip.pk})
    assert emails(workspace, {"segment": vips.pk}) == ["a@x.org", "b@x.org"]
    assert emails(workspace, {"all": [{"segment": vips.pk}, {"status": "active"}]}) == ["a@x.org"]
    assert emails(workspace, {"not": {"segment": vips.pk}}) == ["c@x.org"]
    # A reference to a reference: followed, and the current rules of each are used.
    active_vips = segment_create(
        workspace=workspace, name="Active VIPs", rules={"all": [{"segment": vips.pk}, {"status": "active"}]}
    )
    assert emails(workspace, {"any": [{"segment": active_vips.pk}, {"status": "unsubscribed"}]}) == [
        "a@x.org",
        "b@x.org",
    ]
    segment_update(workspace=workspace, segment=vips, rules={"not": {"tag": vip.pk}})
    assert emails(workspace, {"segment": active_vips.pk}) == ["c@x.org"]
    normalized = segment_validate(workspace=workspace, tree={"segment": vips.pk})
    assert normalized == {"segment": vips.pk, "tree": {"not": {"tag": [vip.pk]}}}


def test_a_reference_must_name_a_segment_of_the_workspace(workspace, other_workspace, vip):
    theirs = Segment.objects.create(workspace=other_workspace, name="Theirs", rules={"status": "active"})
    for tree, path in [
        ({"all": [{"status": "active"}, {"segment": theirs.pk}]}, "rules.all[1].segment"),
        ({"segment": 10**9}, "rules.segment"),
        ({"segment": "1"}, "rules.segment"),
        ({"segment": True}, "rules.segment"),
        ({"segment": 1, "extra": 1}, "rules.extra"),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            segment_validate(workspace=workspace, tree=tree)
        assert list(caught.value.details) == [path], tree


def test_a_cycle_is_refused_naming_the_path(workspace, vip):
    a = segment_create(workspace=workspace, name="A", rules={"tag": vip.pk})
    b = segment_create(workspace=workspace, name="B", rules={"any": [{"status": "active"}, {"segment": a.pk}]})
    with pytest.raises(ValidationFailed) as caught:
        segment_update(workspace=workspace, segment=a, rules={"all": [{"status": "active"}, {"segment": b.pk}]})
    assert caught.value.code == "segment_cycle"
    assert caught.value.details == {"rules.all[1].segment": ["Circular reference: 'A' -> 'B' -> 'A'."]}
    with pytest.raises(ValidationFailed) as caught:
        segment_update(workspace=workspace, segment=a, rules={"segment": a.pk})
    assert caught.value.details == {"rules.segment": ["Circular reference: 'A' -> 'A'."]}
    a.refresh_from_db()
    assert a.rules == {"tag": vip.pk}  # nothing was stored


def test_a_cycle_stored_behind_the_services_back_is_refused_when_used(workspace, vip):
    a = Segment.objects.create(workspace=workspace, name="A", rules={"status": "active"})
    b = Segment.objects.create(workspace=workspace, name="B", rules={"segment": a.pk})
    Segment.objects.filter(pk=a.pk).update(rules={"segment": b.pk})  # e.g. a hand-edited row
    with pytest.raises(ValidationFailed) as caught:
        segments.segment_count(workspace=workspace, tree={"all": [{"segment": a.pk}]})
    assert caught.value.details == {"rules.all[0].segment": ["Circular reference: 'A' -> 'B' -> 'A'."]}


def test_references_nest_only_so_deep(workspace, vip):
    chain = [segment_create(workspace=workspace, name="S0", rules={"tag": vip.pk})]
    for n in range(1, MAX_REFERENCE_DEPTH + 1):
        chain.append(segment_create(workspace=workspace, name=f"S{n}", rules={"segment": chain[-1].pk}))
    # S3 -> S2 -> S1 -> S0 is three levels of references: allowed; one more is not.
    assert emails(workspace, {"segment": chain[MAX_REFERENCE_DEPTH - 1].pk}) == ["a@x.org", "b@x.org"]
    with pytest.raises(ValidationFailed) as caught:
        segment_validate(workspace=workspace, tree={"not": {"segment": chain[-1].pk}})
    assert caught.value.code == "segment_too_deep"
    assert list(caught.value.details) == ["rules.not.segment"]
    assert "'S3' -> 'S2' -> 'S1' -> 'S0'" in caught.value.details["rules.not.segment"][0]


def test_an_invalid_referenced_segment_is_reported_at_the_reference(workspace, vip):
    doomed = TagFactory(workspace=workspace, name="doomed")
    inner = segment_create(
        workspace=workspace, name="Doomed", rules={"any": [{"status": "active"}, {"tag": doomed.pk}]}
    )
    doomed.delete()
    with pytest.raises(ValidationFailed) as caught:
        segment_validate(workspace=workspace, tree={"all": [{"segment": inner.pk}]})
    assert caught.value.details == {
        "rules.all[0].segment": ["Segment 'Doomed' is invalid: rules.any[1].tag: Not found in this workspace."]
    }


def test_a_segment_referred_to_by_another_cannot_be_deleted(workspace, vip):
    vips = segment_create(workspace=workspace, name="VIPs", rules={"tag": vip.pk})
    segment_create(workspace=workspace, name="Active VIPs", rules={"all": [{"segment": vips.pk}, {"status": "active"}]})
    with pytest.raises(Conflict) as caught:
        segment_delete(workspace=workspace, segment=vips)
    assert caught.value.code == "segment_in_use"
    assert caught.value.details == {"used_by": ["segment 'Active VIPs'"]}
    assert "segment 'Active VIPs'" in caught.value.message


def test_registered_usage_checkers_are_asked(workspace, vip, monkeypatch):
    monkeypatch.setattr(segments, "_segment_usages", list(segments._segment_usages))
    segment = segment_create(workspace=workspace, name="Lonely", rules={"tag": vip.pk})
    assert segment_usages(segment=segment) == []
    seen = []

    def workflows(checked: Segment) -> list[str]:
        seen.append(checked.pk)
        return ["workflow 'Win back'"] if checked.name == "Lonely" else []

    assert segment_usage_register(workflows) is workflows
    segment_usage_register(workflows)  # registering twice asks once
    assert segment_usages(segment=segment) == ["workflow 'Win back'"]
    with pytest.raises(Conflict) as caught:
        segment_delete(workspace=workspace, segment=segment)
    assert caught.value.details == {"used_by": ["workflow 'Win back'"]}
    assert seen == [segment.pk, segment.pk]


def test_api_answers_409_naming_the_users_and_400_naming_a_cycle(api, workspace, vip):
    vips = api.post("/api/v1/segments", {"name": "VIPs", "rules": {"tag": vip.pk}}, format="json").json()
    body = {"name": "Active VIPs", "rules": {"all": [{"segment": vips["id"]}, {"status": "active"}]}}
    response = api.post("/api/v1/segments", body, format="json")
    assert response.status_code == 201, response.content
    user = response.json()
    assert api.get(f"/api/v1/segments/{user['id']}/count").json() == {"count": 1}
    assert api.post("/api/v1/segments/count", {"rules": {"segment": vips["id"]}}, format="json").json() == {"count": 2}

    response = api.delete(f"/api/v1/segments/{vips['id']}")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "segment_in_use" and error["details"] == {"used_by": ["segment 'Active VIPs'"]}

    response = api.patch(f"/api/v1/segments/{vips['id']}", {"rules": {"segment": user["id"]}}, format="json")
    assert response.status_code == 400
    assert "'VIPs' -> 'Active VIPs' -> 'VIPs'" in str(response.json())
    assert "rules.segment" in response.json()["error"]["details"]

    assert api.delete(f"/api/v1/segments/{user['id']}").status_code == 204
    assert api.delete(f"/api/v1/segments/{vips['id']}").status_code == 204


def test_api_refuses_another_workspaces_segment_in_a_tree(api, other_api, workspace, vip):
    mine = Segment.objects.create(workspace=workspace, name="Mine", rules={"status": "active"})
    response = other_api.post("/api/v1/segments/count", {"rules": {"segment": mine.pk}}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["rules.segment"]
