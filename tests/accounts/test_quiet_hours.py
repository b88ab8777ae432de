"""Workspace quiet hours: both hours or neither, 0-23, different; through the API, services and admin."""

import pytest

from accounts.admin import WorkspaceAdminForm
from accounts.services import workspace_update
from core.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def test_quiet_hours_are_set_and_cleared_through_the_api(api, workspace):
    response = api.patch(
        f"/api/v1/workspaces/{workspace.pk}", {"quiet_hours_start": 21, "quiet_hours_end": 8}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["quiet_hours_start"], response.json()["quiet_hours_end"]) == (21, 8)
    workspace.refresh_from_db()
    assert (workspace.quiet_hours_start, workspace.quiet_hours_end) == (21, 8)

    response = api.patch(
        f"/api/v1/workspaces/{workspace.pk}", {"quiet_hours_start": None, "quiet_hours_end": None}, format="json"
    )
    assert response.status_code == 200, response.content
    workspace.refresh_from_db()
    assert (workspace.quiet_hours_start, workspace.quiet_hours_end) == (None, None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"quiet_hours_start": 21}, "quiet_hours_end"),
        ({"quiet_hours_start": 24, "quiet_hours_end": 8}, "quiet_hours_start"),
        ({"quiet_hours_start": 8, "quiet_hours_end": 8}, "quiet_hours_end"),
    ],
)
def test_invalid_quiet_hours_are_refused_naming_the_field(api, workspace, payload, field):
    response = api.patch(f"/api/v1/workspaces/{workspace.pk}", payload, format="json")
    assert response.status_code == 400
    assert field in str(response.json())
    workspace.refresh_from_db()
    assert (workspace.quiet_hours_start, workspace.quiet_hours_end) == (None, None)


def test_changing_one_end_keeps_the_other(workspace):
    workspace_update(workspace=workspace, quiet_hours_start=22, quiet_hours_end=7)
    workspace_update(workspace=workspace, quiet_hours_end=6)
    assert (workspace.quiet_hours_start, workspace.quiet_hours_end) == (22, 6)
    with pytest.raises(ValidationFailed):
        workspace_update(workspace=workspace, quiet_hours_start=None)


def test_the_admin_form_validates_quiet_hours(workspace):
    data = {
        "name": workspace.name, "slug": workspace.slug, "time_zone": "UTC", "sending_rate_per_second": 10,
        "track_opens": True, "quiet_hours_start": 21, "quiet_hours_end": "",
    }  # fmt: skip
    form = WorkspaceAdminForm(data=data, instance=workspace)
    assert not form.is_valid()
    assert "quiet_hours_start" in form.errors or "quiet_hours_end" in form.errors
    form = WorkspaceAdminForm(data={**data, "quiet_hours_end": 8}, instance=workspace)
    assert form.is_valid(), form.errors


def test_the_admin_edits_quiet_hours(admin_client, workspace):
    url = f"/admin/accounts/workspace/{workspace.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b"quiet_hours_start" in page.content
    data = {
        "name": workspace.name, "slug": workspace.slug, "time_zone": "UTC", "from_name": "", "from_email": "",
        "reply_to": "", "postal_address": "", "sending_rate_per_second": 10, "track_opens": "on",
        "quiet_hours_start": 22, "quiet_hours_end": 6,
        "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0,
    }  # fmt: skip
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    workspace.refresh_from_db()
    assert (workspace.quiet_hours_start, workspace.quiet_hours_end) == (22, 6)
