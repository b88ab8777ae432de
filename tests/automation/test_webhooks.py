"""Outgoing webhooks against real HTTP servers on loopback: signed delivery, retries, the SSRF guard,
timeouts, disabling an endpoint that keeps failing, and the fan-out of recorded events."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Role
from automation import outgoing
from automation.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from automation.outgoing.delivery import BACKOFF_SECONDS, JITTER, webhook_deliveries_tick, webhook_delivery_attempt
from automation.outgoing.events import EVENT_TYPE_MAP, SUBSCRIBABLE_TYPES
from automation.ssrf import Target, UnsafeUrl, target_post, url_vet
from config.celery_app import app as celery_app
from sequences.models import OutboxEmail
from subscribers.models import EventType
from subscribers.services import event_record
from tests.factories import MembershipFactory, SubscriberFactory, UserFactory
from tests.sequences.test_delivery_support import smtp_server  # noqa: F401 - the `smtp` fixture


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers with the next status of
    `statuses` (the last one repeats). With `hold`, it waits for that event before answering."""

    def __init__(
        self, statuses: list[int], hold: threading.Event | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.statuses = list(statuses)
        self.hold = hold
        self.requests: list[tuple[dict[str, str], bytes, str]] = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body, self.path))
                receiver.received.set()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/es?x=1"

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(
        statuses: list[int] | None = None, hold: threading.Event | None = None, tls: ssl.SSLContext | None = None
    ) -> Receiver:
        receiver = Receiver(statuses or [200], hold, tls)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def allow_private(settings):
    """The local receivers live on 127.0.0.1, which the guard refuses unless told otherwise."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    return settings


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What an integrator does, as docs/webhooks.md shows it: recompute the HMAC over "t.body"."""
    parts = dict(item.split("=", 1) for item in headers["X-EmailSequence-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def endpoint_for(workspace, url: str, event_types: list[str] | None = None) -> WebhookEndpoint:
    return outgoing.webhook_endpoint_create(workspace=workspace, url=url, event_types=event_types or ["*"])


# Delivery ---------------------------------------------------------------------------------------


def test_recorded_event_reaches_local_server_signed(
    workspace, receivers, allow_private, eager_celery, django_capture_on_commit_callbacks
):
    receiver = receivers([200])
    endpoint = endpoint_for(workspace, receiver.url, ["event.custom"])
    subscriber = SubscriberFactory(workspace=workspace, email="ada@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        event, _ = event_record(
            workspace=workspace, subscriber=subscriber, name="order_placed", properties={"order_id": "A-1"}
        )

    assert len(receiver.requests) == 1
    headers, body, path = receiver.requests[0]
    assert path == "/hooks/es?x=1"
    assert verify(endpoint.secret, headers, body)
    assert not verify("whsec_wrong", headers, body)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "EmailSequence-Webhooks/1"
    assert headers["X-EmailSequence-Event"] == "event.custom"
    payload = json.loads(body)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert payload["id"] == headers["X-EmailSequence-Delivery"] == str(delivery.uuid)
    assert payload["type"] == "event.custom"
    assert payload["workspace_id"] == workspace.pk
    assert payload["data"]["event_id"] == event.pk
    assert payload["data"]["name"] == "order_placed"
    assert payload["data"]["subscriber"] == {"id": subscriber.pk, "email": "ada@example.org"}
    assert payload["data"]["properties"] == {"order_id": "A-1"}
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 1
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code == 200 and attempt.latency_ms is not None and attempt.error == ""


def test_500_is_retried_by_the_tick_then_succeeds(workspace, receivers, allow_private):
    receiver = receivers([500, 200])
    endpoint = endpoint_for(workspace, receiver.url)
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={"hello": "world"})
    first_at = timezone.now()

    webhook_delivery_attempt(delivery_id=delivery.pk, now=first_at)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1 and delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
    # The first retry waits 30 s plus up to 20% jitter.
    wait = (delivery.next_attempt_at - first_at).total_seconds()
    assert BACKOFF_SECONDS[0] <= wait <= BACKOFF_SECONDS[0] * (1 + JITTER)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1
    # Not due yet: neither the tick nor a stray task sends it early.
    assert webhook_deliveries_tick(now=first_at + timedelta(seconds=1)) == 0
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=first_at + timedelta(seconds=1)) is None

    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert webhook_deliveries_tick(now=later) == 1
    assert webhook_deliveries_tick(now=later) == 0  # handed out once, not again while its task waits
    webhook_delivery_attempt(delivery_id=delivery.pk, now=later)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.delivered_at == later
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("status_code", "error"))
    assert attempts == [(500, "HTTP 500"), (200, "")]
    assert all(a.latency_ms is not None for a in WebhookAttempt.objects.filter(delivery=delivery))
    # Both attempts carried the same delivery id, so the receiver can drop a duplicate.
    assert len({headers["X-EmailSequence-Delivery"] for headers, _, _ in receiver.requests}) == 1
    assert json.loads(receiver.requests[1][1])["data"] == {"hello": "world"}
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0  # a success resets the count


def test_a_leased_delivery_is_not_sent_by_a_second_worker(workspace, receivers, allow_private):
    receiver = receivers([200])
    endpoint = endpoint_for(workspace, receiver.url)
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={})
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_expires_at=now + timedelta(minutes=1))

    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now) is None
    assert webhook_deliveries_tick(now=now) == 0
    assert receiver.requests == []

    # The lease expired (its worker died): the delivery is taken again.
    outcome = webhook_delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(minutes=2))
    assert outcome is not None and outcome.sent
    assert len(receiver.requests) == 1


def test_gives_up_after_the_retry_window(workspace, receivers, allow_private, settings):
    settings.WEBHOOK_RETRY_HOURS = 1
    receiver = receivers([503])
    endpoint = endpoint_for(workspace, receiver.url)
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={})
    near_the_end = delivery.created_at + timedelta(minutes=59, seconds=50)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=near_the_end)

    webhook_delivery_attempt(delivery_id=delivery.pk, now=near_the_end)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.next_attempt_at is None
    assert "gave up after 1 attempts over 1 hours" in delivery.last_error


def test_slow_endpoint_times_out_and_does_not_hold_up_another(workspace, receivers, allow_private, transactional_db):
    allow_private.WEBHOOK_READ_TIMEOUT = 0.5
    release = threading.Event()
    slow = receivers([200], hold=release)
    fast = receivers([200])
    slow_delivery = outgoing.webhook_send(
        endpoint=endpoint_for(workspace, slow.url), event_type="workflow.webhook", payload={"n": 1}
    )
    fast_delivery = outgoing.webhook_send(
        endpoint=endpoint_for(workspace, fast.url), event_type="workflow.webhook", payload={"n": 2}
    )
    outcomes = {}

    def attempt_slow() -> None:
        outcomes["slow"] = webhook_delivery_attempt(delivery_id=slow_delivery.pk)
        connection.close()

    worker = threading.Thread(target=attempt_slow)
    worker.start()
    assert slow.received.wait(30)  # the slow endpoint has the request and is sitting on it
    # Meanwhile the other endpoint's delivery goes through: it is its own attempt, not queued behind.
    fast_outcome = webhook_delivery_attempt(delivery_id=fast_delivery.pk)
    worker.join(60)
    release.set()

    assert fast_outcome is not None and fast_outcome.sent
    fast_delivery.refresh_from_db()
    assert fast_delivery.status == DeliveryStatus.SUCCEEDED
    slow_delivery.refresh_from_db()
    assert slow_delivery.status == DeliveryStatus.PENDING
    assert slow_delivery.last_status_code is None
    assert slow_delivery.last_error == "timeout: no read within 0.5 s"
    assert WebhookAttempt.objects.get(delivery=slow_delivery).error == "timeout: no read within 0.5 s"


def test_every_delivery_gets_its_own_attempt_task(
    workspace, receivers, allow_private, monkeypatch, django_capture_on_commit_callbacks
):
    from automation.tasks import webhooks as tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.webhook_delivery_attempt_task, "delay", queued.append)
    endpoints = [endpoint_for(workspace, receivers([200]).url) for _ in range(3)]
    event, _ = event_record(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), name="x")
    with django_capture_on_commit_callbacks(execute=True):
        ids = outgoing.webhook_fanout(event_ids=[event.pk])
    assert len(ids) == len(endpoints)
    assert sorted(queued) == sorted(ids)


# Disabling ----------------------------------------------------------------------------------------


def test_endpoint_disabled_after_consecutive_failures_with_an_email(
    workspace, receivers, allow_private, django_capture_on_commit_callbacks
):
    allow_private.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    allow_private.EMAIL_BACKEND = "sequences.outbox.OutboxEmailBackend"  # the embedded mode's outbox
    members = [(Role.OWNER, "owner@acme.test"), (Role.ADMIN, "admin@acme.test"), (Role.MARKETER, "m@acme.test")]
    for role, email in members:
        MembershipFactory(workspace=workspace, user=UserFactory(email=email), role=role)
    receiver = receivers([500])
    endpoint = endpoint_for(workspace, receiver.url)
    deliveries = [
        outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={"n": n}) for n in range(4)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        for delivery in deliveries[:3]:
            webhook_delivery_attempt(delivery_id=delivery.pk)

    endpoint.refresh_from_db()
    assert endpoint.active is False
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_reason.startswith("3 consecutive failed attempts (limit 3); last error: HTTP 500")
    # Every delivery still pending (the untried one, and the retries of the failed ones) fails with the reason.
    statuses = set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status", flat=True))
    assert statuses == {DeliveryStatus.FAILED}
    untried = WebhookDelivery.objects.get(pk=deliveries[3].pk)
    assert untried.attempts == 0 and untried.last_error.startswith("Endpoint disabled: 3 consecutive")
    notice = OutboxEmail.objects.get()
    assert sorted(notice.to) == ["admin@acme.test", "owner@acme.test"]
    assert endpoint.url in notice.subject and "3 consecutive failed attempts" in notice.text
    assert f"/app/settings/webhooks/{endpoint.pk}/" in notice.text  # where to enable it and retry
    assert len(receiver.requests) == 3

    # Enabled again: clean state, and new deliveries go out.
    outgoing.webhook_endpoint_enable(workspace=workspace, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.consecutive_failures, endpoint.disabled_reason) == (True, 0, "")


def test_a_delivery_to_a_disabled_endpoint_fails_without_a_request(workspace, receivers, allow_private):
    receiver = receivers([200])
    endpoint = endpoint_for(workspace, receiver.url)
    outgoing.webhook_endpoint_update(workspace=workspace, endpoint=endpoint, active=False)
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={})

    webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error.startswith("Endpoint disabled")
    assert receiver.requests == []


# SSRF guard ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",  # CGNAT
        "http://169.254.10.10/",  # link-local
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",  # reserved
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[64:ff9b::7f00:1]/",  # NAT64 form of 127.0.0.1
        "http://[2002:7f00:1::]/",  # 6to4 form of 127.0.0.1
        "http://localhost:8000/",  # a name that resolves to loopback
        "http://2130706433/",  # 127.0.0.1 spelled as one number
        "http://0x7f.1/",  # and in hex
    ],
)
def test_guard_refuses_non_public_addresses(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(UnsafeUrl, match="resolves to"):
        url_vet(url)


@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://metadata.google.internal/"]
)
def test_guard_refuses_metadata_even_when_private_is_allowed(url, allow):
    with pytest.raises(UnsafeUrl, match="metadata"):
        url_vet(url, allow_private=allow)


def test_guard_passes_public_address_and_pins_it(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    target = url_vet("https://93.184.215.14:8443/in?a=b")
    assert (target.scheme, target.host, target.port, target.path, target.addresses) == (
        "https", "93.184.215.14", 8443, "/in?a=b", ["93.184.215.14"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/", "Only http and https"),
        ("http:///path", "no host"),
        ("http://user:pw@93.184.215.14/", "Credentials"),
        ("http://nonexistent.invalid/", "Could not resolve host nonexistent.invalid"),
        ("http://93.184.215.14:99999/", "Not a valid URL"),
        ("http://93.184.215.14/a b", "spaces or control characters"),
        ("http://93.184.215.14/a\r\nX-Injected: 1", "spaces or control characters"),
    ],
)
def test_guard_explains_bad_urls(url, message):
    with pytest.raises(UnsafeUrl, match=message):
        url_vet(url, allow_private=False)


def test_guard_is_checked_again_at_delivery_time(workspace, receivers, allow_private):
    receiver = receivers([200])
    port = receiver.server.server_address[1]
    endpoint = endpoint_for(workspace, f"http://localhost:{port}/hook")  # allowed when it was saved
    allow_private.WEBHOOK_ALLOW_PRIVATE = False
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={})

    webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING  # retried later: DNS may change back
    assert delivery.last_error == "refused: localhost resolves to 127.0.0.1, a loopback address."
    assert receiver.requests == []


def test_a_redirect_is_not_followed(workspace, receivers, allow_private):
    receiver = receivers([302])
    delivery = outgoing.webhook_send(
        endpoint=endpoint_for(workspace, receiver.url), event_type="workflow.webhook", payload={}
    )
    webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.PENDING, 302)
    assert delivery.last_error == "HTTP 302"
    assert len(receiver.requests) == 1


# Fan-out ------------------------------------------------------------------------------------------


def test_fan_out_one_delivery_per_subscribed_endpoint(workspace, other_workspace, receivers, allow_private):
    url = receivers([200]).url
    every = endpoint_for(workspace, url, ["*"])
    opens = endpoint_for(workspace, url, ["email.opened", "email.clicked"])
    paused = endpoint_for(workspace, url, ["*"])
    outgoing.webhook_endpoint_update(workspace=workspace, endpoint=paused, active=False)
    theirs = endpoint_for(other_workspace, url, ["*"])
    subscriber = SubscriberFactory(workspace=workspace)
    their_subscriber = SubscriberFactory(workspace=other_workspace)
    custom, _ = event_record(workspace=workspace, subscriber=subscriber, name="signed_up")
    opened, _ = event_record(workspace=workspace, subscriber=subscriber, type=EventType.OPENED, message_id=7)
    their_event, _ = event_record(workspace=other_workspace, subscriber=their_subscriber, type=EventType.OPENED)

    outgoing.webhook_fanout(event_ids=[custom.pk, opened.pk])

    made = sorted(WebhookDelivery.objects.values_list("endpoint_id", "event_id", "event_type"))
    assert made == sorted(
        [
            (every.pk, custom.pk, "event.custom"),
            (every.pk, opened.pk, "email.opened"),
            (opens.pk, opened.pk, "email.opened"),
        ]
    )
    assert not WebhookDelivery.objects.filter(endpoint__in=[paused, theirs]).exists()
    # The same task again (a retried task): no duplicates, and nothing already tried is queued again.
    outgoing.webhook_fanout(event_ids=[custom.pk, opened.pk])
    assert WebhookDelivery.objects.count() == 3
    # The other workspace's event reaches only its own endpoint.
    outgoing.webhook_fanout(event_ids=[their_event.pk])
    assert list(WebhookDelivery.objects.filter(event_id=their_event.pk).values_list("endpoint_id", flat=True)) == [
        theirs.pk
    ]


def test_handler_costs_at_most_one_query_without_endpoints(
    workspace, receivers, allow_private, eager_celery, django_assert_num_queries, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(workspace=workspace)
    event, _ = event_record(workspace=workspace, subscriber=subscriber, type=EventType.SENT)

    with django_assert_num_queries(1):
        outgoing.webhooks_events_handler([event] * 20)  # a chunk of sent events
    with django_assert_num_queries(0):  # the answer is cached for the workspace
        outgoing.webhooks_events_handler([event] * 20)

    # Creating an endpoint forgets the cached answer: the next events are delivered.
    receiver = receivers([200])
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_for(workspace, receiver.url, ["email.sent"])
    with django_capture_on_commit_callbacks(execute=True):
        outgoing.webhooks_events_handler([event])
    assert [json.loads(body)["type"] for _, body, _ in receiver.requests] == ["email.sent"]


def test_every_event_type_maps_to_a_documented_webhook_type():
    assert set(EVENT_TYPE_MAP) == set(EventType.values)
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    assert [t for t in [*SUBSCRIBABLE_TYPES, "ping", "workflow.webhook"] if f"`{t}`" not in docs] == []


def test_a_success_in_flight_when_the_endpoint_was_disabled_still_counts(workspace, receivers, allow_private):
    from automation.outgoing.delivery import _claim, _record
    from automation.ssrf import PostResult

    endpoint = endpoint_for(workspace, receivers([200]).url)
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={})
    now = timezone.now()
    claimed = _claim(delivery_id=delivery.pk, now=now)
    assert claimed is not None
    outgoing.webhook_endpoint_update(workspace=workspace, endpoint=endpoint, active=False)  # fails it meanwhile

    _record(delivery=claimed, result=PostResult(200, 9, ""), now=now)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.SUCCEEDED, 1, 200)


def test_an_endpoint_deleted_during_an_attempt_is_no_error(workspace, receivers, allow_private):
    from automation.outgoing.delivery import _claim, _record
    from automation.ssrf import PostResult

    endpoint = endpoint_for(workspace, receivers([200]).url)
    delivery = outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={})
    claimed = _claim(delivery_id=delivery.pk, now=timezone.now())
    assert claimed is not None
    outgoing.webhook_endpoint_delete(workspace=workspace, endpoint=endpoint)

    assert _record(delivery=claimed, result=PostResult(500, 9, ""), now=timezone.now()) is None
    assert not WebhookAttempt.objects.exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_two_ticks_never_hand_out_the_same_delivery(workspace, allow_private, transactional_db):
    from django.db import transaction

    endpoint = endpoint_for(workspace, "http://127.0.0.1:9/hook")
    first, second = (
        outgoing.webhook_send(endpoint=endpoint, event_type="workflow.webhook", payload={"n": n}) for n in range(2)
    )
    WebhookDelivery.objects.update(queued_at=None)
    locked, release = threading.Event(), threading.Event()

    def other_tick_holding_the_first() -> None:
        # What a concurrent tick does in its transaction: hold the row lock while it hands rows out.
        with transaction.atomic():
            list(WebhookDelivery.objects.select_for_update().filter(pk=first.pk))
            locked.set()
            release.wait(30)
        connection.close()

    worker = threading.Thread(target=other_tick_holding_the_first)
    worker.start()
    assert locked.wait(30)
    try:
        handed_out = webhook_deliveries_tick()
    finally:
        release.set()
        worker.join(30)

    assert handed_out == 1  # the locked row was skipped, not waited for
    assert WebhookDelivery.objects.get(pk=second.pk).queued_at is not None
    assert WebhookDelivery.objects.get(pk=first.pk).queued_at is None


# Connecting to the vetted address ---------------------------------------------------------------


def test_the_connection_goes_to_the_vetted_address_with_the_name_in_host(receivers):
    receiver = receivers([200])
    port = receiver.server.server_address[1]
    # The name does not resolve at all: the request can only arrive through the pinned address.
    target = Target(scheme="http", host="hooks.example.test", port=port, path="/in", addresses=["127.0.0.1"])

    result = target_post(target, body=b"{}", headers={"Content-Type": "application/json"})

    assert result.status_code == 200 and result.body == b"ok"
    headers, _, path = receiver.requests[0]
    assert headers["Host"] == f"hooks.example.test:{port}" and path == "/in"


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for hooks.example.test (openssl, as an operator would make one)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
            "-out", str(cert), "-subj", "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return cert, server


@pytest.mark.parametrize(("host", "trusted", "expected"), [
    ("hooks.example.test", True, "ok"),  # SNI and the name check use the host, not the address
    ("other.example.test", True, "Hostname mismatch"),
    ("hooks.example.test", False, "certificate verify failed"),
])  # fmt: skip
def test_tls_checks_the_certificate_against_the_host_name(receivers, certificate, host, trusted, expected):
    cert, server_context = certificate
    receiver = receivers([200], tls=server_context)
    client_context = ssl.create_default_context(cafile=str(cert)) if trusted else None
    target = Target(
        scheme="https", host=host, port=receiver.server.server_address[1], path="/", addresses=["127.0.0.1"]
    )

    result = target_post(target, body=b"{}", headers={}, ssl_context=client_context)

    if expected == "ok":
        assert result.status_code == 200 and len(receiver.requests) == 1
    else:
        assert result.status_code is None and expected in result.error and result.error.startswith("TLS error")
        assert receiver.requests == []


# Through a real worker ----------------------------------------------------------------------------


def _wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_fans_out_and_a_slow_endpoint_does_not_hold_up_the_other(workspace, receivers, allow_private):
    """Recorded event → fan-out task → one attempt task per delivery, on a Celery worker with two threads:
    the fast endpoint's delivery is done while the slow one is still waiting for its answer."""
    from celery.contrib.testing.worker import start_worker

    allow_private.WEBHOOK_READ_TIMEOUT = 30  # the slow endpoint answers when released, well within this
    release = threading.Event()
    slow, fast = receivers([200], hold=release), receivers([200])
    # Created first, so its attempt task is queued first: a single worker slot would be stuck on it.
    slow_endpoint = endpoint_for(workspace, slow.url, ["event.custom"])
    fast_endpoint = endpoint_for(workspace, fast.url, ["event.custom"])
    subscriber = SubscriberFactory(workspace=workspace)

    with start_worker(
        celery_app, perform_ping_check=False, pool="threads", concurrency=2, queues=["default"], shutdown_timeout=30
    ):
        event, _ = event_record(workspace=workspace, subscriber=subscriber, name="order_placed")
        _wait_until(lambda: WebhookDelivery.objects.filter(endpoint=fast_endpoint, status="succeeded").exists())
        # The slow one has its request and is still waiting: its attempt is not recorded yet.
        assert slow.received.is_set()
        assert WebhookDelivery.objects.get(endpoint=slow_endpoint).attempts == 0
        release.set()
        _wait_until(lambda: WebhookDelivery.objects.filter(endpoint=slow_endpoint, status="succeeded").exists())
        # The fan-out task run again (a redelivered task): nothing is created or queued twice.
        from automation.tasks.webhooks import webhook_fanout_task

        assert webhook_fanout_task.apply(args=[[event.pk]]).get() == 0

    assert WebhookDelivery.objects.count() == 2
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
    assert len(fast.requests) == 1 and len(slow.requests) == 1
    assert verify(fast_endpoint.secret, fast.requests[0][0], fast.requests[0][1])


def test_a_sent_email_reaches_the_endpoint_as_email_sent(
    smtp, workspace, receivers, allow_private, eager_celery, django_capture_on_commit_callbacks
):
    """The sending hot path hands its chunk of `sent` events to the handler after commit."""
    from sequences.delivery.claim import messages_claim
    from sequences.delivery.send import messages_send
    from tests.factories import TemplateFactory
    from tests.sequences.test_delivery_support import message_make

    receiver = receivers([200])
    endpoint = endpoint_for(workspace, receiver.url, ["email.sent"])
    subscriber = SubscriberFactory(workspace=workspace, email="grace@example.org")
    message = message_make(workspace=workspace, subscriber=subscriber, template=TemplateFactory(workspace=workspace))

    with django_capture_on_commit_callbacks(execute=True):
        ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
        assert messages_send(message_ids=ids, worker="w1").outcomes == {message.pk: "sent"}

    assert len(smtp.messages) == 1
    [(headers, body, _)] = receiver.requests
    assert verify(endpoint.secret, headers, body)
    payload = json.loads(body)
    assert payload["type"] == "email.sent"
    assert payload["data"]["message_id"] == message.pk
    assert payload["data"]["subscriber"] == {"id": subscriber.pk, "email": "grace@example.org"}
