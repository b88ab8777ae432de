"""The webhooks API: endpoints, secrets shown only on create and rotation, roles, validation that names
the field, deliveries with their attempts, retries, pings, and another workspace's rows answering 404."""

# ruff: noqa: F811 - pytest fixtures imported from the delivery tests are redefined as parameters

from __future__ import annotations

import json

import pytest

from accounts.models import Role
from automation import outgoing
from automation.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

# The local HTTP receivers and their fixtures are shared with the delivery tests.
from tests.automation.test_webhooks import allow_private, eager_celery, receivers, verify  # noqa: F401

BASE = "/api/v1/webhooks"


@pytest.fixture
def endpoint(workspace, allow_private) -> WebhookEndpoint:
    return outgoing.webhook_endpoint_create(
        workspace=workspace, url="http://127.0.0.1:9/hook", event_types=["email.opened"], description="CRM"
    )


def test_create_shows_the_secret_once(api, allow_private):
    response = api.post(BASE, {"url": "http://127.0.0.1:9/in", "event_types": ["email.opened", "*"]}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["*"]  # "*" covers the rest
    assert body["active"] is True
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.secret == body["secret"]
    assert "secret" not in api.get(f"{BASE}/{endpoint.pk}").json()
    assert all("secret" not in row for row in api.get(BASE).json()["results"])


def test_rotate_secret_returns_the_new_one(api, endpoint):
    old = endpoint.secret
    response = api.post(f"{BASE}/{endpoint.pk}/rotate-secret")
    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.secret != old and response.json()["secret"] == endpoint.secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["*"]}, "url"),
        ({"url": "ftp://example.org/x", "event_types": ["*"]}, "url"),
        ({"url": "http://nonexistent.invalid/x", "event_types": ["*"]}, "url"),
        ({"url": 12, "event_types": ["*"]}, "url"),
        ({"url": "http://93.184.215.14/x"}, "event_types"),
        ({"url": "http://93.184.215.14/x", "event_types": []}, "event_types"),
        ({"url": "http://93.184.215.14/x", "event_types": "email.opened"}, "event_types"),
        ({"url": "http://93.184.215.14/x", "event_types": ["email.opened", "email.nope"]}, "event_types[1]"),
        ({"url": "http://93.184.215.14/x", "event_types": ["ping"]}, "event_types[0]"),
        ({"url": "http://93.184.215.14/x", "event_types": ["*"], "description": "d" * 201}, "description"),
    ],
)
def test_validation_errors_name_the_field(api, body, field, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = api.post(BASE, body, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert field in details or field.split("[")[0] in details, details


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.5/", "http://169.254.169.254/"]
)
def test_private_addresses_refused_at_save(api, url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = api.post(BASE, {"url": url, "event_types": ["*"]}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsafe_url" and list(error["details"]) == ["url"]
    assert not WebhookEndpoint.objects.exists()


def test_update_checks_the_url_too(api, endpoint, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = api.patch(f"{BASE}/{endpoint.pk}", {"url": "http://192.168.0.1/"}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["details"]) == ["url"]
    response = api.patch(f"{BASE}/{endpoint.pk}", {"event_types": ["email.clicked"], "description": "x"}, format="json")
    assert response.status_code == 200
    assert response.json()["event_types"] == ["email.clicked"] and "secret" not in response.json()


def test_pause_and_enable(api, endpoint):
    response = api.patch(f"{BASE}/{endpoint.pk}", {"active": False}, format="json")
    assert response.status_code == 200
    assert response.json()["active"] is False and response.json()["disabled_reason"] == "Disabled by a user."
    assert api.post(f"{BASE}/{endpoint.pk}/test").status_code == 409
    response = api.post(f"{BASE}/{endpoint.pk}/enable")
    assert response.status_code == 200
    body = response.json()
    assert (body["active"], body["disabled_at"], body["disabled_reason"]) == (True, None, "")


def test_ping_reaches_the_endpoint(
    api,
    workspace,
    receivers,
    allow_private,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    receiver = receivers([204])
    created = api.post(BASE, {"url": receiver.url, "event_types": ["email.sent"]}, format="json").json()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{BASE}/{created['id']}/test")

    assert response.status_code == 202
    headers, body, _ = receiver.requests[0]
    assert verify(created["secret"], headers, body)
    assert json.loads(body)["type"] == "ping" and headers["X-EmailSequence-Event"] == "ping"
    detail = api.get(f"{BASE}/{created['id']}/deliveries/{response.json()['id']}").json()
    assert detail["status"] == "succeeded"
    assert [(a["status_code"], a["error"]) for a in detail["attempt_log"]] == [(204, "")]
    assert detail["payload"]["id"] == detail["uuid"]


def _delivery(endpoint, status=DeliveryStatus.FAILED, n=0) -> WebhookDelivery:
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={"n": n})
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=status, attempts=1, last_status_code=500)
    WebhookAttempt.objects.create(delivery=delivery, status_code=500, latency_ms=12, error="HTTP 500")
    delivery.refresh_from_db()
    return delivery


def test_deliveries_list_filter_detail_and_retry(api, endpoint):
    failed = _delivery(endpoint, DeliveryStatus.FAILED, 1)
    succeeded = _delivery(endpoint, DeliveryStatus.SUCCEEDED, 2)
    pending = _delivery(endpoint, DeliveryStatus.PENDING, 3)

    rows = api.get(f"{BASE}/{endpoint.pk}/deliveries").json()["results"]
    assert [row["id"] for row in rows] == [pending.pk, succeeded.pk, failed.pk]
    rows = api.get(f"{BASE}/{endpoint.pk}/deliveries", {"status": "failed"}).json()["results"]
    assert [row["id"] for row in rows] == [failed.pk]
    assert api.get(f"{BASE}/{endpoint.pk}/deliveries", {"status": "nope"}).status_code == 400

    detail = api.get(f"{BASE}/{endpoint.pk}/deliveries/{failed.pk}").json()
    assert detail["attempt_log"][0]["status_code"] == 500 and detail["attempt_log"][0]["latency_ms"] == 12
    assert detail["payload"]["data"] == {"n": 1}

    response = api.post(f"{BASE}/{endpoint.pk}/deliveries/{failed.pk}/retry")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert api.post(f"{BASE}/{endpoint.pk}/deliveries/{pending.pk}/retry").status_code == 409


def test_a_delivery_answers_only_under_its_own_endpoint(api, workspace, endpoint):
    other = outgoing.webhook_endpoint_create(workspace=workspace, url="http://127.0.0.1:9/b", event_types=["*"])
    delivery = _delivery(other)
    assert api.get(f"{BASE}/{endpoint.pk}/deliveries/{delivery.pk}").status_code == 404
    assert api.post(f"{BASE}/{endpoint.pk}/deliveries/{delivery.pk}/retry").status_code == 404
    assert api.get(f"{BASE}/{other.pk}/deliveries/{delivery.pk}").status_code == 200


def test_another_workspace_gets_404_everywhere(other_api, endpoint):
    delivery = _delivery(endpoint)
    paths = [
        ("get", f"{BASE}/{endpoint.pk}"),
        ("patch", f"{BASE}/{endpoint.pk}"),
        ("delete", f"{BASE}/{endpoint.pk}"),
        ("post", f"{BASE}/{endpoint.pk}/rotate-secret"),
        ("post", f"{BASE}/{endpoint.pk}/enable"),
        ("post", f"{BASE}/{endpoint.pk}/test"),
        ("get", f"{BASE}/{endpoint.pk}/deliveries"),
        ("get", f"{BASE}/{endpoint.pk}/deliveries/{delivery.pk}"),
        ("post", f"{BASE}/{endpoint.pk}/deliveries/{delivery.pk}/retry"),
    ]
    for method, path in paths:
        response = getattr(other_api, method)(path, {"description": "x"} if method == "patch" else None, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    assert other_api.get(BASE).json()["results"] == []
    endpoint.refresh_from_db()
    assert endpoint.description == "CRM"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_below_admin_can_read_but_not_write(client_for, workspace, endpoint, role):
    client = client_for(workspace, role)
    delivery = _delivery(endpoint)
    listed = client.get(BASE)
    assert listed.status_code == 200 and all("secret" not in row for row in listed.json()["results"])
    assert "secret" not in client.get(f"{BASE}/{endpoint.pk}").json()
    assert client.get(f"{BASE}/{endpoint.pk}/deliveries").status_code == 200
    assert client.get(f"{BASE}/{endpoint.pk}/deliveries/{delivery.pk}").status_code == 200
    writes = [
        ("post", BASE, {"url": "http://127.0.0.1:9/x", "event_types": ["*"]}),
        ("patch", f"{BASE}/{endpoint.pk}", {"description": "x"}),
        ("delete", f"{BASE}/{endpoint.pk}", None),
        ("post", f"{BASE}/{endpoint.pk}/rotate-secret", None),
        ("post", f"{BASE}/{endpoint.pk}/enable", None),
        ("post", f"{BASE}/{endpoint.pk}/test", None),
        ("post", f"{BASE}/{endpoint.pk}/deliveries/{delivery.pk}/retry", None),
    ]
    for method, path, body in writes:
        assert getattr(client, method)(path, body, format="json").status_code == 403, (method, path)
    assert WebhookEndpoint.objects.count() == 1


def test_admin_can_write(client_for, workspace, endpoint):
    client = client_for(workspace, Role.ADMIN)
    assert client.patch(f"{BASE}/{endpoint.pk}", {"description": "new"}, format="json").status_code == 200
    assert client.delete(f"{BASE}/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_admin_screens_render(admin_client, endpoint):
    delivery = _delivery(endpoint)
    assert admin_client.get("/admin/automation/webhookendpoint/").status_code == 200
    page = admin_client.get(f"/admin/automation/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()
    assert admin_client.get("/admin/automation/webhookdelivery/").status_code == 200
    page = admin_client.get(f"/admin/automation/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and "HTTP 500" in page.content.decode()


def test_admin_enable_action_goes_through_the_service(admin_client, workspace, endpoint):
    outgoing.webhook_endpoint_update(workspace=workspace, endpoint=endpoint, active=False)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=7)

    response = admin_client.post(
        "/admin/automation/webhookendpoint/", {"action": "enable", "_selected_action": [endpoint.pk]}
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.consecutive_failures, endpoint.disabled_reason) == (True, 0, "")
