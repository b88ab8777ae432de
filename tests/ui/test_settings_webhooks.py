"""Webhooks in the settings UI: create (secret shown once), edit, enable and disable, rotate, ping, the
delivery log with retries, delete; admins only for writes, another workspace's endpoint answers 404."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Role
from automation import outgoing
from automation.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.215.14/hooks/in"  # a public address: the SSRF guard resolves nothing


@pytest.fixture
def ui_client(ui_client):
    """Admins by default here (tests/ui/conftest.py)."""
    return lambda role=Role.ADMIN, **options: ui_client(role, **options)


@pytest.fixture
def endpoint(workspace) -> WebhookEndpoint:
    return outgoing.webhook_endpoint_create(
        workspace=workspace, url=PUBLIC_URL, event_types=["email.opened"], description="CRM"
    )


def failed_delivery(endpoint: WebhookEndpoint, **fields) -> WebhookDelivery:
    values = {
        "workspace": endpoint.workspace, "endpoint": endpoint, "event_type": "email.opened",
        "status": DeliveryStatus.FAILED, "attempts": 3, "last_status_code": 503, "last_error": "HTTP 503",
    }  # fmt: skip
    return WebhookDelivery.objects.create(**(values | fields))


def test_create_shows_the_secret_once_with_no_store(ui_client, workspace):
    client = ui_client()
    page = client.get("/app/settings/webhooks/new/")
    assert page.status_code == 200
    assert b'value="email.opened"' in page.content and b"Email opened (email.opened)" in page.content
    response = client.post(
        "/app/settings/webhooks/new/",
        {"url": PUBLIC_URL, "event_types": ["email.opened", "email.clicked"], "description": "CRM sync"},
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(workspace=workspace)
    assert (endpoint.url, endpoint.event_types, endpoint.description) == (
        PUBLIC_URL, ["email.opened", "email.clicked"], "CRM sync",
    )  # fmt: skip
    assert endpoint.secret in response.content.decode() and response["Cache-Control"] == "no-store"
    detail = client.get(f"/app/settings/webhooks/{endpoint.pk}/")
    assert detail.status_code == 200 and endpoint.secret not in detail.content.decode()  # never again
    assert endpoint.secret not in client.get("/app/settings/").content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "", "event_types": ["*"]}, "url"),
        ({"url": "ftp://example.org/x", "event_types": ["*"]}, "url"),
        ({"url": "http://10.0.0.5/in", "event_types": ["*"]}, "url"),  # a private address (SSRF guard)
        ({"url": PUBLIC_URL}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": ["ping"]}, "event_types"),
        ({"url": PUBLIC_URL, "event_types": ["*"], "description": "d" * 201}, "description"),
    ],
)
def test_bad_input_is_a_400_with_the_error_on_the_field_and_the_input_kept(ui_client, data, field, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = ui_client().post("/app/settings/webhooks/new/", data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert b"has-error" in response.content
    if data["url"]:
        assert data["url"].encode() in response.content  # nothing typed is lost
    assert not WebhookEndpoint.objects.exists()


def test_edit_saves_through_the_service_and_checks_the_url(ui_client, endpoint, settings):
    client = ui_client()
    page = client.get(f"/app/settings/webhooks/{endpoint.pk}/")
    assert page.status_code == 200 and page.context["form"].initial["event_types"] == ["email.opened"]
    data = {"url": "https://93.184.215.14/v2", "event_types": ["*"], "description": "All of it"}
    response = client.post(f"/app/settings/webhooks/{endpoint.pk}/", data)
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.description) == (data["url"], ["*"], "All of it")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = client.post(f"/app/settings/webhooks/{endpoint.pk}/", {**data, "url": "http://192.168.0.1/"})
    assert response.status_code == 400 and response.context["form"].errors["url"]
    endpoint.refresh_from_db()
    assert endpoint.url == "https://93.184.215.14/v2"


def test_disable_enable_and_ping(ui_client, endpoint):
    client = ui_client()
    base = f"/app/settings/webhooks/{endpoint.pk}"
    assert client.post(f"{base}/disable").status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.active is False and endpoint.disabled_reason == "Disabled by a user."
    page = client.post(f"{base}/test", follow=True)  # a disabled endpoint is not pinged: the 409 is a message
    assert b"The endpoint is disabled; enable it first." in page.content
    assert not WebhookDelivery.objects.exists()
    assert client.post(f"{base}/enable").status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.active is True and endpoint.disabled_at is None
    page = client.post(f"{base}/test", follow=True)
    assert b"Test ping queued" in page.content
    ping = WebhookDelivery.objects.get(endpoint=endpoint)
    assert ping.event_type == "ping" and ping.status == DeliveryStatus.PENDING
    assert b"<code>ping</code>" in page.content  # in the delivery log
    assert client.post(f"{base}/explode").status_code == 404


def test_rotate_shows_the_new_secret_once(ui_client, endpoint):
    old = endpoint.secret
    client = ui_client()
    response = client.post(f"/app/settings/webhooks/{endpoint.pk}/rotate-secret")
    endpoint.refresh_from_db()
    assert response.status_code == 200 and endpoint.secret != old
    assert endpoint.secret in response.content.decode() and response["Cache-Control"] == "no-store"
    assert endpoint.secret not in client.get(f"/app/settings/webhooks/{endpoint.pk}/").content.decode()


def test_delivery_log_shows_status_attempts_error_and_code_and_retries_a_failed_one(ui_client, endpoint):
    failed = failed_delivery(endpoint, last_error="Connection refused")
    WebhookDelivery.objects.create(
        workspace=endpoint.workspace, endpoint=endpoint, event_type="email.clicked",
        status=DeliveryStatus.SUCCEEDED, attempts=1, last_status_code=204, delivered_at=timezone.now(),
    )  # fmt: skip
    client = ui_client()
    page = client.get(f"/app/settings/webhooks/{endpoint.pk}/").content.decode()
    assert "Connection refused" in page and "503" in page and "204" in page and "Succeeded" in page
    assert page.count(">Retry</button>") == 1  # only the failed one
    response = client.post(f"/app/settings/webhooks/{endpoint.pk}/deliveries/{failed.pk}/retry")
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.PENDING and failed.next_attempt_at is not None
    # Retrying it again while it is pending is the service's 409, shown as a message.
    page = client.post(f"/app/settings/webhooks/{endpoint.pk}/deliveries/{failed.pk}/retry", follow=True)
    assert b"still pending" in page.content


def test_delete_removes_the_endpoint_and_its_log(ui_client, endpoint):
    failed_delivery(endpoint)
    response = ui_client().post(f"/app/settings/webhooks/{endpoint.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/app/settings/#webhooks"
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_below_admin_reads_the_log_but_cannot_write(ui_client, endpoint, role):
    delivery = failed_delivery(endpoint)
    client = ui_client(role)
    page = client.get(f"/app/settings/webhooks/{endpoint.pk}/")
    assert page.status_code == 200 and b"HTTP 503" in page.content
    assert b"Rotate secret" not in page.content and b">Retry</button>" not in page.content
    assert endpoint.secret not in page.content.decode()
    assert b"New webhook" not in client.get("/app/settings/").content
    base = f"/app/settings/webhooks/{endpoint.pk}"
    assert client.get("/app/settings/webhooks/new/").status_code == 403
    writes = [
        ("/app/settings/webhooks/new/", {"url": PUBLIC_URL, "event_types": ["*"]}),
        (f"{base}/", {"url": PUBLIC_URL, "event_types": ["*"]}),
        (f"{base}/disable", {}), (f"{base}/test", {}), (f"{base}/rotate-secret", {}), (f"{base}/delete", {}),
        (f"{base}/deliveries/{delivery.pk}/retry", {}),
    ]  # fmt: skip
    for path, data in writes:
        assert client.post(path, data).status_code == 403, path
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert WebhookEndpoint.objects.count() == 1 and endpoint.active and delivery.status == DeliveryStatus.FAILED
    assert not WebhookDelivery.objects.filter(event_type="ping").exists()


def test_another_workspaces_endpoint_and_delivery_are_404(ui_client, other_workspace, endpoint):
    theirs_url = "https://93.184.215.14/theirs"
    theirs = outgoing.webhook_endpoint_create(workspace=other_workspace, url=theirs_url, event_types=["*"])
    their_delivery = failed_delivery(theirs)
    client = ui_client(Role.OWNER)
    base = f"/app/settings/webhooks/{theirs.pk}"
    assert client.get(f"{base}/").status_code == 404
    for path in [f"{base}/", f"{base}/disable", f"{base}/test", f"{base}/rotate-secret", f"{base}/delete"]:
        assert client.post(path, {"url": PUBLIC_URL, "event_types": ["*"]}).status_code == 404, path
    # Their delivery under my endpoint's URL is not found either.
    assert client.post(f"/app/settings/webhooks/{endpoint.pk}/deliveries/{their_delivery.pk}/retry").status_code == 404
    assert client.post(f"{base}/deliveries/{their_delivery.pk}/retry").status_code == 404
    theirs.refresh_from_db()
    their_delivery.refresh_from_db()
    assert theirs.active and their_delivery.status == DeliveryStatus.FAILED and theirs.url == theirs_url
    assert theirs_url not in client.get("/app/settings/").content.decode()


def test_csrf_is_enforced(ui_client, endpoint):
    client = ui_client(enforce_csrf_checks=True)
    base = f"/app/settings/webhooks/{endpoint.pk}"
    for path in ["/app/settings/webhooks/new/", f"{base}/", f"{base}/disable", f"{base}/delete"]:
        assert client.post(path, {"url": PUBLIC_URL, "event_types": ["*"]}).status_code == 403, path
    assert WebhookEndpoint.objects.count() == 1
    client.get("/app/settings/webhooks/new/")
    token = client.cookies["csrftoken"].value
    response = client.post(f"{base}/disable", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_login_required(client, endpoint):
    for path in ["/app/settings/webhooks/new/", f"/app/settings/webhooks/{endpoint.pk}/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/app/login/")
