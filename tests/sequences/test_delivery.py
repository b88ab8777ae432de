"""The sender against a real SMTP server on loopback: content, headers, outcomes, retries, leases."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from sequences.delivery import render as render_module
from sequences.delivery.claim import message_retry, messages_claim
from sequences.delivery.outcomes import retry_delay
from sequences.delivery.render import message_id_header
from sequences.delivery.send import messages_send
from sequences.delivery.tasks import messages_dispatch, messages_send_batch
from sequences.models import Message, MessageStatus, OutboxEmail
from sequences.tokens import TokenPurpose, token_read
from subscribers.models import Event, EventType, ListMembership, MembershipStatus, SubscriberStatus, Suppression
from subscribers.services import subscriber_unsubscribe
from tests.factories import MailingListFactory, SubscriberFactory, SuppressionFactory, TemplateFactory
from tests.sequences.test_delivery_support import html_part, message_make, smtp_server, text_part  # noqa: F401

pytestmark = pytest.mark.django_db

RICH_HTML = """<html><head><style>p.lead { color: #ff0000; }</style></head><body>
<p class="lead">Hi {{ subscriber.first_name }} from {{ workspace.name }}</p>
<a href="https://example.com/docs?a=1&amp;b=2">Docs</a>
<a href="http://example.com/pricing">Pricing</a>
<a href="mailto:help@acme.test">Mail us</a>
<a href="tel:+123">Call</a>
<a href="#top">Top</a>
</body></html>"""


@pytest.fixture
def rich_template(workspace):
    return TemplateFactory(
        workspace=workspace, subject="Welcome {{ subscriber.first_name }}", preheader="Your first steps",
        html=RICH_HTML,
    )  # fmt: skip


def send_all(worker: str = "w1", **claim) -> dict:
    ids = messages_claim(worker=worker, limit=100, lease_seconds=300, **claim)
    return messages_send(message_ids=ids, worker=worker).outcomes


def test_a_sent_message_carries_the_headers_parts_and_content(smtp, workspace, subscriber, rich_template):
    workspace.reply_to = "support@acme.test"
    workspace.save()
    message = message_make(workspace=workspace, subscriber=subscriber, template=rich_template)

    assert send_all() == {message.pk: "sent"}

    [mime] = smtp.messages
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.sent_at is not None and message.lease_owner == ""
    # Headers: deterministic Message-ID (stored), Date, Reply-To, and the RFC 8058 pair.
    assert (
        mime["Message-ID"]
        == message.message_id_header
        == message_id_header(message_id=message.pk, from_email="news@acme.test")
    )
    assert re.fullmatch(rf"<es\.{message.pk}\.[0-9a-f]{{12}}@acme\.test>", mime["Message-ID"])
    assert mime["Date"]
    assert mime["Reply-To"] == "support@acme.test"
    assert mime["From"] == "Acme <news@acme.test>"
    assert mime["Subject"] == "Welcome Ada"
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_part, mailto_part = [part.strip() for part in mime["List-Unsubscribe"].split(",")]
    unsubscribe_url = https_part.strip("<>")
    assert unsubscribe_url.startswith("http") and "/u/" in unsubscribe_url
    claims = token_read(purpose=TokenPurpose.UNSUBSCRIBE, token=unsubscribe_url.rsplit("/", 1)[1])
    assert claims.message_id == message.pk
    assert re.fullmatch(r"<mailto:unsubscribe\+[0-9A-Za-z]+\.[\w-]+@acme\.test\?subject=unsubscribe>", mailto_part)
    # multipart/alternative with a text and an HTML part.
    assert mime.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mime.iter_parts()] == ["text/plain", "text/html"]
    html, text = html_part(mime), text_part(mime)
    # Merge tags rendered, CSS inlined (and the style block gone).
    assert "Hi Ada from Acme" in html and "Hi Ada from Acme" in text
    assert re.search(r'<p class="lead" style="color:\s*#ff0000;?"', html), html
    assert "<style" not in html
    # Preheader: the hidden first element of the body.
    body = html.split("<body", 1)[1].split(">", 1)[1].lstrip()
    assert body.startswith('<div class="es-preheader"') and "Your first steps" in body.split("</div>", 1)[0]
    assert "display:none" in body.split(">", 1)[0]
    # Footer with the postal address and the unsubscribe link (in both parts).
    assert "1 Main Street, Springfield" in html and unsubscribe_url in html
    assert "1 Main Street, Springfield" in text and unsubscribe_url in text


def test_links_are_rewritten_for_click_tracking_and_kept_by_index(smtp, workspace, subscriber, rich_template):
    message = message_make(workspace=workspace, subscriber=subscriber, template=rich_template)
    send_all()

    html = html_part(smtp.messages[0])
    message.refresh_from_db()
    assert message.links == ["https://example.com/docs?a=1&b=2", "http://example.com/pricing"]
    hrefs = re.findall(r'href="([^"]+)"', html)
    click_urls = [href for href in hrefs if "/t/c/" in href]
    assert len(click_urls) == 2
    for index, url in enumerate(click_urls):
        claims = token_read(purpose=TokenPurpose.CLICK, token=urlparse(url).path.rsplit("/", 1)[1])
        assert (claims.message_id, claims.link_index) == (message.pk, index)
    assert "mailto:help@acme.test" in hrefs and "tel:+123" in hrefs and "#top" in hrefs
    assert "https://example.com/docs" not in html
    # The footer's unsubscribe link is not turned into a click.
    assert any("/u/" in href for href in hrefs)


@pytest.mark.parametrize("track_opens", [True, False])
def test_the_open_pixel_follows_the_workspace_setting(smtp, workspace, subscriber, template, track_opens):
    workspace.track_opens = track_opens
    workspace.save()
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    send_all()

    html = html_part(smtp.messages[0])
    pixels = re.findall(r'<img src="([^"]+/t/o/[^"]+)" width="1" height="1"', html)
    if track_opens:
        [pixel] = pixels
        assert token_read(purpose=TokenPurpose.OPEN, token=pixel.rsplit("/", 1)[1]).message_id == message.pk
    else:
        assert pixels == [] and "/t/o/" not in html


def test_each_template_is_compiled_once_per_batch(smtp, workspace, template, monkeypatch):
    compiled = []
    original = render_module.compile_template
    monkeypatch.setattr(render_module, "compile_template", lambda **kw: compiled.append(1) or original(**kw))
    for i in range(5):
        message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace, first_name=f"N{i}"),
                     template=template)  # fmt: skip
    outcomes = send_all()
    assert list(outcomes.values()) == ["sent"] * 5
    assert len(compiled) == 1
    assert sorted(m["Subject"] for m in smtp.messages) == [f"Hello N{i}" for i in range(5)]
    assert smtp.connections == 1  # one connection for the whole batch


def test_a_suppressed_address_is_never_sent_to(smtp, workspace, subscriber, template):
    SuppressionFactory(workspace=workspace, value=subscriber.email)
    domain_subscriber = SubscriberFactory(workspace=workspace, email="x@blocked.test")
    SuppressionFactory(workspace=workspace, kind="domain", value="blocked.test")
    unsubscribed = SubscriberFactory(workspace=workspace, status=SubscriberStatus.UNSUBSCRIBED)
    messages = [
        message_make(workspace=workspace, subscriber=s, template=template)
        for s in (subscriber, domain_subscriber, unsubscribed)
    ]
    assert send_all() == {m.pk: "suppressed" for m in messages}
    assert smtp.envelopes == []
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SUPPRESSED}


def test_someone_awaiting_double_opt_in_confirmation_gets_nothing_until_they_confirm(
    smtp, workspace, subscriber, template
):
    double_opt_in = MailingListFactory(workspace=workspace, double_opt_in=True)
    plain = MailingListFactory(workspace=workspace)
    awaiting = SubscriberFactory(workspace=workspace)
    ListMembership.objects.create(mailing_list=double_opt_in, subscriber=awaiting, status=MembershipStatus.PENDING)
    # Pending on one list but subscribed to another: they asked for email, so they get it.
    both = SubscriberFactory(workspace=workspace)
    ListMembership.objects.create(mailing_list=double_opt_in, subscriber=both, status=MembershipStatus.PENDING)
    ListMembership.objects.create(mailing_list=plain, subscriber=both, status=MembershipStatus.SUBSCRIBED)
    blocked = message_make(workspace=workspace, subscriber=awaiting, template=template)
    sent = message_make(workspace=workspace, subscriber=both, template=template)

    assert send_all() == {blocked.pk: "suppressed", sent.pk: "sent"}
    assert [str(m["To"]) for m in smtp.messages] == [both.email]
    blocked.refresh_from_db()
    assert blocked.last_error == "subscriber awaiting double opt-in confirmation"


def test_an_unsubscribe_between_claim_and_send_wins(smtp, workspace, subscriber, template):
    other = SubscriberFactory(workspace=workspace)
    first = message_make(workspace=workspace, subscriber=subscriber, template=template)
    second = message_make(workspace=workspace, subscriber=other, template=template)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert ids == [first.pk, second.pk]

    subscriber_unsubscribe(workspace=workspace, subscriber=subscriber, reason="clicked the link")
    outcomes = messages_send(message_ids=ids, worker="w1").outcomes

    assert outcomes == {first.pk: "suppressed", second.pk: "sent"}
    assert [str(m["To"]) for m in smtp.messages] == [other.email]


def test_a_451_is_retried_with_the_same_message_id_and_delivered_once(smtp, workspace, subscriber, template):
    smtp.data_replies[subscriber.email] = ["451 4.7.1 Greylisted, try again later"]
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)

    before = timezone.now()
    assert send_all() == {message.pk: "deferred"}
    message.refresh_from_db()
    assert message.status == MessageStatus.DEFERRED and message.attempts == 1
    assert "451" in message.last_error
    # Backoff: between half and all of the base delay (60 s) for the first retry.
    assert before + timedelta(seconds=29) <= message.send_after <= timezone.now() + timedelta(seconds=61)
    first_message_id = message.message_id_header
    assert smtp.envelopes == []

    assert send_all() == {}  # not due yet
    assert send_all(now=message.send_after) == {message.pk: "sent"}
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.attempts == 2
    [mime] = smtp.messages
    assert mime["Message-ID"] == first_message_id
    assert Event.objects.filter(type=EventType.SENT, message_id=message.pk).count() == 1


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 60
    settings.DELIVERY_RETRY_MAX_SECONDS = 3600
    for attempts, ceiling in [(1, 60), (2, 120), (3, 240), (7, 3600), (20, 3600)]:
        delays = [retry_delay(attempts=attempts).total_seconds() for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter


def test_a_temporary_failure_after_the_last_attempt_fails_the_message(smtp, workspace, subscriber, template, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    smtp.rcpt_replies[subscriber.email] = ["450 4.2.1 Mailbox busy"] * 5
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    assert send_all() == {message.pk: "deferred"}
    message.refresh_from_db()
    assert send_all(now=message.send_after) == {message.pk: "failed"}
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and "gave up after 2 attempts" in message.last_error
    assert not Suppression.objects.filter(workspace=workspace).exists()  # a soft failure suppresses nobody


def test_a_550_fails_the_message_records_a_bounce_and_suppresses(smtp, workspace, subscriber, template):
    smtp.rcpt_replies[subscriber.email] = ["550 5.1.1 No such user"]
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)

    assert send_all() == {message.pk: "bounced"}

    message.refresh_from_db()
    subscriber.refresh_from_db()
    assert message.status == MessageStatus.FAILED and "550" in message.last_error
    assert subscriber.status == SubscriberStatus.BOUNCED
    suppression = Suppression.objects.get(workspace=workspace, value=subscriber.email)
    assert suppression.source == "bounce"
    bounce = Event.objects.get(type=EventType.BOUNCED, message_id=message.pk)
    assert bounce.properties["hard"] is True and bounce.properties["smtp_code"] == 550
    assert smtp.envelopes == []
    # Never again: a second message to the same address is suppressed.
    again = message_make(workspace=workspace, subscriber=subscriber, template=TemplateFactory(workspace=workspace))
    assert send_all() == {again.pk: "suppressed"}


def test_one_bad_recipient_does_not_stop_the_rest_of_the_batch(smtp, workspace, template):
    people = [SubscriberFactory(workspace=workspace) for _ in range(3)]
    smtp.rcpt_replies[people[1].email] = ["550 5.1.1 No such user"]
    messages = [message_make(workspace=workspace, subscriber=p, template=template) for p in people]
    outcomes = send_all()
    assert [outcomes[m.pk] for m in messages] == ["sent", "bounced", "sent"]
    assert smtp.connections == 1


def test_claim_takes_due_queued_and_deferred_messages_and_nothing_final(workspace, subscriber, template):
    now = timezone.now()
    others = [SubscriberFactory(workspace=workspace) for _ in range(6)]
    due = message_make(workspace=workspace, subscriber=subscriber, template=template, send_after=now)
    deferred = message_make(workspace=workspace, subscriber=others[0], template=template,
                            status=MessageStatus.DEFERRED, send_after=now - timedelta(seconds=1))  # fmt: skip
    message_make(workspace=workspace, subscriber=others[1], template=template, send_after=now + timedelta(minutes=5))
    for status, person in zip(
        [MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SUPPRESSED], others[2:5], strict=True
    ):
        message_make(workspace=workspace, subscriber=person, template=template, status=status, send_after=now)
    held = message_make(workspace=workspace, subscriber=others[5], template=template, status=MessageStatus.SENDING,
                        lease_owner="alive", lease_expires_at=now + timedelta(minutes=1))  # fmt: skip

    ids = messages_claim(worker="w1", limit=10, lease_seconds=120, now=now)

    assert sorted(ids) == sorted([due.pk, deferred.pk])
    claimed = Message.objects.get(pk=due.pk)
    assert (claimed.status, claimed.lease_owner, claimed.attempts) == (MessageStatus.SENDING, "w1", 1)
    assert claimed.lease_expires_at == now + timedelta(seconds=120)
    assert messages_claim(worker="w2", limit=10, lease_seconds=120, now=now) == []
    assert Message.objects.get(pk=held.pk).lease_owner == "alive"


def test_an_expired_lease_is_reclaimed_by_another_worker_and_sent_once(smtp, workspace, subscriber, template):
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    now = timezone.now()
    assert messages_claim(worker="dead", limit=10, lease_seconds=60, now=now) == [message.pk]
    # The first worker dies; before its lease runs out nobody else may take the message.
    assert messages_claim(worker="alive", limit=10, lease_seconds=60, now=now + timedelta(seconds=59)) == []
    later = timezone.now() + timedelta(seconds=61)
    assert messages_claim(worker="alive", limit=10, lease_seconds=300, now=later) == [message.pk]

    # The dead worker's late send (if it ever woke up) finds the message no longer its own.
    assert messages_send(message_ids=[message.pk], worker="dead").outcomes == {}
    assert messages_send(message_ids=[message.pk], worker="alive").outcomes == {message.pk: "sent"}
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.SENT, 2)
    assert len(smtp.envelopes) == 1


def test_a_message_enqueued_twice_is_sent_once(smtp, workspace, subscriber, template):
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    assert messages_send_batch([message.pk]) == {"sent": 1}
    assert messages_send_batch([message.pk]) == {}
    assert messages_dispatch() == 0
    assert len(smtp.envelopes) == 1
    assert Event.objects.filter(type=EventType.SENT, message_id=message.pk).count() == 1


def test_the_dispatch_tick_claims_due_messages_and_sends_them(smtp, workspace, template, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery_app import app

    app.conf.task_always_eager = True
    try:
        people = [SubscriberFactory(workspace=workspace) for _ in range(5)]
        for person in people:
            message_make(workspace=workspace, subscriber=person, template=template)
        settings.DELIVERY_BATCH_SIZE = 2
        assert messages_dispatch() == 5
    finally:
        app.conf.task_always_eager = False
    assert len(smtp.envelopes) == 5
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


def test_retry_now_requeues_deferred_and_failed_messages_but_never_sent_ones(workspace, subscriber, template):
    failed = message_make(workspace=workspace, subscriber=subscriber, template=template, status=MessageStatus.FAILED,
                          attempts=8, send_after=timezone.now() + timedelta(hours=1))  # fmt: skip
    sent = message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template,
                        status=MessageStatus.SENT)  # fmt: skip
    assert message_retry(message=failed) is True
    assert message_retry(message=sent) is False
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (MessageStatus.QUEUED, 0)
    assert failed.send_after <= timezone.now()
    assert Message.objects.get(pk=sent.pk).status == MessageStatus.SENT


def test_the_local_outbox_receives_the_same_email(workspace, subscriber, template, settings):
    settings.EMAIL_BACKEND = "sequences.outbox.OutboxEmailBackend"
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    assert send_all() == {message.pk: "sent"}
    stored = OutboxEmail.objects.get()
    message.refresh_from_db()
    assert stored.message_id == message.message_id_header
    assert stored.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert stored.subject == "Hello Ada" and "/u/" in stored.html


def test_a_template_that_fails_to_render_fails_only_its_message(smtp, workspace, subscriber, template):
    broken = TemplateFactory(workspace=workspace, html="{% if %}")
    bad = message_make(workspace=workspace, subscriber=subscriber, template=broken)
    good = message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template)
    outcomes = send_all()
    assert outcomes == {bad.pk: "failed", good.pk: "sent"}
    assert "render" in Message.objects.get(pk=bad.pk).last_error


def test_the_admin_lists_messages_and_retries_deferred_ones(admin_client, workspace, subscriber, template):
    deferred = message_make(workspace=workspace, subscriber=subscriber, template=template,
                            status=MessageStatus.DEFERRED, attempts=3, last_error="451 greylisted",
                            send_after=timezone.now() + timedelta(hours=1))  # fmt: skip
    sent = message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template,
                        status=MessageStatus.SENT, subject="Already out")  # fmt: skip

    listing = admin_client.get("/admin/sequences/message/", {"status__exact": "deferred"})
    assert listing.status_code == 200
    assert subscriber.email in listing.content.decode() and "Already out" not in listing.content.decode()
    assert admin_client.get(f"/admin/sequences/message/{deferred.pk}/change/").status_code == 200
    assert admin_client.get("/admin/sequences/message/", {"q": subscriber.email}).status_code == 200

    response = admin_client.post(
        "/admin/sequences/message/",
        {"action": "retry_now", "_selected_action": [deferred.pk, sent.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 message(s) queued again; 1 skipped" in response.content.decode()
    deferred.refresh_from_db()
    assert (deferred.status, deferred.attempts) == (MessageStatus.QUEUED, 0)
    assert Message.objects.get(pk=sent.pk).status == MessageStatus.SENT


def test_a_dropped_connection_is_opened_again_once_for_the_rest_of_the_batch(smtp, workspace, template):
    people = [SubscriberFactory(workspace=workspace) for _ in range(3)]
    smtp.data_replies[people[1].email] = ["421 4.3.2 Service shutting down"]
    messages = [message_make(workspace=workspace, subscriber=p, template=template) for p in people]

    outcomes = send_all()

    assert [outcomes[m.pk] for m in messages] == ["sent", "deferred", "sent"]
    assert smtp.connections == 2
    assert sorted(str(m["To"]) for m in smtp.messages) == sorted([people[0].email, people[2].email])


def test_a_connection_dropped_twice_leaves_the_rest_for_later_without_using_their_attempts(smtp, workspace, template):
    people = [SubscriberFactory(workspace=workspace) for _ in range(4)]
    smtp.rcpt_replies[people[1].email] = ["421 4.3.2 Too busy"]
    smtp.data_replies[people[2].email] = ["421 4.3.2 Too busy"]
    messages = [message_make(workspace=workspace, subscriber=p, template=template) for p in people]

    outcomes = send_all()

    assert [outcomes[m.pk] for m in messages] == ["sent", "deferred", "deferred", "deferred"]
    untouched = Message.objects.get(pk=messages[3].pk)
    assert (untouched.attempts, untouched.deferred_reason) == (0, "connection")
    assert Message.objects.get(pk=messages[1].pk).attempts == 1
    assert len(smtp.envelopes) == 1


def test_an_unreachable_server_defers_the_whole_batch(settings, workspace, template):
    from tests.sequences.test_delivery_support import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    messages = [
        message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template)
        for _ in range(3)
    ]
    assert send_all() == {m.pk: "deferred" for m in messages}
    assert all("connect" in m.last_error for m in Message.objects.all())


def test_the_from_header_keeps_the_name_for_the_stored_address_and_honours_another(smtp, workspace, template):
    same = message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template,
                        from_email="news@acme.test")  # fmt: skip
    other = message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template,
                         from_email="Ops <ops@acme.test>")  # fmt: skip
    send_all()
    by_to = {str(m["To"]): m for m in smtp.messages}
    assert by_to[same.to_email]["From"] == "Acme <news@acme.test>"
    assert by_to[other.to_email]["From"] == "Ops <ops@acme.test>"


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_message(workspace, template):
    import threading

    from django.db import connection

    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("needs concurrent transactions with SKIP LOCKED (PostgreSQL)")
    people = [SubscriberFactory(workspace=workspace) for _ in range(60)]
    for person in people:
        message_make(workspace=workspace, subscriber=person, template=template)
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            ids = []
            while batch := messages_claim(worker=name, limit=7, lease_seconds=300):
                ids += batch
            claimed[name] = ids
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [pk for ids in claimed.values() for pk in ids]
    assert len(every) == len(set(every)) == 60
    assert set(Message.objects.values_list("attempts", flat=True)) == {1}


def test_an_anymail_backend_stores_the_provider_message_id(workspace, subscriber, template, settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.ANYMAIL = {}
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    assert send_all() == {message.pk: "sent"}
    message.refresh_from_db()
    assert message.provider_message_id
    [sent] = mail.outbox
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.extra_headers["Message-ID"] == message.message_id_header
