"""The segments API: CRUD, count and preview for saved and unsaved trees, roles and tenancy."""

from __future__ import annotations

import pytest

from accounts.models import Role
from subscribers.models import Segment
from tests.factories import SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(workspace, other_workspace):
    tag = TagFactory(workspace=workspace, name="vip")
    SubscriberFactory(workspace=workspace, email="a@x.org").tags.add(tag)
    SubscriberFactory(workspace=workspace, email="b@x.org", status="unsubscribed")
    SubscriberFactory(workspace=other_workspace, email="x@x.org")
    return tag


def test_crud_count_and_preview(api, people):
    response = api.post("/api/v1/segments", {"name": "Active", "rules": {"status": "active"}}, format="json")
    assert response.status_code == 201, response.data
    segment_id = response.data["id"]
    assert response.data["rules"] == {"status": "active"}
    assert api.get(f"/api/v1/segments/{segment_id}/count").data == {"count": 1}
    preview = api.get(f"/api/v1/segments/{segment_id}/preview?limit=5").data
    assert preview["count"] == 1
    assert [(row["email"], row["tags"]) for row in preview["results"]] == [("a@x.org", ["vip"])]
    response = api.patch(f"/api/v1/segments/{segment_id}", {"rules": {"not": {"tag": people.pk}}}, format="json")
    assert response.status_code == 200, response.data
    assert api.get(f"/api/v1/segments/{segment_id}/count").data == {"count": 1}
    assert api.get(f"/api/v1/segments/{segment_id}/preview").data["results"][0]["email"] == "b@x.org"
    assert [row["name"] for row in api.get("/api/v1/segments").data["results"]] == ["Active"]
    assert (
        api.post("/api/v1/segments", {"name": "Active", "rules": {"status": "active"}}, format="json").status_code
        == 409
    )
    assert api.delete(f"/api/v1/segments/{segment_id}").status_code == 204
    assert not Segment.objects.exists()


def test_unsaved_count_and_preview(api, people):
    body = {"rules": {"any": [{"tag": people.pk}, {"status": "unsubscribed"}]}}
    assert api.post("/api/v1/segments/count", body, format="json").data == {"count": 2}
    response = api.post("/api/v1/segments/preview?limit=1", body, format="json")
    assert response.data["count"] == 2
    assert len(response.data["results"]) == 1
    assert api.post("/api/v1/segments/preview?limit=0", body, format="json").status_code == 400


def test_invalid_rules_name_the_node(api, people):
    bad = {"all": [{"status": "active"}, {"attribute": "missing", "op": "eq", "value": 1}]}
    response = api.post("/api/v1/segments", {"name": "Bad", "rules": bad}, format="json")
    assert response.status_code == 400
    assert "rules.all[1].attribute" in str(response.data)
    response = api.post("/api/v1/segments/count", {"rules": {"status": "x"}}, format="json")
    assert response.status_code == 400
    assert "rules.status" in str(response.data)


def test_tenancy(client_for, workspace, other_workspace, people):
    segment = Segment.objects.create(workspace=workspace, name="Mine", rules={"status": "active"})
    outsider = client_for(other_workspace)
    for path in (f"/api/v1/segments/{segment.pk}", f"/api/v1/segments/{segment.pk}/count",
                 f"/api/v1/segments/{segment.pk}/preview"):  # fmt: skip
        assert outsider.get(path).status_code == 404
    assert outsider.delete(f"/api/v1/segments/{segment.pk}").status_code == 404
    # Another workspace's tag is refused, and its own subscribers are the only ones counted.
    response = outsider.post("/api/v1/segments/count", {"rules": {"tag": people.pk}}, format="json")
    assert response.status_code == 400
    assert outsider.post("/api/v1/segments/count", {"rules": {"status": "active"}}, format="json").data == {"count": 1}


def test_roles(client_for, workspace, people):
    viewer = client_for(workspace, Role.VIEWER)
    body = {"name": "V", "rules": {"status": "active"}}
    assert viewer.post("/api/v1/segments", body, format="json").status_code == 403
    assert viewer.post("/api/v1/segments/count", {"rules": {"status": "active"}}, format="json").data == {"count": 1}
    assert viewer.post("/api/v1/segments/preview", {"rules": {"status": "active"}}, format="json").status_code == 200
    marketer = client_for(workspace, Role.MARKETER)
    assert marketer.post("/api/v1/segments", body, format="json").status_code == 201
