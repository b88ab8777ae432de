"""The public subscribe form /subscribe/<list token>: HTML and JSON, honeypot, validation, forged tokens,
rate limit, and the same answer whether or not an address was known."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from subscribers.links import mailing_list_subscribe_token, mailing_list_subscribe_url
from subscribers.models import ListMembership, MembershipStatus, Subscriber, SubscriberStatus
from subscribers.services import list_membership_add, subscriber_confirm
from tests.factories import MailingListFactory, SubscriberFactory
from tests.sequences.test_delivery_support import smtp_server  # noqa: F401 - the `smtp` fixture

JSON = {"HTTP_ACCEPT": "application/json"}


pytestmark = pytest.mark.usefixtures("eager_celery")  # the confirmation email task runs inline


@pytest.fixture
def form_path(doi_list) -> str:
    return urlsplit(mailing_list_subscribe_url(list_id=doi_list.pk)).path


def post(client, path, data, django_capture_on_commit_callbacks, **extra):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(path, data, REMOTE_ADDR="198.51.100.7", **extra)


def test_the_list_api_and_admin_show_the_subscribe_url(api, admin_client, doi_list, client):
    response = api.get(f"/api/v1/lists/{doi_list.pk}")

    url = response.json()["subscribe_url"]
    assert url == mailing_list_subscribe_url(list_id=doi_list.pk)
    assert urlsplit(url).path.startswith("/subscribe/")
    assert client.get(urlsplit(url).path).status_code == 200
    assert url in admin_client.get(f"/admin/subscribers/mailinglist/{doi_list.pk}/change/").content.decode()


def test_get_shows_a_minimal_form_with_a_hidden_honeypot(client, form_path):
    response = client.get(form_path)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="email"' in page and 'name="first_name"' in page and 'name="last_name"' in page
    assert 'class="hp"' in page and 'name="website"' in page
    assert "Weekly letter" in page and "Acme" in page


def test_an_html_post_subscribes_pending_and_sends_the_confirmation(
    smtp, client, form_path, doi_list, django_capture_on_commit_callbacks
):
    response = post(
        client, form_path, {"email": "Grace@Example.org", "first_name": "Grace", "last_name": "Hopper"},
        django_capture_on_commit_callbacks,
    )  # fmt: skip

    assert response.status_code == 200
    assert "check your inbox" in response.content.decode()
    subscriber = Subscriber.objects.get(email="grace@example.org")
    assert (subscriber.first_name, subscriber.last_name) == ("Grace", "Hopper")
    assert (subscriber.consent_source, subscriber.consent_ip) == ("form", "198.51.100.7")
    assert ListMembership.objects.get(subscriber=subscriber, mailing_list=doi_list).status == MembershipStatus.PENDING
    assert len(smtp.to("grace@example.org")) == 1


def test_a_json_post_answers_json_that_other_sites_can_read(
    smtp, client, form_path, django_capture_on_commit_callbacks
):
    response = post(client, form_path, {"email": "grace@example.org"}, django_capture_on_commit_callbacks, **JSON)

    assert response.status_code == 200
    assert response.json()["confirmation_required"] is True
    assert response["Access-Control-Allow-Origin"] == "*"
    assert len(smtp.to("grace@example.org")) == 1


def test_a_json_body_is_accepted_too(smtp, client, form_path, django_capture_on_commit_callbacks):
    response = post(
        client, form_path, {"email": "grace@example.org"}, django_capture_on_commit_callbacks,
        content_type="application/json", **JSON,
    )  # fmt: skip

    assert response.status_code == 200
    assert Subscriber.objects.filter(email="grace@example.org").exists()
    bad = post(client, form_path, ["x"], django_capture_on_commit_callbacks, content_type="application/json", **JSON)
    assert bad.status_code == 400 and "body" in bad.json()["error"]["details"]


def test_a_list_without_double_opt_in_subscribes_at_once_and_sends_nothing(
    smtp, client, workspace, django_capture_on_commit_callbacks
):
    plain = MailingListFactory(workspace=workspace, double_opt_in=False)
    path = urlsplit(mailing_list_subscribe_url(list_id=plain.pk)).path

    response = post(client, path, {"email": "grace@example.org"}, django_capture_on_commit_callbacks, **JSON)

    assert response.json()["confirmation_required"] is False
    assert ListMembership.objects.get(mailing_list=plain).status == MembershipStatus.SUBSCRIBED
    assert smtp.envelopes == []


def test_the_honeypot_answers_as_usual_and_does_nothing(smtp, client, form_path, django_capture_on_commit_callbacks):
    human = post(client, form_path, {"email": "human@example.org"}, django_capture_on_commit_callbacks, **JSON)
    bot = post(
        client, form_path, {"email": "bot@example.org", "website": "http://spam.test"},
        django_capture_on_commit_callbacks, **JSON,
    )  # fmt: skip

    assert (bot.status_code, bot.json()) == (human.status_code, human.json())
    assert not Subscriber.objects.filter(email="bot@example.org").exists()
    assert smtp.to("bot@example.org") == []


@pytest.mark.parametrize("email", ["", "not-an-address", "a@b", "x" * 300 + "@example.org"])
def test_an_invalid_email_is_a_400_naming_the_field(client, form_path, email, django_capture_on_commit_callbacks):
    as_json = post(client, form_path, {"email": email}, django_capture_on_commit_callbacks, **JSON)
    as_html = post(client, form_path, {"email": email}, django_capture_on_commit_callbacks)

    assert as_json.status_code == 400
    assert "email" in as_json.json()["error"]["details"]
    assert as_html.status_code == 400
    assert 'id="email-error"' in as_html.content.decode()
    assert not Subscriber.objects.exists()


def test_a_forged_token_is_a_404(client, doi_list, django_capture_on_commit_callbacks):
    token = mailing_list_subscribe_token(list_id=doi_list.pk)
    forged = [token[:-1] + ("A" if token[-1] != "A" else "B"), "garbage", f"{doi_list.pk}", token.split(":")[0]]
    deleted = MailingListFactory(workspace=doi_list.workspace)
    deleted_token = mailing_list_subscribe_token(list_id=deleted.pk)
    deleted.delete()

    for bad in [*forged, deleted_token]:
        assert client.get(f"/subscribe/{bad}").status_code == 404
        response = post(client, f"/subscribe/{bad}", {"email": "grace@example.org"}, django_capture_on_commit_callbacks)
        assert response.status_code == 404
        as_json = post(
            client, f"/subscribe/{bad}", {"email": "grace@example.org"}, django_capture_on_commit_callbacks, **JSON
        )
        assert as_json.status_code == 404 and as_json.json()["error"]["code"] == "not_found"
    assert not Subscriber.objects.exists()


def test_known_addresses_get_the_same_answer_and_nothing_leaks_or_duplicates(
    smtp, client, workspace, doi_list, form_path, django_capture_on_commit_callbacks
):
    confirmed = SubscriberFactory(workspace=workspace, email="known@example.org", first_name="Known")
    list_membership_add(workspace=workspace, subscriber=confirmed, mailing_list=doi_list)
    subscriber_confirm(workspace=workspace, subscriber=confirmed)
    gone = SubscriberFactory(workspace=workspace, email="gone@example.org", status=SubscriberStatus.UNSUBSCRIBED)

    answers = [
        post(client, form_path, {"email": email, "first_name": "Mallory"}, django_capture_on_commit_callbacks, **JSON)
        for email in ("new@example.org", "KNOWN@example.org", "gone@example.org")
    ]
    pages = [
        post(client, form_path, {"email": email}, django_capture_on_commit_callbacks).content
        for email in ("new2@example.org", "known@example.org", "gone@example.org")
    ]

    assert len({(a.status_code, a.content) for a in answers}) == 1
    assert len(set(pages)) == 1
    assert Subscriber.objects.filter(email__iexact="known@example.org").count() == 1
    confirmed.refresh_from_db()
    assert confirmed.first_name == "Known"  # a public form never edits a known profile
    assert smtp.to("known@example.org") == []  # already confirmed: nothing to confirm
    gone.refresh_from_db()
    assert gone.status == SubscriberStatus.UNSUBSCRIBED  # a form anyone can post never re-activates
    assert smtp.to("gone@example.org") == []


def test_a_pending_address_posting_again_gets_the_email_again_but_not_within_the_window(
    smtp, client, form_path, django_capture_on_commit_callbacks, settings
):
    settings.OPTIN_SUBSCRIBE_RATE_LIMIT = "100/m"
    for _ in range(3):
        post(client, form_path, {"email": "grace@example.org"}, django_capture_on_commit_callbacks)

    assert len(smtp.to("grace@example.org")) == 1
    assert Subscriber.objects.filter(email="grace@example.org").count() == 1


def test_posts_are_rate_limited_per_ip(client, form_path, settings, django_capture_on_commit_callbacks):
    settings.OPTIN_SUBSCRIBE_RATE_LIMIT = "2/h"  # per hour: a fixed window ending mid-test would reset the count

    statuses = [
        post(client, form_path, {"email": f"p{i}@example.org"}, django_capture_on_commit_callbacks).status_code
        for i in range(3)
    ]
    limited = post(client, form_path, {"email": "q@example.org"}, django_capture_on_commit_callbacks, **JSON)

    assert statuses == [200, 200, 429]
    assert limited.status_code == 429 and limited["Retry-After"] == "60"
    assert client.post(form_path, {"email": "r@example.org"}, REMOTE_ADDR="198.51.100.8").status_code == 200
    assert not Subscriber.objects.filter(email="q@example.org").exists()


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(
        st.sampled_from(["email", "first_name", "last_name", "website", "other"]),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300),
    ),
    as_json=st.booleans(),
)
def test_no_input_makes_the_form_fail(client, form_path, settings, fields, as_json):
    settings.OPTIN_SUBSCRIBE_RATE_LIMIT = "100000/m"
    extra = {"content_type": "application/json", **JSON} if as_json else {}

    response = client.post(form_path, fields, **extra)

    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert "email" in response.content.decode() or "name" in response.content.decode()


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(alphabet=st.characters(blacklist_characters="/?#", blacklist_categories=["Cs"]), min_size=1))
def test_no_token_makes_the_public_pages_fail(client, settings, token):
    settings.TRACKING_RATE_LIMIT = settings.OPTIN_SUBSCRIBE_RATE_LIMIT = "100000/m"
    settings.TRACKING_RATE_LIMIT_UNSUBSCRIBE = "100000/m"
    for path in (f"/subscribe/{token}", f"/confirm/{token}"):
        assert client.get(path).status_code == 404
        assert client.post(path, {"email": "a@example.org"}).status_code == 404
