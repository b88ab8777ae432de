"""Credentials, workspace resolution and roles."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Role
from accounts.services import api_key_create
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def test_jwt_obtain_and_use_lists_only_the_users_workspaces(workspace, other_workspace):
    user = UserFactory(username="ada@example.com")
    MembershipFactory(workspace=workspace, user=user, role=Role.MARKETER)
    client = APIClient()

    token = client.post("/api/v1/auth/token", {"username": "ada@example.com", "password": "correct-horse-battery"})
    assert token.status_code == 200, token.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")

    response = client.get("/api/v1/workspaces")
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == ["acme"]
    assert response.json()["results"][0]["role"] == "marketer"
    assert client.get(f"/api/v1/workspaces/{other_workspace.pk}").status_code == 404

    refreshed = client.post("/api/v1/auth/token/refresh", {"refresh": token.json()["refresh"]})
    assert refreshed.status_code == 200 and "access" in refreshed.json()
    verified = client.post("/api/v1/auth/token/verify", {"token": token.json()["access"]})
    assert verified.status_code == 200


def test_wrong_password_answers_401_in_the_error_format():
    UserFactory(username="ada@example.com")
    response = APIClient().post("/api/v1/auth/token", {"username": "ada@example.com", "password": "nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "no_active_account"


def test_unauthenticated_request_answers_401():
    response = APIClient().get("/api/v1/members")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_api_key_acts_in_its_workspace_and_is_shown_once(client_for, workspace, other_workspace):
    admin = client_for(workspace, Role.ADMIN)
    created = admin.post("/api/v1/api-keys", {"name": "CRM sync", "scope": "write"})
    assert created.status_code == 201, created.content
    secret = created.json()["key"]
    assert secret.startswith(created.json()["prefix"])
    stored = ApiKey.objects.get(pk=created.json()["id"])
    assert secret not in stored.hashed_secret
    listed = admin.get("/api/v1/api-keys").json()["results"]
    assert "key" not in listed[0]

    key_client = APIClient()
    key_client.credentials(HTTP_X_API_KEY=secret)
    assert key_client.get("/api/v1/members").status_code == 200
    assert [w["slug"] for w in key_client.get("/api/v1/workspaces").json()["results"]] == ["acme"]
    # Naming another workspace is 404, as if it did not exist.
    key_client.credentials(HTTP_X_API_KEY=secret, HTTP_X_WORKSPACE=str(other_workspace.pk))
    assert key_client.get("/api/v1/members").status_code == 404
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_revoked_or_unknown_api_key_answers_401(workspace):
    issued = api_key_create(workspace=workspace, name="old", scope="read", created_by=None)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=issued.secret)
    assert client.get("/api/v1/members").status_code == 200
    client.credentials(HTTP_X_API_KEY=issued.secret + "x")
    assert client.get("/api/v1/members").status_code == 401

    owner = UserFactory()
    MembershipFactory(workspace=workspace, user=owner, role=Role.OWNER)
    admin = APIClient()
    admin.force_authenticate(owner)
    assert admin.post(f"/api/v1/api-keys/{issued.api_key.pk}/revoke").status_code == 200
    client.credentials(HTTP_X_API_KEY=issued.secret)
    assert client.get("/api/v1/members").status_code == 401


def test_read_scoped_api_key_cannot_write(workspace):
    issued = api_key_create(workspace=workspace, name="reporting", scope="read", created_by=None)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=issued.secret)
    response = client.post("/api/v1/members", {"email": "x@example.com", "role": "viewer"})
    assert response.status_code == 403


def test_user_in_several_workspaces_must_name_one(workspace, other_workspace):
    user = UserFactory()
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    MembershipFactory(workspace=other_workspace, user=user, role=Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)

    response = client.get("/api/v1/members")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["X-Workspace"]

    client.credentials(HTTP_X_WORKSPACE="globex")
    assert client.get("/api/v1/members").status_code == 200
    stranger = WorkspaceFactory(slug="initech")
    client.credentials(HTTP_X_WORKSPACE=stranger.slug)
    assert client.get("/api/v1/members").status_code == 404
    client.credentials(HTTP_X_WORKSPACE=str(stranger.pk))
    assert client.get("/api/v1/members").status_code == 404


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("marketer", 403), ("admin", 201), ("owner", 201)])
def test_only_admins_add_members(client_for, workspace, role, status):
    client = client_for(workspace, role)
    response = client.post("/api/v1/members", {"email": "new@example.com", "role": "marketer"})
    assert response.status_code == status


def test_admin_cannot_grant_owner_and_last_owner_stays(client_for, workspace):
    admin = client_for(workspace, Role.ADMIN)
    response = admin.post("/api/v1/members", {"email": "boss@example.com", "role": "owner"})
    assert response.status_code == 403

    owner = client_for(workspace, Role.OWNER)
    own_membership = Membership.objects.get(user=owner.user)
    admin_membership = Membership.objects.get(user=admin.user)
    response = owner.patch(f"/api/v1/members/{own_membership.pk}", {"role": "admin"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert owner.delete(f"/api/v1/members/{admin_membership.pk}").status_code == 204


def test_members_of_another_workspace_are_invisible(api, other_api, other_workspace):
    foreign = Membership.objects.filter(workspace=other_workspace).first()
    assert foreign.pk not in [row["id"] for row in api.get("/api/v1/members").json()["results"]]
    assert api.get(f"/api/v1/members/{foreign.pk}").status_code == 404
    assert api.patch(f"/api/v1/members/{foreign.pk}", {"role": "viewer"}).status_code == 404
    assert api.delete(f"/api/v1/members/{foreign.pk}").status_code == 404


def test_workspace_settings_validate_time_zone_and_need_admin(client_for, workspace):
    marketer = client_for(workspace, Role.MARKETER)
    assert marketer.patch(f"/api/v1/workspaces/{workspace.pk}", {"name": "X"}).status_code == 403
    admin = client_for(workspace, Role.ADMIN)
    response = admin.patch(f"/api/v1/workspaces/{workspace.pk}", {"time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "time_zone" in response.json()["error"]["details"]
    response = admin.patch(f"/api/v1/workspaces/{workspace.pk}", {"time_zone": "Europe/Berlin"})
    assert response.status_code == 200 and response.json()["time_zone"] == "Europe/Berlin"


def test_creating_a_workspace_makes_the_caller_its_owner(api):
    response = api.post("/api/v1/workspaces", {"name": "Side project", "time_zone": "Asia/Tokyo"})
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "owner"
    assert Membership.objects.get(workspace_id=response.json()["id"], user=api.user).role == Role.OWNER


def test_idempotency_key_replays_the_first_answer_and_rejects_a_different_body(client_for, workspace):
    admin = client_for(workspace, Role.ADMIN)
    first = admin.post("/api/v1/api-keys", {"name": "once"}, HTTP_IDEMPOTENCY_KEY="k-1")
    again = admin.post("/api/v1/api-keys", {"name": "once"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert ApiKey.objects.filter(name="once").count() == 1
    different = admin.post("/api/v1/api-keys", {"name": "twice"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "idempotency_key_reused"


def test_auth_endpoint_is_throttled_with_retry_after(settings):
    UserFactory(username="ada@example.com")
    client = APIClient()
    statuses = [
        client.post("/api/v1/auth/token", {"username": "ada@example.com", "password": "bad"}).status_code
        for _ in range(25)
    ]
    assert statuses[0] == 401 and statuses[-1] == 429
    response = client.post("/api/v1/auth/token", {"username": "ada@example.com", "password": "bad"})
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "throttled"
