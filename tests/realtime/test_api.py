"""HTTP side: /ws/stats, /ws/broadcast, /ws/event and the /ws/dashboard page; roles and tenancy."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Role
from realtime import publish
from subscribers.models import Event, EventType
from tests.factories import MembershipFactory, SubscriberFactory, UserFactory, WorkspaceFactory
from tests.realtime.conftest import open_socket, token_for

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/api/v1/ws/connect/dashboard"
EVENTS = "/api/v1/ws/connect/events"


@pytest.fixture
def acme(transactional_db):
    return WorkspaceFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(transactional_db):
    return WorkspaceFactory(name="Globex", slug="globex")


def api_as(workspace, role):
    user = UserFactory()
    MembershipFactory(workspace=workspace, user=user, role=role)
    client = APIClient()
    client.force_authenticate(user=user)
    client.credentials(HTTP_X_WORKSPACE=str(workspace.pk))
    client.user = user
    return client


def test_stats_count_the_workspaces_open_sockets_by_type(acme, globex):
    admin = api_as(acme, Role.ADMIN)
    token_a, token_b = token_for(admin.user), token_for(api_as(globex, Role.OWNER).user)

    @async_to_sync
    async def run():
        sockets = [
            (await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token_a}"))[0],
            (await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token_a}"))[0],
            (await open_socket(f"{EVENTS}?workspace={acme.pk}&token={token_a}"))[0],
            (await open_socket(f"{DASHBOARD}?workspace={globex.pk}&token={token_b}"))[0],
        ]
        during = await sync_to_async(lambda: admin.get("/api/v1/ws/stats").json())()
        for socket in sockets:
            await socket.disconnect()
        return during

    during = run()
    assert during["connections"] == {"dashboard": 2, "events": 1, "campaign": 0}
    assert during["connections_total"] == 3 and during["processes"] == 1
    after = admin.get("/api/v1/ws/stats").json()
    assert after["connections_total"] == 0


def test_stats_and_broadcast_are_for_admins_and_live_events_for_marketers(acme):
    viewer, marketer = api_as(acme, Role.VIEWER), api_as(acme, Role.MARKETER)
    assert viewer.get("/api/v1/ws/stats").status_code == 403
    assert marketer.get("/api/v1/ws/stats").status_code == 403
    assert marketer.post("/api/v1/ws/broadcast", {"message": "hi"}, format="json").status_code == 403
    response = viewer.post("/api/v1/ws/event", {"name": "deploy"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"]
    assert not Event.objects.filter(name="deploy").exists()
    assert marketer.post("/api/v1/ws/event", {"name": "deploy"}, format="json").status_code == 201
    assert APIClient().get("/api/v1/ws/stats").status_code == 401


def test_another_workspace_answers_404(acme, globex):
    admin = api_as(acme, Role.ADMIN)
    theirs = SubscriberFactory(workspace=globex)
    admin.credentials(HTTP_X_WORKSPACE=str(globex.pk))
    assert admin.get("/api/v1/ws/stats").status_code == 404
    assert admin.post("/api/v1/ws/broadcast", {"message": "hi"}, format="json").status_code == 404
    assert admin.post("/api/v1/ws/event", {"name": "x"}, format="json").status_code == 404
    admin.credentials(HTTP_X_WORKSPACE=str(acme.pk))
    response = admin.post("/api/v1/ws/event", {"name": "x", "subscriber_id": theirs.pk}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"subscriber_id": ["Subscriber not found."]}
    assert not Event.objects.filter(workspace=globex).exists()


def test_bad_input_names_the_field(acme):
    marketer, admin = api_as(acme, Role.MARKETER), api_as(acme, Role.ADMIN)
    cases = [
        (marketer, "/api/v1/ws/event", {}, "name"),
        (marketer, "/api/v1/ws/event", {"name": "a\x00b"}, "name"),
        (marketer, "/api/v1/ws/event", {"name": "x", "properties": {"k": "\x00"}}, "properties"),
        (marketer, "/api/v1/ws/event", {"name": "x", "properties": []}, "properties"),
        (marketer, "/api/v1/ws/event", {"name": "x", "subscriber_id": 0}, "subscriber_id"),
        (admin, "/api/v1/ws/broadcast", {"message": ""}, "message"),
        (admin, "/api/v1/ws/broadcast", {"message": "x" * 501}, "message"),
    ]
    for client, url, body, field in cases:
        response = client.post(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["details"], (body, response.json())


def test_broadcast_reaches_the_workspaces_dashboards_only(acme, globex):
    admin_a, admin_b = api_as(acme, Role.ADMIN), api_as(globex, Role.ADMIN)
    token_a, token_b = token_for(admin_a.user), token_for(admin_b.user)

    @async_to_sync
    async def run():
        a, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token_a}")
        b, _ = await open_socket(f"{DASHBOARD}?workspace={globex.pk}&token={token_b}")
        sent = await sync_to_async(admin_a.post)("/api/v1/ws/broadcast", {"message": "Launch at 3"}, format="json")
        a_got = await a.receive_json_from(timeout=10)
        # Globex's own broadcast after it: had Acme's reached Globex it would come first.
        await sync_to_async(admin_b.post)("/api/v1/ws/broadcast", {"message": "Globex only"}, format="json")
        b_got = await b.receive_json_from(timeout=10)
        await a.disconnect()
        await b.disconnect()
        return sent, a_got, b_got

    sent, a_got, b_got = run()
    assert sent.status_code == 202 and sent.json() == {"pushed": 1}
    assert a_got["type"] == "broadcast" and a_got["message"] == "Launch at 3"
    assert a_got["sender"] == admin_a.user.get_username()
    assert b_got["message"] == "Globex only"
    assert admin_a.get("/api/v1/ws/stats").json()["messages_pushed"]["dashboard"] == 1


def test_a_live_event_is_recorded_in_the_log_and_pushed(acme, scheduled):
    marketer = api_as(acme, Role.MARKETER)
    subscriber = SubscriberFactory(workspace=acme)
    token = token_for(marketer.user)

    @async_to_sync
    async def run():
        dashboard, _ = await open_socket(f"{DASHBOARD}?workspace={acme.pk}&token={token}")
        feed, _ = await open_socket(f"{EVENTS}?workspace={acme.pk}&token={token}")
        response = await sync_to_async(marketer.post)(
            "/api/v1/ws/event",
            {"name": "deploy", "properties": {"version": "1.2"}, "subscriber_id": subscriber.pk},
            format="json",
        )
        await sync_to_async(publish.workspace_flush)(workspace_id=acme.pk)
        update = await dashboard.receive_json_from(timeout=10)
        events = await feed.receive_json_from(timeout=10)
        await dashboard.disconnect()
        await feed.disconnect()
        return response, update, events

    response, update, events = run()
    assert response.status_code == 201
    event = Event.objects.get(pk=response.json()["id"])
    assert (event.workspace_id, event.type, event.name, event.properties) == (
        acme.pk,
        EventType.CUSTOM,
        "deploy",
        {"version": "1.2"},
    )
    assert event.subscriber_id == subscriber.pk
    assert scheduled == [(acme.pk, 0.5)]
    assert [e["id"] for e in update["events"]] == [event.pk]
    assert events["events"] == update["events"]


def test_the_dashboard_page_needs_a_session_and_a_workspace_of_the_user(acme, globex):
    user = UserFactory()
    MembershipFactory(workspace=acme, user=user, role=Role.VIEWER)
    anonymous = Client().get("/api/v1/ws/dashboard")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")
    client = Client()
    client.force_login(user)
    page = client.get("/api/v1/ws/dashboard")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-workspace="{acme.pk}"' in html
    assert "vendor/chart.js/chart.umd.js" in html and "realtime/dashboard.js" in html
    assert "<script>" not in html  # no inline script: the CSP forbids it
    csp = page["Content-Security-Policy"]
    assert "connect-src 'self' ws://testserver" in csp and "script-src 'self'" in csp
    assert client.get(f"/api/v1/ws/dashboard?workspace={globex.pk}").status_code == 404
    # A JWT is for the API and the sockets; the page is for a signed-in browser.
    bearer = Client(headers={"Authorization": f"Bearer {token_for(user)}"})
    assert bearer.get("/api/v1/ws/dashboard").status_code == 302
    assert client.get("/api/v1/ws/dashboard?workspace=x").status_code == 404
    MembershipFactory(workspace=globex, user=user, role=Role.VIEWER)
    picker = client.get("/api/v1/ws/dashboard").content.decode()
    assert f'href="?workspace={globex.pk}"' in picker and "data-workspace" not in picker


def test_a_live_event_retried_with_the_same_idempotency_key_is_recorded_once(acme, scheduled):
    marketer = api_as(acme, Role.MARKETER)
    first = marketer.post("/api/v1/ws/event", {"name": "deploy"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = marketer.post("/api/v1/ws/event", {"name": "deploy"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Event.objects.filter(workspace=acme, name="deploy").count() == 1
    assert scheduled == [(acme.pk, 0.5)]
