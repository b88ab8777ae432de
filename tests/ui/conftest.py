"""The UI tests' signed-in clients."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Role
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def ui_client(workspace):
    """`ui_client(role, ws=..., enforce_csrf_checks=...)`: a browser-like client signed in as a new member
    with that role (marketer by default) of `ws` (the test's workspace by default). The client carries
    its `user` and `membership`."""

    def make(role: str = Role.MARKETER, ws=None, enforce_csrf_checks: bool = False) -> Client:
        user = UserFactory()
        membership = MembershipFactory(workspace=ws or workspace, user=user, role=role)
        client = Client(enforce_csrf_checks=enforce_csrf_checks)
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        client.membership = membership  # type: ignore[attr-defined]
        return client

    return make
