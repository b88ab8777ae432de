"""Members in the settings UI: add by email (an account is made when none exists, as in the API), change a
role, remove; the services' rules (only owners touch the owner role, a workspace keeps an owner) shown."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Membership, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ui_client(ui_client):
    """Admins by default here (tests/ui/conftest.py)."""
    return lambda role=Role.ADMIN, **options: ui_client(role, **options)


def add(client: Client, email: str, role: str, password: str = ""):
    return client.post(
        "/app/settings/members/", {"member-email": email, "member-role": role, "member-password": password}
    )


def test_the_page_renders_and_the_settings_page_links_it(ui_client, workspace):
    client = ui_client()
    page = client.get("/app/settings/members/")
    assert page.status_code == 200
    assert b"Add member" in page.content and client.membership.user.email.encode() in page.content
    assert b'href="/app/settings/members/"' in client.get("/app/settings/").content


def test_add_an_existing_user_and_a_new_one_with_a_password(ui_client, workspace, client):
    admin = ui_client()
    existing = UserFactory(username="ada@example.org")
    response = add(admin, "ada@example.org", Role.MARKETER)
    assert response.status_code == 302 and response["Location"] == "/app/settings/members/"
    assert Membership.objects.get(workspace=workspace, user=existing).role == Role.MARKETER
    # Someone without an account: one is made with the password given, and they can sign in with it.
    assert add(admin, "Grace@Example.org", Role.VIEWER, "a-long-pass-1").status_code == 302
    grace = User.objects.get(username__iexact="grace@example.org")
    assert Membership.objects.get(workspace=workspace, user=grace).role == Role.VIEWER
    assert client.login(username=grace.username, password="a-long-pass-1")


def test_add_errors_are_shown_on_the_form_with_the_input_kept(ui_client, workspace):
    admin = ui_client()
    response = add(admin, "not-an-email", Role.MARKETER)
    assert response.status_code == 400 and response.context["add_form"].errors["email"]
    assert b"not-an-email" in response.content
    response = add(admin, "short@example.org", Role.MARKETER, "short")
    assert response.status_code == 400 and response.context["add_form"].errors["password"]
    response = add(admin, "x@example.org", "superuser")
    assert response.status_code == 400 and response.context["add_form"].errors["role"]
    # An admin may not grant the owner role: the service's refusal, on the form.
    response = add(admin, "boss@example.org", Role.OWNER)
    assert response.status_code == 403
    assert "Only an owner can grant" in str(response.context["add_form"].non_field_errors())
    assert b"boss@example.org" in response.content
    # Already a member: the service's conflict.
    response = add(admin, admin.membership.user.email, Role.VIEWER)
    assert response.status_code == 409 and "already a member" in str(response.context["add_form"].non_field_errors())
    assert Membership.objects.filter(workspace=workspace).count() == 1


def test_change_a_role_and_the_owner_rules(ui_client, workspace):
    admin = ui_client()
    marketer = MembershipFactory(workspace=workspace, role=Role.MARKETER)
    response = admin.post(f"/app/settings/members/{marketer.pk}/role", {"role": Role.VIEWER})
    assert response.status_code == 302
    marketer.refresh_from_db()
    assert marketer.role == Role.VIEWER
    # An admin may neither make an owner nor change one.
    owner = MembershipFactory(workspace=workspace, role=Role.OWNER)
    response = admin.post(f"/app/settings/members/{marketer.pk}/role", {"role": Role.OWNER})
    assert response.status_code == 403 and b"Only an owner can grant" in response.content
    assert admin.post(f"/app/settings/members/{owner.pk}/role", {"role": Role.VIEWER}).status_code == 403
    response = admin.post(f"/app/settings/members/{marketer.pk}/role", {"role": "superuser"})
    assert response.status_code == 400 and b"choose one of the listed roles" in response.content
    marketer.refresh_from_db()
    owner.refresh_from_db()
    assert (marketer.role, owner.role) == (Role.VIEWER, Role.OWNER)
    # The last owner stays an owner, even by their own hand.
    owner_client = ui_client(Role.OWNER)
    owner.delete()
    me = owner_client.membership
    response = owner_client.post(f"/app/settings/members/{me.pk}/role", {"role": Role.ADMIN})
    assert response.status_code == 409 and b"A workspace keeps at least one owner." in response.content
    me.refresh_from_db()
    assert me.role == Role.OWNER
    # An owner grants the owner role.
    assert owner_client.post(f"/app/settings/members/{marketer.pk}/role", {"role": Role.OWNER}).status_code == 302
    marketer.refresh_from_db()
    assert marketer.role == Role.OWNER


def test_remove_a_member_and_never_the_last_owner(ui_client, workspace):
    owner_client = ui_client(Role.OWNER)
    viewer = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    assert owner_client.post(f"/app/settings/members/{viewer.pk}/remove").status_code == 302
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    me = owner_client.membership
    response = owner_client.post(f"/app/settings/members/{me.pk}/remove")
    assert response.status_code == 409 and b"A workspace keeps at least one owner." in response.content
    assert Membership.objects.filter(pk=me.pk).exists()
    admin = ui_client()
    assert admin.post(f"/app/settings/members/{me.pk}/remove").status_code == 403  # an owner, by an admin
    assert Membership.objects.filter(pk=me.pk).exists()
    # Removing oneself ends up away from this workspace's pages.
    response = admin.post(f"/app/settings/members/{admin.membership.pk}/remove")
    assert response.status_code == 302 and response["Location"] == "/app/"
    assert not Membership.objects.filter(pk=admin.membership.pk).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_below_admin_reads_the_members_but_cannot_change_them(ui_client, workspace, role):
    client = ui_client(role)
    other = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    page = client.get("/app/settings/members/")
    assert page.status_code == 200 and other.user.email.encode() in page.content
    assert b"Add member" not in page.content and b"Change role" not in page.content
    assert add(client, "new@example.org", Role.VIEWER).status_code == 403
    assert client.post(f"/app/settings/members/{other.pk}/role", {"role": Role.ADMIN}).status_code == 403
    assert client.post(f"/app/settings/members/{other.pk}/remove").status_code == 403
    other.refresh_from_db()
    assert other.role == Role.VIEWER and Membership.objects.filter(workspace=workspace).count() == 2
    assert not User.objects.filter(username="new@example.org").exists()


def test_another_workspaces_member_is_404(ui_client, workspace, other_workspace):
    theirs = MembershipFactory(workspace=other_workspace, role=Role.MARKETER)
    client = ui_client(Role.OWNER)
    assert client.post(f"/app/settings/members/{theirs.pk}/role", {"role": Role.VIEWER}).status_code == 404
    assert client.post(f"/app/settings/members/{theirs.pk}/remove").status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == Role.MARKETER
    assert theirs.user.email.encode() not in client.get("/app/settings/members/").content


def test_csrf_is_enforced(ui_client, workspace):
    client = ui_client(enforce_csrf_checks=True)
    other = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    assert add(client, "new@example.org", Role.VIEWER).status_code == 403
    assert client.post(f"/app/settings/members/{other.pk}/role", {"role": Role.ADMIN}).status_code == 403
    assert client.post(f"/app/settings/members/{other.pk}/remove").status_code == 403
    other.refresh_from_db()
    assert other.role == Role.VIEWER and Membership.objects.filter(workspace=workspace).count() == 2
    client.get("/app/settings/members/")
    token = client.cookies["csrftoken"].value
    response = client.post(f"/app/settings/members/{other.pk}/role", {"role": Role.ADMIN, "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_login_required(client):
    response = client.get("/app/settings/members/")
    assert response.status_code == 302 and response["Location"].startswith("/app/login/")
