"""The public endpoints emails link to: open pixel, click redirect, one-click unsubscribe and preferences."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sequences.models import EnrollmentStatus
from sequences.tokens import TokenPurpose, token_make, tracking_url
from sequences.views import PIXEL_GIF
from subscribers.models import Event, EventType, ListMembership, MembershipStatus, SubscriberStatus
from tests.factories import (
    EnrollmentFactory,
    MailingListFactory,
    MessageFactory,
    SequenceFactory,
    SubscriberFactory,
)

pytestmark = pytest.mark.django_db

HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def path_of(purpose: TokenPurpose, message_id: int, link_index: int | None = None) -> str:
    url = tracking_url(purpose=purpose, message_id=message_id, link_index=link_index)
    return "/" + url.split("/", 3)[3]


@pytest.fixture
def message(workspace, subscriber):
    return MessageFactory(workspace=workspace, subscriber=subscriber)


def opens(message) -> list[Event]:
    return list(Event.objects.filter(message_id=message.pk, type=EventType.OPENED).order_by("id"))


def clicks(message) -> list[Event]:
    return list(Event.objects.filter(message_id=message.pk, type=EventType.CLICKED).order_by("id"))


def get(client: Client, path: str, user_agent: str = HUMAN_UA, **extra):
    return client.get(path, HTTP_USER_AGENT=user_agent, **extra)


NOT_FOUND_BODY_PATH = "/no-such-page-anywhere"


# Open pixel ------------------------------------------------------------------------------------


def test_pixel_answers_a_transparent_gif_that_is_never_cached(client, message):
    response = get(client, path_of(TokenPurpose.OPEN, message.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == PIXEL_GIF
    assert PIXEL_GIF.startswith(b"GIF89a\x01\x00\x01\x00") and PIXEL_GIF.endswith(b";")
    assert "no-store" in response["Cache-Control"] and "no-cache" in response["Cache-Control"]
    assert "Expires" in response


def test_first_open_is_recorded_once_and_later_opens_are_counted(client, message):
    path = path_of(TokenPurpose.OPEN, message.pk)
    for _ in range(3):
        assert get(client, path).content == PIXEL_GIF
    first, *repeats = opens(message)
    assert first.dedupe_key == f"open:{message.pk}"
    assert first.properties == {"machine_open": False}
    assert first.subscriber_id == message.subscriber_id and first.workspace_id == message.workspace_id
    assert len(repeats) == 2
    assert all(e.properties.get("repeat") is True and e.dedupe_key is None for e in repeats)


def test_open_carries_the_sequence_and_step_of_the_message(client, workspace, subscriber):
    enrollment = EnrollmentFactory(sequence=SequenceFactory(workspace=workspace), subscriber=subscriber)
    message = MessageFactory(workspace=workspace, subscriber=subscriber, enrollment=enrollment)
    get(client, path_of(TokenPurpose.OPEN, message.pk))
    (event,) = opens(message)
    assert event.sequence_id == enrollment.sequence_id


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("Mozilla/5.0", "apple_privacy_proxy"),
        ("  Mozilla/5.0 ", "apple_privacy_proxy"),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "google_image_proxy",
        ),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "yahoo_mail_proxy"),
        ("", "no_user_agent"),
    ],
)
def test_probable_machine_opens_are_flagged_not_dropped(client, message, user_agent, reason):
    response = get(client, path_of(TokenPurpose.OPEN, message.pk), user_agent=user_agent)
    assert response.content == PIXEL_GIF
    (event,) = opens(message)
    assert event.properties == {"machine_open": True, "reason": reason}


def test_an_open_within_seconds_of_sending_is_flagged(client, workspace, subscriber, settings):
    settings.TRACKING_MACHINE_OPEN_SECONDS = 2
    just_sent = MessageFactory(workspace=workspace, subscriber=subscriber, sent_at=timezone.now())
    get(client, path_of(TokenPurpose.OPEN, just_sent.pk))
    assert opens(just_sent)[0].properties == {"machine_open": True, "reason": "opened_right_after_sending"}

    later = MessageFactory(workspace=workspace, subscriber=subscriber, sent_at=timezone.now() - timedelta(seconds=3))
    get(client, path_of(TokenPurpose.OPEN, later.pk))
    assert opens(later)[0].properties == {"machine_open": False}


def test_a_machine_first_open_keeps_the_unique_slot_and_a_person_open_follows_as_repeat(client, message):
    path = path_of(TokenPurpose.OPEN, message.pk)
    get(client, path, user_agent="Mozilla/5.0")
    get(client, path)
    first, repeat = opens(message)
    assert first.properties["machine_open"] is True and first.dedupe_key
    assert repeat.properties == {"machine_open": False, "repeat": True}


def test_open_tracking_turned_off_records_nothing_but_still_answers_the_pixel(client, message):
    message.workspace.track_opens = False
    message.workspace.save(update_fields=["track_opens"])
    response = get(client, path_of(TokenPurpose.OPEN, message.pk))
    assert response.status_code == 200 and response.content == PIXEL_GIF
    assert opens(message) == []


def test_a_head_request_on_the_pixel_records_nothing(client, message):
    response = client.head(path_of(TokenPurpose.OPEN, message.pk), HTTP_USER_AGENT=HUMAN_UA)
    assert response.status_code == 200
    assert opens(message) == []


# Click redirect --------------------------------------------------------------------------------


def test_click_redirects_to_that_link_of_the_message_and_records_it(client, message):
    response = get(client, path_of(TokenPurpose.CLICK, message.pk, link_index=1))
    assert response.status_code == 302
    assert response["Location"] == "https://docs.example.com/start?a=1&b=2"
    assert "no-store" in response["Cache-Control"]
    (event,) = clicks(message)
    assert event.properties == {"url": "https://docs.example.com/start?a=1&b=2", "link_index": 1}
    assert event.dedupe_key == f"click:{message.pk}:1"
    assert event.subscriber_id == message.subscriber_id


def test_repeat_clicks_are_counted_and_a_click_implies_one_open(client, message):
    path = path_of(TokenPurpose.CLICK, message.pk, link_index=0)
    for _ in range(2):
        assert get(client, path)["Location"] == "https://example.com/welcome"
    _first, repeat = clicks(message)
    assert repeat.properties == {"url": "https://example.com/welcome", "link_index": 0, "repeat": True}
    (open_event,) = opens(message)
    assert open_event.properties == {"machine_open": False, "inferred_from_click": True}


def test_crafted_query_parameters_do_not_change_the_target(client, message):
    path = path_of(TokenPurpose.CLICK, message.pk, link_index=0)
    for query in ("?url=https://evil.example", "?next=//evil.example&link_index=1", "?u=javascript:alert(1)"):
        response = get(client, path + query)
        assert response.status_code == 302
        assert response["Location"] == "https://example.com/welcome"


def test_a_token_for_message_a_never_redirects_to_a_link_of_message_b(client, workspace, subscriber):
    message_a = MessageFactory(workspace=workspace, subscriber=subscriber, links=["https://a.example/only"])
    message_b = MessageFactory(
        workspace=workspace, subscriber=subscriber, links=["https://b.example/0", "https://b.example/1"]
    )
    assert get(client, path_of(TokenPurpose.CLICK, message_a.pk, 0))["Location"] == "https://a.example/only"
    # Index 1 exists in B but not in A: A's token for it is a 404, not B's link.
    response = get(client, path_of(TokenPurpose.CLICK, message_a.pk, 1))
    assert response.status_code == 404 and "Location" not in response
    # A's signature glued onto B's id does not verify.
    token_a = token_make(purpose=TokenPurpose.CLICK, message_id=message_a.pk, link_index=0)
    forged = (
        f"{token_make(purpose=TokenPurpose.CLICK, message_id=message_b.pk, link_index=0).split(':')[0]}:"
        + (token_a.split(":")[1])
    )
    assert get(client, f"/t/c/{forged}").status_code == 404
    assert clicks(message_b) == []


def test_out_of_range_index_answers_404_without_redirect(client, message):
    response = get(client, path_of(TokenPurpose.CLICK, message.pk, link_index=2))
    assert response.status_code == 404
    assert "Location" not in response
    assert clicks(message) == []


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/path",
        "/relative/path",
        "ftp://files.example/x",
        "https://",
        "https://evil.example/\r\nSet-Cookie: x=1",
        "https://evil.example/\tpath",
        "https:\\\\evil.example",
        None,
        42,
    ],
)
def test_a_stored_link_that_is_not_http_answers_404(client, workspace, subscriber, link):
    message = MessageFactory(workspace=workspace, subscriber=subscriber, links=[link])
    response = get(client, path_of(TokenPurpose.CLICK, message.pk, link_index=0))
    assert response.status_code == 404
    assert "Location" not in response
    assert clicks(message) == []


def test_a_message_of_another_workspace_is_reached_only_through_its_own_token(client, message, other_workspace):
    theirs = MessageFactory(workspace=other_workspace, links=["https://globex.example/"])
    assert get(client, path_of(TokenPurpose.CLICK, theirs.pk, 0))["Location"] == "https://globex.example/"
    (event,) = clicks(theirs)
    assert event.workspace_id == other_workspace.pk
    assert event.subscriber.workspace_id == other_workspace.pk
    assert clicks(message) == []


# Forged tokens ---------------------------------------------------------------------------------


def _forged_tokens(message_id: int) -> list[str]:
    real = token_make(purpose=TokenPurpose.OPEN, message_id=message_id)
    return [
        "garbage",
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # signature altered
        real.split(":")[0],  # no signature
        "zzzzzzzzzzzzzzzzzz:" + real.split(":")[1],
        "%00",
        "a" * 500,
    ]


@pytest.mark.parametrize("purpose", [TokenPurpose.OPEN, TokenPurpose.CLICK, TokenPurpose.UNSUBSCRIBE])
def test_forged_tokens_answer_404_on_every_endpoint_and_record_nothing(client, message, purpose):
    prefix = {TokenPurpose.OPEN: "/t/o/", TokenPurpose.CLICK: "/t/c/", TokenPurpose.UNSUBSCRIBE: "/u/"}[purpose]
    plain_404 = client.get(NOT_FOUND_BODY_PATH).content
    before = Event.objects.count()
    for token in _forged_tokens(message.pk):
        response = get(client, prefix + token)
        assert response.status_code == 404, token
        assert "Location" not in response
        if purpose is TokenPurpose.OPEN:
            assert response.content == PIXEL_GIF  # the same transparent pixel, status 404
        else:
            assert response.content == plain_404  # the same body as any 404: tells nothing
    if purpose is TokenPurpose.UNSUBSCRIBE:
        response = client.post(prefix + "garbage", {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 404
    assert Event.objects.count() == before
    message.subscriber.refresh_from_db()
    assert message.subscriber.status == SubscriberStatus.ACTIVE


def test_a_token_made_for_one_purpose_is_worthless_for_another(client, message):
    open_token = token_make(purpose=TokenPurpose.OPEN, message_id=message.pk)
    assert client.get(f"/t/c/{open_token}").status_code == 404
    assert client.get(f"/u/{open_token}").status_code == 404
    assert client.post(f"/u/{open_token}", {"List-Unsubscribe": "One-Click"}).status_code == 404
    unsubscribe_token = token_make(purpose=TokenPurpose.UNSUBSCRIBE, message_id=message.pk)
    assert get(client, f"/t/o/{unsubscribe_token}").status_code == 404


def test_a_token_of_a_deleted_message_answers_404(client, message):
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)
    message.delete()
    assert client.get(path).status_code == 404


# Unsubscribe: the page and preference center ------------------------------------------------


@pytest.fixture
def lists(workspace, subscriber):
    news = MailingListFactory(workspace=workspace, name="Newsletter", description="Monthly news")
    offers = MailingListFactory(workspace=workspace, name="Offers")
    MailingListFactory(workspace=workspace, name="Internal beta testers")  # never joined: never shown
    ListMembership.objects.create(mailing_list=news, subscriber=subscriber, status=MembershipStatus.SUBSCRIBED)
    ListMembership.objects.create(mailing_list=offers, subscriber=subscriber, status=MembershipStatus.UNSUBSCRIBED)
    return news, offers


def test_unsubscribe_page_shows_the_subscribers_lists_without_inline_script_or_style(client, message, lists):
    news, offers = lists
    response = client.get(path_of(TokenPurpose.UNSUBSCRIBE, message.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "ada@example.org" in html and "Acme" in html
    assert re.search(rf'<input type="checkbox" name="lists" value="{news.pk}" checked>', html)
    assert re.search(rf'<input type="checkbox" name="lists" value="{offers.pk}">', html)
    assert "Internal beta testers" not in html
    assert 'value="unsubscribe_all"' in html
    assert "csrfmiddlewaretoken" in html
    assert "/static/css/public.css" in html
    # CSP: nothing inline, and the policy allows no inline code.
    assert "<script" not in html.lower()
    assert "style=" not in html.lower() and "<style" not in html.lower()
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert "no-store" in response["Cache-Control"]


def test_the_stylesheet_is_a_static_file(client):
    from django.contrib.staticfiles import finders

    assert finders.find("css/public.css")


def test_preference_center_post_with_csrf_updates_lists(message, lists):
    news, offers = lists
    browser = Client(enforce_csrf_checks=True)
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)
    page = browser.get(path).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    # A form post without the CSRF token is refused.
    assert browser.post(path, {"action": "update", "lists": [offers.pk]}).status_code == 403

    response = browser.post(path, {"csrfmiddlewaretoken": csrf, "action": "update", "lists": [offers.pk]})
    assert response.status_code == 200
    assert "Your preferences are saved." in response.content.decode()
    statuses = dict(ListMembership.objects.filter(subscriber=message.subscriber).values_list("mailing_list", "status"))
    assert statuses == {news.pk: MembershipStatus.UNSUBSCRIBED, offers.pk: MembershipStatus.SUBSCRIBED}
    message.subscriber.refresh_from_db()
    assert message.subscriber.status == SubscriberStatus.ACTIVE


def test_preference_center_ignores_lists_the_subscriber_never_joined(client, message, lists, other_workspace):
    theirs = MailingListFactory(workspace=other_workspace, name="Theirs")
    never_joined = MailingListFactory(workspace=message.workspace, name="Never")
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)
    client.post(path, {"action": "update", "lists": [str(lists[0].pk), str(theirs.pk), str(never_joined.pk), "x"]})
    joined = set(ListMembership.objects.filter(subscriber=message.subscriber).values_list("mailing_list", flat=True))
    assert joined == {lists[0].pk, lists[1].pk}


def test_preference_center_unsubscribe_from_everything(message, lists, workspace, subscriber):
    enrollment = EnrollmentFactory(sequence=SequenceFactory(workspace=workspace), subscriber=subscriber)
    browser = Client(enforce_csrf_checks=True)
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', browser.get(path).content.decode()).group(1)
    response = browser.post(path, {"csrfmiddlewaretoken": csrf, "action": "unsubscribe_all"})
    assert response.status_code == 200
    assert "You are unsubscribed from all emails" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
    (event,) = Event.objects.filter(subscriber=subscriber, type=EventType.UNSUBSCRIBED)
    assert event.properties["source"] == "preference-center"
    assert event.properties["by"] == f"message:{message.pk}"
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.EXITED and enrollment.exit_reason == "unsubscribed"
    # The page now says so, and offers no list form.
    page = browser.get(path).content.decode()
    assert "You are unsubscribed from all emails" in page and 'name="lists"' not in page


# Unsubscribe: RFC 8058 one-click ---------------------------------------------------------------


def test_one_click_post_without_cookies_or_csrf_unsubscribes_at_once_and_idempotently(workspace, subscriber):
    sequence_a, sequence_b = SequenceFactory(workspace=workspace), SequenceFactory(workspace=workspace)
    active_a = EnrollmentFactory(sequence=sequence_a, subscriber=subscriber)
    active_b = EnrollmentFactory(sequence=sequence_b, subscriber=subscriber)
    done = EnrollmentFactory(sequence=SequenceFactory(workspace=workspace), subscriber=subscriber, status="completed")
    someone_else = EnrollmentFactory(sequence=sequence_a, subscriber=SubscriberFactory(workspace=workspace))
    message = MessageFactory(workspace=workspace, subscriber=subscriber, enrollment=active_a)
    mail_client = Client(enforce_csrf_checks=True)  # no cookie, no token: as a mail provider posts
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)

    for _ in range(2):
        response = mail_client.post(
            path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 200
        assert not response.cookies.get("sessionid")

    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
    assert subscriber.status_reason == f"one-click unsubscribe from message {message.pk}"
    (event,) = Event.objects.filter(subscriber=subscriber, type=EventType.UNSUBSCRIBED)
    assert event.properties["source"] == "one-click"
    assert event.properties["by"] == f"message:{message.pk}"
    # The event names the email it came from, so reports can attribute the unsubscribe.
    assert (event.message_id, event.sequence_id) == (message.pk, sequence_a.pk)
    for enrollment in (active_a, active_b):
        enrollment.refresh_from_db()
        assert enrollment.status == EnrollmentStatus.EXITED
        assert enrollment.exit_reason == "unsubscribed"
        assert enrollment.next_run_at is None
    assert Event.objects.filter(subscriber=subscriber, type=EventType.EXITED).count() == 2
    done.refresh_from_db()
    someone_else.refresh_from_db()
    assert done.status == EnrollmentStatus.COMPLETED
    assert someone_else.status == EnrollmentStatus.ACTIVE


def test_one_click_is_accepted_as_multipart_too(message):
    response = Client(enforce_csrf_checks=True).post(
        path_of(TokenPurpose.UNSUBSCRIBE, message.pk), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    message.subscriber.refresh_from_db()
    assert message.subscriber.status == SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize(
    "body",
    [
        {"List-Unsubscribe": "one-click"},
        {"List-Unsubscribe": "Yes"},
        {"action": "unsubscribe_all"},
        {},
    ],
)
def test_csrf_is_waived_only_for_the_one_click_body(message, body):
    response = Client(enforce_csrf_checks=True).post(path_of(TokenPurpose.UNSUBSCRIBE, message.pk), body)
    assert response.status_code == 403
    message.subscriber.refresh_from_db()
    assert message.subscriber.status == SubscriberStatus.ACTIVE
    assert not Event.objects.filter(type=EventType.UNSUBSCRIBED).exists()


def test_an_unsubscribed_subscriber_is_never_enrolled_again(client, workspace, subscriber, active_sequence):
    from sequences.services import sequence_enroll

    message = MessageFactory(workspace=workspace, subscriber=subscriber)
    client.post(path_of(TokenPurpose.UNSUBSCRIBE, message.pk), {"List-Unsubscribe": "One-Click"})
    (result,) = sequence_enroll(workspace=workspace, sequence=active_sequence, subscriber_ids=[subscriber.pk])
    assert result.status == SubscriberStatus.UNSUBSCRIBED


# Rate limits ---------------------------------------------------------------------------------


def test_pixel_and_click_are_rate_limited_per_ip(client, message, settings):
    settings.TRACKING_RATE_LIMIT = "3/h"  # per hour: a fixed window ending mid-test would reset the count
    pixel = path_of(TokenPurpose.OPEN, message.pk)
    statuses = [get(client, pixel, REMOTE_ADDR="198.51.100.1").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Another address has its own budget, and the click its own group.
    assert get(client, pixel, REMOTE_ADDR="198.51.100.2").status_code == 200
    click = path_of(TokenPurpose.CLICK, message.pk, 0)
    statuses = [get(client, click, REMOTE_ADDR="198.51.100.1").status_code for _ in range(4)]
    assert statuses == [302, 302, 302, 429]
    limited = get(client, click, REMOTE_ADDR="198.51.100.1")
    assert limited["Retry-After"] == "60" and "Location" not in limited
    assert len(opens(message)) == 4  # 3 pixel + 1 from the other address; the click's inferred open deduped


def test_unsubscribe_posts_are_rate_limited_per_ip(client, message, settings):
    settings.TRACKING_RATE_LIMIT_UNSUBSCRIBE = "2/h"  # per hour: a fixed window ending mid-test would reset the count
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)
    statuses = [
        client.post(path, {"List-Unsubscribe": "One-Click"}, REMOTE_ADDR="198.51.100.9").status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert client.get(path, REMOTE_ADDR="198.51.100.9").status_code == 200  # the page has its own budget


def test_one_click_keeps_a_bounced_status_and_still_exits_enrollments(client, workspace, subscriber):
    subscriber.status = SubscriberStatus.BOUNCED
    subscriber.save(update_fields=["status"])
    enrollment = EnrollmentFactory(sequence=SequenceFactory(workspace=workspace), subscriber=subscriber)
    message = MessageFactory(workspace=workspace, subscriber=subscriber)
    response = client.post(path_of(TokenPurpose.UNSUBSCRIBE, message.pk), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    subscriber.refresh_from_db()
    enrollment.refresh_from_db()
    assert subscriber.status == SubscriberStatus.BOUNCED
    assert enrollment.status == EnrollmentStatus.EXITED
    page = client.get(path_of(TokenPurpose.UNSUBSCRIBE, message.pk)).content.decode()
    assert "receives no email" in page and "<form" not in page


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    token=st.text(alphabet=st.characters(blacklist_characters="/?#", blacklist_categories=["Cs"]), min_size=1),
    query=st.text(max_size=40),
)
def test_the_click_endpoint_never_redirects_anywhere_but_the_messages_links(client, message, settings, token, query):
    settings.TRACKING_RATE_LIMIT = "100000/m"
    real = token_make(purpose=TokenPurpose.CLICK, message_id=message.pk, link_index=0)
    for candidate in (token, real[: len(token) % len(real) + 1], real + token):
        response = client.get(f"/t/c/{quote(candidate, safe='')}?{quote(query, safe='=&')}")
        assert response.status_code in (302, 404)
        if response.status_code == 302:
            assert response["Location"] in message.links


def test_someone_unsubscribed_from_everything_cannot_rejoin_lists_through_an_old_email(client, message, lists):
    news, offers = lists
    path = path_of(TokenPurpose.UNSUBSCRIBE, message.pk)
    client.post(path, {"List-Unsubscribe": "One-Click"})
    client.post(path, {"action": "update", "lists": [news.pk, offers.pk]})
    statuses = dict(ListMembership.objects.filter(subscriber=message.subscriber).values_list("mailing_list", "status"))
    assert statuses[offers.pk] == MembershipStatus.UNSUBSCRIBED
    message.subscriber.refresh_from_db()
    assert message.subscriber.status == SubscriberStatus.UNSUBSCRIBED


def test_a_link_with_a_space_from_a_merge_tag_still_redirects_percent_encoded(client, workspace, subscriber):
    message = MessageFactory(workspace=workspace, subscriber=subscriber, links=["https://example.com/?name=Mary Ann"])
    response = get(client, path_of(TokenPurpose.CLICK, message.pk, link_index=0))
    assert response.status_code == 302
    assert response["Location"] == "https://example.com/?name=Mary%20Ann"
