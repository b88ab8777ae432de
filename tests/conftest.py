"""Fixtures shared by every test: workspaces, members by role, API clients that act as them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Role, Workspace
from tests.browser.processes import daphne_args, free_port, product_env, running
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle buckets and heartbeats live in Redis: each test starts from an empty cache."""
    cache.clear()
    yield


@pytest.fixture
def workspace(db) -> Workspace:
    return WorkspaceFactory(name="Acme", slug="acme")


@pytest.fixture
def other_workspace(db) -> Workspace:
    return WorkspaceFactory(name="Globex", slug="globex")


@pytest.fixture
def client_for(db) -> Callable[..., APIClient]:
    """`client_for(workspace, role)`: an API client signed in as a member with that role."""

    def make(workspace: Workspace, role: str = Role.OWNER) -> APIClient:
        user = UserFactory()
        MembershipFactory(workspace=workspace, user=user, role=role)
        client = APIClient()
        client.force_authenticate(user=user)
        client.credentials(HTTP_X_WORKSPACE=str(workspace.pk))
        client.user = user
        return client

    return make


@pytest.fixture
def api(client_for, workspace) -> APIClient:
    """An owner's client in `workspace`."""
    return client_for(workspace, Role.OWNER)


@pytest.fixture
def other_api(client_for, other_workspace) -> APIClient:
    """An owner's client in `other_workspace`: for proving tenant isolation."""
    return client_for(other_workspace, Role.OWNER)


@pytest.fixture
def daphne(transactional_db):
    """The URL of daphne serving config.asgi (pages and WebSockets) on the test database; the live
    server pytest-django offers speaks no WebSocket (tests/browser/processes.py)."""
    port = free_port()
    with running(daphne_args(port), env=product_env(), port=port):
        yield f"http://127.0.0.1:{port}"
