"""ESP tracking webhooks: real Postmark and Mailgun payloads posted through anymail's views at
/webhooks/anymail/ become events (once each), and bounces, complaints and unsubscribes change the
subscriber, suppress the address and end their sequences."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.utils import timezone

from sequences.models import Enrollment, EnrollmentStatus
from sequences.services import sequence_enroll
from sequences.webhooks import event_kind
from subscribers.models import Event, EventType, SubscriberStatus, Suppression
from tests.config.test_production_settings import _manage, _production_env
from tests.factories import SubscriberFactory
from tests.sequences.test_delivery_support import message_make

SECRET = "hooks:s3cret-webhook-password"
POSTMARK = "/webhooks/anymail/postmark/tracking/"
MAILGUN = "/webhooks/anymail/mailgun/tracking/"
MAILGUN_SIGNING_KEY = "key-mailgun-webhook-signing"


def auth(secret: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY}


@pytest.fixture
def sent(workspace, subscriber, template, active_sequence):
    """A sent message with the provider's id, from an active enrollment."""
    [result] = sequence_enroll(workspace=workspace, sequence=active_sequence, subscriber_ids=[subscriber.pk])
    enrollment = Enrollment.objects.get(pk=result.enrollment_id)
    return message_make(
        workspace=workspace, subscriber=subscriber, template=template, enrollment=enrollment,
        step=enrollment.current_step, status="sent", provider_message_id="883953f4-6105-42a2-a16a-77a8eac79483",
    )  # fmt: skip


def postmark_bounce(message_id: str, *, bounce_id: int = 4323372036, type: str = "HardBounce", email: str = ""):
    return {
        "RecordType": "Bounce", "ID": bounce_id, "Type": type, "TypeCode": 1, "Name": "Hard bounce",
        "Tag": "welcome", "MessageID": message_id, "ServerID": 23, "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email or "ada@example.org", "From": "news@acme.test", "BouncedAt": timezone.now().isoformat(),
        "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Welcome", "Content": "",
    }  # fmt: skip


def postmark_delivery(message_id: str):
    return {
        "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": message_id,
        "Recipient": "ada@example.org", "Tag": "welcome", "DeliveredAt": timezone.now().isoformat(),
        "Details": "smtp;250 2.0.0 OK", "Metadata": {},
    }  # fmt: skip


def mailgun_event(message_id: str, event: str, token: str, *, signing_key: str = MAILGUN_SIGNING_KEY, **data):
    """A Mailgun tracking webhook body (JSON), signed as Mailgun signs it."""
    timestamp = str(int(time.time()))
    signature = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    event_data = {
        "event": event, "id": f"id-{token}", "timestamp": time.time(), "recipient": "ada@example.org",
        "tags": ["welcome"], "user-variables": {}, "message": {"headers": {"message-id": message_id}}, **data,
    }  # fmt: skip
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}


def post(client, path, payload, **headers):
    return client.post(path, json.dumps(payload), content_type="application/json", **(headers or auth()))


def events(message, type=None):
    queryset = Event.objects.filter(message_id=message.pk)
    return list(queryset.filter(type=type) if type else queryset)


def test_the_same_webhook_three_times_is_one_event(client, sent):
    delivery = postmark_delivery(sent.provider_message_id)  # no event id: deduplicated by its hash
    opened = mailgun_event(sent.provider_message_id, "opened", "mg-open-1")
    opened["event-data"]["client-info"] = {"user-agent": "Mozilla/5.0"}
    for _ in range(3):
        assert post(client, POSTMARK, delivery).status_code == 200
        assert post(client, MAILGUN, opened).status_code == 200

    [delivered] = events(sent, EventType.DELIVERED)
    assert delivered.properties["esp"] == "Postmark" and delivered.properties["source"] == "esp"
    assert delivered.sequence_id == sent.enrollment.sequence_id and delivered.step_id == sent.step_id
    [opened] = events(sent, EventType.OPENED)
    assert opened.dedupe_key == "esp:mailgun:mg-open-1"
    assert opened.properties["user_agent"] == "Mozilla/5.0"


def test_a_click_keeps_the_url(client, sent):
    click = mailgun_event(sent.provider_message_id, "clicked", "mg-click-1", url="https://acme.test/pricing")

    assert post(client, MAILGUN, click).status_code == 200

    [clicked] = events(sent, EventType.CLICKED)
    assert clicked.properties["click_url"] == "https://acme.test/pricing"


def test_a_hard_bounce_marks_bounced_suppresses_and_exits_the_enrollment(client, workspace, subscriber, sent):
    for _ in range(2):
        assert post(client, POSTMARK, postmark_bounce(sent.provider_message_id)).status_code == 200

    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.BOUNCED
    assert "550 5.1.1" in subscriber.status_reason
    suppression = Suppression.objects.get(workspace=workspace, value="ada@example.org")
    assert suppression.source == "bounce"
    enrollment = Enrollment.objects.get(pk=sent.enrollment_id)
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "subscriber bounced")
    esp_bounces = [e for e in events(sent, EventType.BOUNCED) if e.properties.get("source") == "esp"]
    assert len(esp_bounces) == 1 and esp_bounces[0].properties["hard"] is True
    assert esp_bounces[0].dedupe_key == "esp:postmark:4323372036"


def test_a_complaint_marks_complained_suppresses_and_exits(client, workspace, subscriber, sent):
    complaint = mailgun_event(sent.provider_message_id, "complained", "mg-spam-1")

    assert post(client, MAILGUN, complaint).status_code == 200
    assert post(client, MAILGUN, complaint).status_code == 200

    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.COMPLAINED
    assert Suppression.objects.get(workspace=workspace, value="ada@example.org").source == "complaint"
    assert Enrollment.objects.get(pk=sent.enrollment_id).status == EnrollmentStatus.EXITED
    assert len([e for e in events(sent, EventType.COMPLAINED) if e.properties.get("source") == "esp"]) == 1


def test_an_unsubscribe_at_the_esp_unsubscribes_and_exits(client, subscriber, sent):
    unsubscribe = mailgun_event(sent.provider_message_id, "unsubscribed", "mg-unsub-1")

    for _ in range(3):
        assert post(client, MAILGUN, unsubscribe).status_code == 200

    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
    [event] = Event.objects.filter(subscriber=subscriber, type=EventType.UNSUBSCRIBED)
    assert event.message_id == sent.pk and event.properties["source"] == "esp:mailgun"
    assert Enrollment.objects.get(pk=sent.enrollment_id).status == EnrollmentStatus.EXITED


def test_soft_bounces_suppress_once_they_reach_the_limit_on_different_messages(
    client, workspace, subscriber, template, sent, settings
):
    settings.DELIVERY_SOFT_BOUNCE_LIMIT = 3
    others = [
        message_make(workspace=workspace, subscriber=subscriber, template=template, status="sent",
                     provider_message_id=f"<soft-{n}@mg.acme.test>")
        for n in range(2)
    ]  # fmt: skip
    soft = [
        postmark_bounce(sent.provider_message_id, bounce_id=1, type="SoftBounce"),
        postmark_bounce(sent.provider_message_id, bounce_id=2, type="SoftBounce"),  # the same message again
        postmark_bounce(others[0].provider_message_id, bounce_id=3, type="SoftBounce"),
    ]
    for payload in soft:
        assert post(client, POSTMARK, payload).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.ACTIVE
    assert not Suppression.objects.filter(workspace=workspace).exists()

    deferral = mailgun_event(
        others[1].provider_message_id, "failed", "mg-deferred-1", severity="temporary",
        **{"delivery-status": {"code": 451, "message": "4.2.2 Mailbox full", "description": ""}},
    )  # fmt: skip
    assert post(client, MAILGUN, deferral).status_code == 200

    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.BOUNCED
    assert subscriber.status_reason.startswith("3 soft bounces in 30 days")
    assert Suppression.objects.filter(workspace=workspace, value="ada@example.org").exists()
    soft_events = Event.objects.filter(subscriber=subscriber, type=EventType.BOUNCED, properties__hard=False)
    assert soft_events.count() == 4


def test_an_unknown_message_is_ignored_with_200(client, workspace):
    SubscriberFactory(workspace=workspace, email="ada@example.org")

    assert post(client, POSTMARK, postmark_bounce("no-such-message")).status_code == 200
    assert post(client, MAILGUN, mailgun_event("<nobody@mg.acme.test>", "delivered", "mg-x")).status_code == 200

    assert not Event.objects.filter(type__in=[EventType.BOUNCED, EventType.DELIVERED]).exists()
    assert not Suppression.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [{}, auth("hooks:wrong"), {"HTTP_AUTHORIZATION": "Bearer x"}, {"HTTP_AUTHORIZATION": "Basic !!!"}],
    ids=["none", "wrong-password", "not-basic", "garbage"],
)
def test_bad_basic_auth_is_refused_and_changes_nothing(client, subscriber, sent, headers):
    headers = headers or {"HTTP_X_NOTHING": "1"}

    response = post(client, POSTMARK, postmark_bounce(sent.provider_message_id), **headers)

    assert response.status_code == 400  # anymail: AnymailWebhookValidationFailure (SuspiciousOperation)
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.ACTIVE
    assert not events(sent)


def test_a_mailgun_event_with_a_bad_signature_is_refused(client, subscriber, sent):
    forged = mailgun_event(sent.provider_message_id, "complained", "mg-forged", signing_key="not-the-key")

    assert post(client, MAILGUN, forged).status_code == 400
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.ACTIVE


def test_unreadable_payloads_and_unconfigured_providers_answer_400_not_500(client, settings):
    assert client.post(POSTMARK, "{not json", content_type="application/json", **auth()).status_code == 400
    assert client.post(POSTMARK, "[1, 2]", content_type="application/json", **auth()).status_code == 400
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}  # Mailgun's signing key not configured
    mailgun = client.post(MAILGUN, "{}", content_type="application/json", **auth())
    assert mailgun.status_code == 400


def test_events_that_change_nothing_are_not_recorded(client, sent):
    accepted = mailgun_event(sent.provider_message_id, "accepted", "mg-accepted-1")

    assert post(client, MAILGUN, accepted).status_code == 200
    assert events(sent) == []


def test_bounce_details_decide_hard_or_soft():
    from anymail.webhooks.mailgun import MailgunTrackingWebhookView
    from anymail.webhooks.postmark import PostmarkTrackingWebhookView

    postmark = PostmarkTrackingWebhookView()
    mailgun = MailgunTrackingWebhookView(webhook_signing_key=MAILGUN_SIGNING_KEY)
    kinds = {
        "pm-hard": postmark.esp_to_anymail_event(postmark_bounce("m", type="HardBounce")),
        "pm-soft": postmark.esp_to_anymail_event(postmark_bounce("m", type="SoftBounce")),
        "pm-transient": postmark.esp_to_anymail_event(postmark_bounce("m", type="Transient")),
        "mg-permanent": mailgun.esp_to_anymail_event(mailgun_event("m", "failed", "1", severity="permanent")),
        "mg-temporary": mailgun.esp_to_anymail_event(mailgun_event("m", "failed", "2", severity="temporary")),
        "mg-rejected": mailgun.esp_to_anymail_event(mailgun_event("m", "rejected", "3", reason="suppress-bounce")),
    }

    assert {name: event_kind(event) for name, event in kinds.items()} == {
        "pm-hard": "hard_bounce", "pm-soft": "soft_bounce", "pm-transient": "soft_bounce",
        "mg-permanent": "hard_bounce", "mg-temporary": "soft_bounce", "mg-rejected": "hard_bounce",
    }  # fmt: skip


@pytest.mark.slow
def test_production_with_an_esp_refuses_to_start_without_the_webhook_secret():
    result = _manage("check", env=_production_env(ESP="postmark", ANYMAIL_WEBHOOK_SECRET=None))
    assert result.returncode != 0
    assert "ANYMAIL_WEBHOOK_SECRET must be set" in result.stderr

    configured = _manage("check", env=_production_env(ESP="postmark", ANYMAIL_WEBHOOK_SECRET=SECRET))
    assert configured.returncode == 0, configured.stderr


def test_bounces_reported_by_the_esp_pause_the_workspace_at_the_guardrail(client, workspace, template, settings):
    settings.DELIVERY_GUARDRAIL_MIN_SENDS = 10
    settings.DELIVERY_GUARDRAIL_BOUNCE_RATE = 0.2
    messages = [
        message_make(
            workspace=workspace,
            subscriber=SubscriberFactory(workspace=workspace),
            template=template,
            status="sent",
            sent_at=timezone.now(),
            provider_message_id=f"pm-{i}",
        )
        for i in range(10)
    ]
    # One bounce in ten sends is under the 20 % limit; the second reaches it.
    assert post(client, POSTMARK, postmark_bounce("pm-0", bounce_id=1, email=messages[0].to_email)).status_code == 200
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is None

    assert post(client, POSTMARK, postmark_bounce("pm-1", bounce_id=2, email=messages[1].to_email)).status_code == 200
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is not None
    assert "bounce rate" in workspace.sending_paused_reason
