"""Double opt-in: the confirmation email reaches a real SMTP server, the link confirms only on POST and
records consent, and unconfirmed people are not enrolled into sequences."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.test import Client

from sequences.models import Enrollment
from sequences.optin import SendOutcome, confirm_url, optin_confirmation_send
from sequences.services import EnrollOutcome, sequence_enroll
from sequences.tokens import TokenPurpose, confirm_token_make
from subscribers.models import (
    Event,
    EventType,
    ListMembership,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    SuppressionKind,
)
from subscribers.selectors import subscriber_ids_awaiting_confirmation
from subscribers.services import (
    list_membership_add,
    subscriber_confirm,
    subscribers_bulk_upsert,
    suppression_get_or_create,
)
from tests.factories import MailingListFactory, SubscriberFactory
from tests.sequences.test_delivery_support import smtp_server, text_part  # noqa: F401 - smtp_server: the fixture

CONFIRM_LINK = re.compile(r"https?://[^\s\"<>]+/confirm/[^\s\"<>]+")


pytestmark = pytest.mark.usefixtures("eager_celery")  # the confirmation email task runs inline


@pytest.fixture
def sender_identity(workspace):
    workspace.from_name, workspace.from_email, workspace.reply_to = "Acme News", "news@acme.test", "help@acme.test"
    workspace.save()
    return workspace


def confirm_path(mime) -> str:
    links = CONFIRM_LINK.findall(text_part(mime))
    assert len(links) == 1
    return urlsplit(links[0]).path


def api_subscribe(api, django_capture_on_commit_callbacks, email: str, list_ids: list[int]):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/subscribers", {"email": email, "list_ids": list_ids}, format="json")
    assert response.status_code == 201, response.content
    return Subscriber.objects.get(pk=response.json()["id"])


# The confirmation email


def test_subscribing_through_the_api_to_a_double_opt_in_list_sends_the_confirmation_email(
    smtp, api, doi_list, sender_identity, django_capture_on_commit_callbacks
):
    subscriber = api_subscribe(api, django_capture_on_commit_callbacks, "grace@example.org", [doi_list.pk])

    assert ListMembership.objects.get(subscriber=subscriber).status == MembershipStatus.PENDING
    [mime] = smtp.to("grace@example.org")
    assert mime["Subject"] == "Confirm your subscription to Weekly letter"
    assert str(mime["From"]) == "Acme News <news@acme.test>"
    assert str(mime["Reply-To"]) == "help@acme.test"
    assert confirm_path(mime).startswith("/confirm/")
    assert "Weekly letter" in mime.get_body(preferencelist=("html",)).get_content()


def test_no_email_for_a_list_without_double_opt_in(smtp, api, workspace, django_capture_on_commit_callbacks):
    plain = MailingListFactory(workspace=workspace, double_opt_in=False)
    subscriber = api_subscribe(api, django_capture_on_commit_callbacks, "grace@example.org", [plain.pk])

    assert ListMembership.objects.get(subscriber=subscriber).status == MembershipStatus.SUBSCRIBED
    assert smtp.envelopes == []


def test_joining_lists_and_adding_list_members_through_the_api_send_it_too(
    smtp, api, workspace, doi_list, django_capture_on_commit_callbacks
):
    joiner = SubscriberFactory(workspace=workspace, email="join@example.org")
    member = SubscriberFactory(workspace=workspace, email="member@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/subscribers/{joiner.pk}/lists", {"list_ids": [doi_list.pk]}).status_code == 200
        response = api.post(f"/api/v1/lists/{doi_list.pk}/members", {"emails": ["member@example.org"]})
        assert response.status_code == 200, response.content

    assert len(smtp.to("join@example.org")) == 1
    assert len(smtp.to("member@example.org")) == 1
    assert ListMembership.objects.get(subscriber=member).status == MembershipStatus.PENDING


def test_the_bulk_endpoint_sends_it_but_an_import_never_mails_anyone(
    smtp, api, workspace, doi_list, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/subscribers/bulk", {"subscribers": [{"email": "bulk@example.org"}], "list_id": doi_list.pk}
        )
        assert response.status_code == 200, response.content
        subscribers_bulk_upsert(
            workspace=workspace, items=[{"email": "imported@example.org"}], mailing_list=doi_list,
            consent_source="import",
        )  # fmt: skip

    assert len(smtp.to("bulk@example.org")) == 1
    assert smtp.to("imported@example.org") == []
    imported = Subscriber.objects.get(email="imported@example.org")
    assert ListMembership.objects.get(subscriber=imported).status == MembershipStatus.PENDING


def test_at_most_one_confirmation_email_per_subscriber_and_list_in_the_resend_window(
    smtp, workspace, doi_list, settings
):
    subscriber = SubscriberFactory(workspace=workspace, email="grace@example.org")
    list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=doi_list)

    first = optin_confirmation_send(subscriber_id=subscriber.pk, list_id=doi_list.pk)
    second = optin_confirmation_send(subscriber_id=subscriber.pk, list_id=doi_list.pk)

    assert (first, second) == (SendOutcome.SENT, SendOutcome.THROTTLED)
    assert len(smtp.envelopes) == 1


@pytest.mark.parametrize("change", ["confirmed", "unsubscribed", "suppressed", "left the list"])
def test_no_confirmation_email_once_there_is_nothing_to_confirm(smtp, workspace, doi_list, change):
    subscriber = SubscriberFactory(workspace=workspace, email="grace@example.org")
    list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=doi_list)
    if change == "confirmed":
        subscriber_confirm(workspace=workspace, subscriber=subscriber)
    elif change == "unsubscribed":
        Subscriber.objects.filter(pk=subscriber.pk).update(status=SubscriberStatus.UNSUBSCRIBED)
    elif change == "suppressed":
        suppression_get_or_create(workspace=workspace, kind=SuppressionKind.EMAIL, value="grace@example.org")
    else:
        ListMembership.objects.filter(subscriber=subscriber).update(status=MembershipStatus.UNSUBSCRIBED)

    assert optin_confirmation_send(subscriber_id=subscriber.pk, list_id=doi_list.pk) == SendOutcome.SKIPPED
    assert smtp.envelopes == []


def test_a_temporary_failure_is_retried_and_the_email_sent_once(
    smtp, api, doi_list, django_capture_on_commit_callbacks
):
    smtp.rcpt_replies["grace@example.org"] = ["451 4.7.1 Greylisted, try again later"]

    api_subscribe(api, django_capture_on_commit_callbacks, "grace@example.org", [doi_list.pk])

    assert smtp.rcpt_replies["grace@example.org"] == []  # the first attempt was refused
    assert len(smtp.to("grace@example.org")) == 1


def test_a_refused_recipient_is_marked_bounced_and_suppressed(smtp, workspace, doi_list):
    subscriber = SubscriberFactory(workspace=workspace, email="nobody@example.org")
    list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=doi_list)
    smtp.rcpt_replies["nobody@example.org"] = ["550 5.1.1 No such user"]

    assert optin_confirmation_send(subscriber_id=subscriber.pk, list_id=doi_list.pk) == SendOutcome.FAILED
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.BOUNCED
    assert workspace.suppressions.filter(value="nobody@example.org").exists()


# The confirmation link


@pytest.fixture
def pending(workspace, doi_list):
    subscriber = SubscriberFactory(workspace=workspace, email="grace@example.org")
    list_membership_add(workspace=workspace, subscriber=subscriber, mailing_list=doi_list)
    return subscriber


def test_getting_the_link_shows_a_button_and_confirms_nothing(client, pending, doi_list):
    path = urlsplit(confirm_url(subscriber_id=pending.pk, list_id=doi_list.pk)).path

    for _ in range(2):
        response = client.get(path)
        assert response.status_code == 200
    assert client.head(path).status_code == 200

    page = response.content.decode()
    assert 'method="post"' in page and "Weekly letter" in page and "grace@example.org" in page
    pending.refresh_from_db()
    assert pending.confirmed_at is None
    assert ListMembership.objects.get(subscriber=pending).status == MembershipStatus.PENDING
    assert not Event.objects.filter(type=EventType.CONFIRMED).exists()


def test_posting_confirms_and_records_the_ip_and_time_as_consent(
    smtp, api, doi_list, django_capture_on_commit_callbacks
):
    subscriber = api_subscribe(api, django_capture_on_commit_callbacks, "grace@example.org", [doi_list.pk])
    path = confirm_path(smtp.to("grace@example.org")[0])

    browser = Client(enforce_csrf_checks=True)
    page = browser.get(path).content.decode()  # the page's own form carries the CSRF token
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post(path, {"csrfmiddlewaretoken": token}, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    assert "is confirmed" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.confirmed_at is not None
    assert (subscriber.consent_ip, subscriber.consent_at) == ("203.0.113.9", subscriber.confirmed_at)
    assert ListMembership.objects.get(subscriber=subscriber).status == MembershipStatus.SUBSCRIBED
    [event] = Event.objects.filter(subscriber=subscriber, type=EventType.CONFIRMED)
    assert event.properties["ip"] == "203.0.113.9"
    assert event.properties["source"] == "link"
    assert event.properties["list_id"] == doi_list.pk
    assert event.properties["confirmed_at"] == subscriber.confirmed_at.isoformat()


def test_confirming_twice_records_one_confirmation(client, pending, doi_list):
    path = urlsplit(confirm_url(subscriber_id=pending.pk, list_id=doi_list.pk)).path
    assert client.post(path, REMOTE_ADDR="203.0.113.9").status_code == 200
    pending.refresh_from_db()
    first = (pending.consent_ip, pending.consent_at, pending.confirmed_at)
    assert client.post(path, REMOTE_ADDR="192.0.2.44").status_code == 200

    assert Event.objects.filter(subscriber=pending, type=EventType.CONFIRMED).count() == 1
    pending.refresh_from_db()
    assert (pending.consent_ip, pending.consent_at, pending.confirmed_at) == first


def test_the_confirm_post_needs_the_pages_csrf_token(pending, doi_list):
    path = urlsplit(confirm_url(subscriber_id=pending.pk, list_id=doi_list.pk)).path
    assert Client(enforce_csrf_checks=True).post(path).status_code == 403
    pending.refresh_from_db()
    assert pending.confirmed_at is None


def _expired_token(subscriber_id: int, list_id: int, *, days: int) -> str:
    class Earlier(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - days * 86400)

    fresh = confirm_token_make(subscriber_id=subscriber_id, list_id=list_id)
    payload = fresh.split(":")[0]
    return Earlier(salt=f"email-sequence.tracking.{TokenPurpose.CONFIRM.value}").sign(payload)


def test_a_forged_or_expired_link_answers_404(client, pending, doi_list, settings):
    settings.OPTIN_CONFIRM_MAX_AGE_DAYS = 7
    good = confirm_token_make(subscriber_id=pending.pk, list_id=doi_list.pk)
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    other_subscriber = good.replace(good.split(":")[0], "zz", 1)
    expired = _expired_token(pending.pk, doi_list.pk, days=8)
    still_valid = _expired_token(pending.pk, doi_list.pk, days=6)

    for token in (forged, other_subscriber, expired, "garbage", "1:2:3"):
        assert client.get(f"/confirm/{token}").status_code == 404
        assert client.post(f"/confirm/{token}").status_code == 404
    assert client.get(f"/confirm/{still_valid}").status_code == 200
    pending.refresh_from_db()
    assert pending.confirmed_at is None


def test_an_unsubscribed_person_is_not_confirmed_by_an_old_link(client, pending, doi_list):
    Subscriber.objects.filter(pk=pending.pk).update(status=SubscriberStatus.UNSUBSCRIBED)
    path = urlsplit(confirm_url(subscriber_id=pending.pk, list_id=doi_list.pk)).path

    response = client.post(path)

    assert response.status_code == 200 and "receives no email" in response.content.decode()
    assert ListMembership.objects.get(subscriber=pending).status == MembershipStatus.PENDING


# Unconfirmed people get no marketing email


def test_the_awaiting_selector_in_one_query(workspace, doi_list, django_assert_num_queries):
    plain = MailingListFactory(workspace=workspace, double_opt_in=False)
    awaiting = SubscriberFactory(workspace=workspace)
    list_membership_add(workspace=workspace, subscriber=awaiting, mailing_list=doi_list)
    also_on_a_plain_list = SubscriberFactory(workspace=workspace)
    list_membership_add(workspace=workspace, subscriber=also_on_a_plain_list, mailing_list=doi_list)
    list_membership_add(workspace=workspace, subscriber=also_on_a_plain_list, mailing_list=plain)
    confirmed = SubscriberFactory(workspace=workspace)
    list_membership_add(workspace=workspace, subscriber=confirmed, mailing_list=doi_list)
    subscriber_confirm(workspace=workspace, subscriber=confirmed)
    on_no_list = SubscriberFactory(workspace=workspace)
    ids = [awaiting.pk, also_on_a_plain_list.pk, confirmed.pk, on_no_list.pk]

    with django_assert_num_queries(1):
        result = subscriber_ids_awaiting_confirmation(subscriber_ids=ids)

    assert result == {awaiting.pk}
    with django_assert_num_queries(0):
        assert subscriber_ids_awaiting_confirmation(subscriber_ids=[]) == set()


def test_a_subscriber_awaiting_confirmation_is_not_enrolled_until_they_confirm(
    api, workspace, active_sequence, pending
):
    other = SubscriberFactory(workspace=workspace)

    response = api.post(
        f"/api/v1/email-sequences/{active_sequence.pk}/enroll", {"subscriber_ids": [pending.pk, other.pk]}
    )

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(row["subscriber_id"], row["status"]) for row in rows] == [
        (pending.pk, EnrollOutcome.AWAITING_CONFIRMATION),
        (other.pk, EnrollOutcome.ENROLLED),
    ]
    assert response.json()["counts"] == {"awaiting_confirmation": 1, "enrolled": 1}
    assert not Enrollment.objects.filter(subscriber=pending).exists()

    subscriber_confirm(workspace=workspace, subscriber=pending)
    [result] = sequence_enroll(workspace=workspace, sequence=active_sequence, subscriber_ids=[pending.pk])
    assert result.status == EnrollOutcome.ENROLLED
