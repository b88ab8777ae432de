"""The sender's own fast paths: MIME bytes built directly for Django's SMTP backend (the same message the
backend would build), and a send recorded with its `sent` event in one statement, handed to the event
handlers after the chunk."""

from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest
from django.core.mail import EmailMultiAlternatives

from sequences.delivery.claim import messages_claim
from sequences.delivery.render import smtp_bytes
from sequences.delivery.send import messages_send
from sequences.models import Message, MessageStatus
from subscribers.models import Event, EventType
from subscribers.services import events as events_module
from tests.factories import SubscriberFactory, TemplateFactory
from tests.sequences.test_delivery_support import html_part, message_make, smtp_server, text_part  # noqa: F401

pytestmark = pytest.mark.django_db

UNSUBSCRIBE = "<https://x.test/u/" + "a" * 40 + ">, <mailto:unsubscribe+" + "b" * 40 + "@acme.test?subject=unsubscribe>"


def email_make(
    *, subject="Hello Ada", body="Hi Ada\nSee you", html="<p>Hi Ada</p>", from_email="Acme <news@acme.test>"
):
    message = EmailMultiAlternatives(
        subject=subject, body=body, from_email=from_email, to=["ada@example.org"], reply_to=["help@acme.test"],
        headers={"Message-ID": "<es.1.abc@acme.test>", "List-Unsubscribe": UNSUBSCRIBE,
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )  # fmt: skip
    message.attach_alternative(html, "text/html")
    return message


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=default_policy)


HEADERS = [
    "Subject",
    "From",
    "To",
    "Reply-To",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {
            "subject": ("Héllo Ådá 🎉 " + "long words " * 10).strip(),
            "body": "Grüße\r\nzwei\rdrei\n",
            "html": "<p>é</p>\n",
        },
        {
            "subject": ("A subject that is rather long and goes on " * 4).strip(),
            "html": "<p>" + "x" * 2000 + "é=</p>\n<p>ok</p>",
        },
        {"body": "a line that is too long " * 60},
    ],
)
def test_the_bytes_built_directly_are_the_message_django_would_build(fields):
    message = email_make(**fields)
    ours, django = parsed(smtp_bytes(message)), parsed(message.message().as_bytes(linesep="\r\n"))
    for name in HEADERS:
        # Whitespace aside: the email package re-folds Django's already encoded Subject and decodes it
        # with a leading space; ours decodes to the subject itself.
        assert " ".join(str(ours[name]).split()) == " ".join(str(django[name]).split()), name
    assert ours["Subject"] == message.subject
    assert ours["Date"] and ours.get_content_type() == "multipart/alternative"
    assert [
        (part.get_content_type(), part["Content-Transfer-Encoding"], part.get_content()) for part in ours.iter_parts()
    ] == [
        (part.get_content_type(), part["Content-Transfer-Encoding"], part.get_content()) for part in django.iter_parts()
    ]
    assert all(len(line) <= 998 for line in smtp_bytes(message).split(b"\r\n"))
    assert b"\n" not in smtp_bytes(message).replace(b"\r\n", b"")


def test_what_the_direct_path_does_not_handle_is_left_to_the_backend():
    assert smtp_bytes(email_make(from_email="Müller <news@acme.test>")) is None
    with_attachment = email_make()
    with_attachment.attach("a.txt", "x", "text/plain")
    assert smtp_bytes(with_attachment) is None


def test_non_ascii_names_and_subjects_arrive_intact_over_smtp(smtp, workspace):
    template = TemplateFactory(workspace=workspace, subject="Grüße, {{ subscriber.first_name }} 🎉", html="<p>Hé</p>")
    plain = SubscriberFactory(workspace=workspace, first_name="Zoë")
    message = message_make(workspace=workspace, subscriber=plain, template=template)
    named = message_make(
        workspace=workspace, subscriber=SubscriberFactory(workspace=workspace, first_name="Ada"), template=template,
        from_email="Zoë Müller <zoe@acme.test>",
    )  # fmt: skip
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert messages_send(message_ids=ids, worker="w1").outcomes == {message.pk: "sent", named.pk: "sent"}
    first, second = smtp.to(plain.email)[0], smtp.to(named.to_email)[0]
    assert first["Subject"] == "Grüße, Zoë 🎉" and "Hé" in html_part(first) and "Hé" in text_part(first)
    assert second["From"] == "Zoë Müller <zoe@acme.test>" and second["Subject"] == "Grüße, Ada 🎉"


@pytest.fixture
def handled():
    seen: list[Event] = []

    def handler(events):
        seen.extend(events)

    events_module.event_handler_register(handler)
    yield seen
    events_module._event_handlers.remove(handler)


def test_each_send_is_recorded_with_its_event_and_the_handlers_get_them_after_the_chunk(
    smtp, workspace, template, handled, django_capture_on_commit_callbacks
):
    subscribers = [SubscriberFactory(workspace=workspace) for _ in range(3)]
    messages = [message_make(workspace=workspace, subscriber=s, template=template) for s in subscribers]
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = messages_send(message_ids=ids, worker="w1").outcomes
    assert outcomes == {m.pk: "sent" for m in messages}
    stored = {event.message_id: event for event in Event.objects.filter(type=EventType.SENT)}
    assert set(stored) == {m.pk for m in messages}
    for message in messages:
        message.refresh_from_db()
        event = stored[message.pk]
        assert message.status == MessageStatus.SENT and message.lease_owner == "" and message.lease_expires_at is None
        assert (event.workspace_id, event.subscriber_id, event.name) == (workspace.pk, message.subscriber_id, "sent")
        assert event.occurred_at == message.sent_at
        assert event.properties == {"message_id_header": message.message_id_header, "subject": message.subject}
    assert sorted((e.pk, e.message_id, e.type) for e in handled) == sorted(
        (e.pk, e.message_id, e.type) for e in stored.values()
    )


def test_a_message_taken_over_meanwhile_is_skipped_and_gets_no_event(smtp, workspace, subscriber, template, handled):
    from sequences.delivery import send as send_module

    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    original = send_module._smtp_send

    def steal_then_send(connection, built):
        Message.objects.filter(pk=message.pk).update(lease_owner="w2")
        return original(connection, built)

    send_module._smtp_send = steal_then_send
    try:
        assert messages_send(message_ids=ids, worker="w1").outcomes == {message.pk: "skipped"}
    finally:
        send_module._smtp_send = original
    assert not Event.objects.filter(message_id=message.pk).exists()
    assert Message.objects.get(pk=message.pk).lease_owner == "w2"
