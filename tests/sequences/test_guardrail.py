"""The guardrail: a workspace pauses itself on too many bounces or complaints; paused sends nothing;
resuming (API, admin) sends what was held back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role, Workspace
from accounts.services import workspace_sending_pause
from sequences.delivery.claim import messages_claim
from sequences.delivery.guardrail import workspace_guardrail_check
from sequences.delivery.pace import Reason
from sequences.delivery.send import messages_send
from sequences.models import Message, MessageStatus
from subscribers.models import Event, EventType
from tests.factories import MessageFactory, SubscriberFactory
from tests.sequences.test_delivery_support import message_make, smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


def history(workspace, *, sends: int, bounces: int = 0, complaints: int = 0) -> None:
    """`sends` sent messages of `workspace`, the first `bounces` of them bounced, the last `complaints`
    of them complained about."""
    subscriber = SubscriberFactory(workspace=workspace)
    messages = [MessageFactory.build(workspace=workspace, subscriber=subscriber) for _ in range(sends)]
    messages = Message.objects.bulk_create(messages)
    events = [Event(workspace=workspace, subscriber=subscriber, type=EventType.BOUNCED, name="bounced",
                    message_id=m.pk) for m in messages[:bounces]]  # fmt: skip
    events += [Event(workspace=workspace, subscriber=subscriber, type=EventType.COMPLAINED, name="complained",
                     message_id=m.pk) for m in messages[sends - complaints :]]  # fmt: skip
    Event.objects.bulk_create(events)


@pytest.fixture(autouse=True)
def _guardrail_settings(settings):
    settings.DELIVERY_GUARDRAIL_WINDOW = 1000
    settings.DELIVERY_GUARDRAIL_MIN_SENDS = 100
    settings.DELIVERY_GUARDRAIL_BOUNCE_RATE = 0.05
    settings.DELIVERY_GUARDRAIL_COMPLAINT_RATE = 0.003


def test_a_bounce_rate_below_the_threshold_does_not_pause(workspace):
    history(workspace, sends=100, bounces=4)
    result = workspace_guardrail_check(workspace=workspace)
    assert (result.sends, result.bounces, result.paused) == (100, 4, False)
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is None


def test_a_bounce_rate_at_the_threshold_pauses_with_the_numbers_in_the_reason(workspace, other_workspace):
    history(workspace, sends=100, bounces=5)
    history(other_workspace, sends=100)
    result = workspace_guardrail_check(workspace=workspace)
    assert result.paused and result.bounce_rate == 0.05
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is not None
    assert workspace.sending_paused_reason == (
        "Paused by the guardrail: bounce rate 5 % (5 of the last 100 sends) reached the 5 % limit"
    )
    assert not workspace_guardrail_check(workspace=other_workspace).paused
    # Checking again changes nothing (the first pause and its reason stay).
    assert not workspace_guardrail_check(workspace=workspace).paused


def test_a_new_workspace_is_not_paused_under_the_minimum_of_sends(workspace):
    history(workspace, sends=99, bounces=30)
    assert not workspace_guardrail_check(workspace=workspace).paused


def test_only_the_last_window_of_sends_counts(workspace, settings):
    settings.DELIVERY_GUARDRAIL_WINDOW = 200
    history(workspace, sends=100, bounces=20)  # older: outside the window of the 200 latest
    history(workspace, sends=200, bounces=9)
    result = workspace_guardrail_check(workspace=workspace)
    assert (result.sends, result.bounces, result.paused) == (200, 9, False)


def test_a_complaint_rate_at_the_threshold_pauses(workspace):
    history(workspace, sends=1000, complaints=2)
    assert not workspace_guardrail_check(workspace=workspace).paused
    history(workspace, sends=1, complaints=1)  # now 3 of the last 1,000
    result = workspace_guardrail_check(workspace=workspace)
    assert result.paused and result.complaints == 3
    assert "complaint rate 0.3 % (3 of the last 1000 sends) reached the 0.3 % limit" in result.reason


def test_smtp_hard_bounces_pause_the_workspace_during_the_batch(smtp, workspace, template, settings):
    settings.DELIVERY_GUARDRAIL_MIN_SENDS = 10
    history(workspace, sends=10)
    bad = SubscriberFactory(workspace=workspace, email="gone@example.org")
    smtp.rcpt_replies[bad.email] = ["550 5.1.1 No such user"]
    message_make(workspace=workspace, subscriber=bad, template=template)
    ids = messages_claim(worker="w1", limit=10, lease_seconds=300)
    assert set(messages_send(message_ids=ids, worker="w1").outcomes.values()) == {"bounced"}
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is not None
    assert "1 of the last 11 sends" in workspace.sending_paused_reason


def test_a_paused_workspace_sends_nothing_and_resuming_through_the_api_sends_it(
    smtp, workspace, subscriber, template, client_for
):
    held = message_make(workspace=workspace, subscriber=subscriber, template=template)
    claimed = messages_claim(worker="w1", limit=10, lease_seconds=300)  # claimed before the pause
    workspace_sending_pause(workspace=workspace, reason="Checking a list import", actor="test")
    later = message_make(workspace=workspace, subscriber=SubscriberFactory(workspace=workspace), template=template)

    assert messages_send(message_ids=claimed, worker="w1").outcomes == {held.pk: "deferred"}
    assert messages_claim(worker="w2", limit=10, lease_seconds=300) == []  # paused workspaces are skipped
    assert smtp.envelopes == []
    held.refresh_from_db()
    assert held.deferred_reason == Reason.WORKSPACE_PAUSED and held.attempts == 0

    admin = client_for(workspace, Role.ADMIN)
    url = reverse("workspace-sending-resume", args=[workspace.pk])
    response = admin.get(reverse("workspace-detail", args=[workspace.pk]))
    assert response.json()["sending_paused_reason"] == "Checking a list import"
    assert response.json()["sending_paused_at"]
    response = admin.post(url)
    assert response.status_code == 200, response.content
    assert response.json()["sending_paused_at"] is None and response.json()["sending_paused_reason"] == ""

    held.refresh_from_db()
    assert held.status == MessageStatus.QUEUED and held.deferred_reason == ""
    ids = messages_claim(worker="w3", limit=10, lease_seconds=300)
    assert sorted(ids) == sorted([held.pk, later.pk])
    assert set(messages_send(message_ids=ids, worker="w3").outcomes.values()) == {"sent"}
    assert len(smtp.envelopes) == 2


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_only_admins_pause_and_resume(workspace, client_for, role):
    client = client_for(workspace, role)
    for action in ("pause", "resume"):
        response = client.post(reverse(f"workspace-sending-{action}", args=[workspace.pk]), {"reason": "x"})
        assert response.status_code == 403, response.content
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is None


def test_pause_through_the_api_needs_a_reason(workspace, client_for):
    admin = client_for(workspace, Role.ADMIN)
    url = reverse("workspace-sending-pause", args=[workspace.pk])
    response = admin.post(url, {}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["error"]["details"]
    response = admin.post(url, {"reason": "Spam trap hit"}, format="json")
    assert response.status_code == 200
    assert response.json()["sending_paused_reason"] == "Spam trap hit"
    assert Workspace.objects.get(pk=workspace.pk).sending_paused_at is not None


def test_another_workspace_cannot_be_paused_or_resumed(workspace, other_workspace, client_for):
    workspace_sending_pause(workspace=other_workspace, reason="theirs", actor="test")
    admin = client_for(workspace, Role.OWNER)
    for action in ("pause", "resume"):
        response = admin.post(reverse(f"workspace-sending-{action}", args=[other_workspace.pk]), {"reason": "x"})
        assert response.status_code == 404
    other_workspace.refresh_from_db()
    assert other_workspace.sending_paused_reason == "theirs"


def test_the_admin_pauses_and_resumes_workspaces(admin_client, workspace, subscriber, template):
    message = message_make(workspace=workspace, subscriber=subscriber, template=template)
    url = reverse("admin:accounts_workspace_changelist")
    admin_client.post(url, {"action": "pause_sending", "_selected_action": [workspace.pk]})
    workspace.refresh_from_db()
    assert workspace.sending_paused_at is not None and "admin" in workspace.sending_paused_reason
    Message.objects.filter(pk=message.pk).update(status="deferred", deferred_reason=Reason.WORKSPACE_PAUSED)
    admin_client.post(url, {"action": "resume_sending", "_selected_action": [workspace.pk]})
    workspace.refresh_from_db()
    message.refresh_from_db()
    assert workspace.sending_paused_at is None and message.status == MessageStatus.QUEUED
