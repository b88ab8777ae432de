"""The local outbox page: a workspace sees the emails of its own messages only, the HTML in a sandbox."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from accounts.models import Role
from sequences.delivery.claim import messages_claim
from sequences.delivery.send import messages_send
from sequences.models import OutboxEmail
from tests.factories import MembershipFactory, SubscriberFactory, TemplateFactory, UserFactory
from tests.sequences.test_delivery_support import message_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_emails(workspace, other_workspace, settings):
    """One email sent in each workspace through the real sender into the local outbox."""
    settings.EMAIL_BACKEND = "sequences.outbox.OutboxEmailBackend"
    for ws, email in ((workspace, "ada@example.org"), (other_workspace, "bob@example.org")):
        template = TemplateFactory(workspace=ws, subject=f"Hello from {ws.name}", html="<p>Hi <b>there</b></p>")
        message_make(workspace=ws, subscriber=SubscriberFactory(workspace=ws, email=email), template=template)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert set(messages_send(message_ids=ids, worker="w1").outcomes.values()) == {"sent"}
    return {e.to[0]: e for e in OutboxEmail.objects.all()}


def signed_in(client, workspace, role=Role.VIEWER):
    user = UserFactory()
    MembershipFactory(workspace=workspace, user=user, role=role)
    client.force_login(user)
    return client


def test_the_outbox_lists_this_workspaces_emails_only(client, workspace, sent_emails):
    page = signed_in(client, workspace).get("/app/outbox/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Hello from Acme" in html and "ada@example.org" in html
    assert "Hello from Globex" not in html and "bob@example.org" not in html


def test_an_email_shows_its_headers_text_and_a_sandboxed_html_frame(client, workspace, sent_emails):
    mine = sent_emails["ada@example.org"]
    signed_in(client, workspace)

    detail = client.get(f"/app/outbox/{mine.pk}/").content.decode()
    assert escape(mine.message_id) in detail and "List-Unsubscribe" in detail
    assert f'sandbox title="The email\'s HTML part" src="/app/outbox/{mine.pk}/html"' in detail

    frame = client.get(f"/app/outbox/{mine.pk}/html")
    assert frame.status_code == 200 and "<b>there</b>" in frame.content.decode()
    assert frame["Content-Security-Policy"].startswith("sandbox; default-src 'none'")


def test_another_workspaces_email_answers_404(client, workspace, sent_emails):
    theirs = sent_emails["bob@example.org"]
    signed_in(client, workspace, Role.OWNER)

    assert client.get(f"/app/outbox/{theirs.pk}/").status_code == 404
    assert client.get(f"/app/outbox/{theirs.pk}/html").status_code == 404


def test_the_outbox_needs_a_login(client):
    assert client.get("/app/outbox/").status_code == 302


def test_a_test_send_is_in_its_workspaces_outbox_only(client, workspace, other_workspace, settings):
    settings.EMAIL_BACKEND = "sequences.outbox.OutboxEmailBackend"
    template = TemplateFactory(workspace=workspace, subject="Spring sale", html="<p>Hi</p>")
    signed_in(client, workspace, Role.MARKETER)
    client.post(f"/app/templates/{template.pk}/test", {"to": "me@example.org"})
    [test_send] = OutboxEmail.objects.all()

    assert "[Test] Spring sale" in client.get("/app/outbox/").content.decode()
    assert client.get(f"/app/outbox/{test_send.pk}/").status_code == 200

    signed_in(client, other_workspace, Role.OWNER)
    assert "Spring sale" not in client.get("/app/outbox/").content.decode()
    assert client.get(f"/app/outbox/{test_send.pk}/").status_code == 404


def test_a_test_send_header_signed_for_another_workspace_shows_nowhere_else(client, workspace, other_workspace):
    from ui.views_outbox import TEST_SEND_HEADER, test_send_token

    token = test_send_token(other_workspace)
    forged = f"{workspace.pk}:{token.split(':', 1)[1]}"  # this workspace's id, the other one's signature
    for value in (token, forged, str(workspace.pk)):
        OutboxEmail.objects.create(subject=f"claims {value}", to=["x@example.org"], headers={TEST_SEND_HEADER: value})

    page = signed_in(client, workspace).get("/app/outbox/").content.decode()

    assert "claims" not in page
