"""Enrolling from the UI: a list's members (counted first, then enrolled) or pasted addresses, through
the services, with every refusal reported by reason."""

from __future__ import annotations

import pytest

from accounts.models import Role
from sequences.models import Enrollment, SequenceStatus
from subscribers.models import SubscriberStatus
from subscribers.services.audience import list_members_add
from tests.factories import (
    MailingListFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sequence(workspace):
    sequence = SequenceFactory(workspace=workspace, name="Welcome", status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, position=1)
    return sequence


def url(sequence) -> str:
    return f"/app/sequences/{sequence.pk}/enroll/"


def enrolled_emails(sequence) -> set[str]:
    return set(Enrollment.objects.filter(sequence=sequence).values_list("subscriber__email", flat=True))


def test_the_page_lists_the_latest_enrollments_and_is_linked_from_the_builder(ui_client, workspace, sequence):
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    Enrollment.objects.create(workspace=workspace, sequence=sequence, subscriber=ada, current_step=sequence.steps.get())
    client = ui_client(Role.VIEWER)

    page = client.get(url(sequence))
    builder = client.get(f"/app/sequences/{sequence.pk}/edit/")

    assert page.status_code == 200
    assert b"ada@example.org" in page.content and b"Step 1" in page.content
    assert b"Enroll these subscribers" not in page.content  # a viewer sees no forms
    assert url(sequence).encode() in builder.content


def test_addresses_are_enrolled_and_each_refusal_is_reported(ui_client, workspace, sequence):
    SubscriberFactory(workspace=workspace, email="ada@example.org")
    SubscriberFactory(workspace=workspace, email="gone@example.org", status=SubscriberStatus.UNSUBSCRIBED)

    response = ui_client().post(
        url(sequence), {"emails-emails": "ada@example.org, gone@example.org\nnobody@example.org ada@example.org"}
    )

    assert response.status_code == 200
    assert enrolled_emails(sequence) == {"ada@example.org"}
    rows = response.context["results"]
    assert rows[0] == ("ada@example.org", "enrolled") and len(rows) == 3  # the repeated address counted once
    assert dict(rows)["nobody@example.org"] != "enrolled" and dict(rows)["gone@example.org"] != "enrolled"
    assert b"Enrolled 1 of 3." in response.content
    assert Enrollment.objects.get().source == "ui"


def test_no_address_is_a_400_on_the_field_and_enrolls_nobody(ui_client, sequence):
    response = ui_client().post(url(sequence), {"emails-emails": " ,  "})

    assert response.status_code == 400
    assert response.context["emails_form"].errors["emails"] == ["Give at least one email address."]
    assert not Enrollment.objects.exists()


def test_a_list_is_counted_first_then_enrolled(ui_client, workspace, sequence):
    members = MailingListFactory(workspace=workspace, name="Newsletter")
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    grace = SubscriberFactory(workspace=workspace, email="grace@example.org")
    list_members_add(workspace=workspace, mailing_list=members, subscriber_ids=[ada.pk, grace.pk])
    client = ui_client()

    counted = client.post(url(sequence), {"list-mailing_list": str(members.pk), "count": "1"})
    assert counted.status_code == 200 and b"Would enroll <strong>2</strong> of 2 members" in counted.content
    assert not Enrollment.objects.exists()

    enrolled = client.post(url(sequence), {"list-mailing_list": str(members.pk), "enroll": "1"})
    assert b"Enrolled <strong>2</strong> of 2 members" in enrolled.content
    assert enrolled_emails(sequence) == {"ada@example.org", "grace@example.org"}


def test_no_list_on_a_sequence_without_one_names_the_list_field(ui_client, sequence):
    response = ui_client().post(url(sequence), {"list-mailing_list": "", "enroll": "1"})

    assert response.status_code == 400
    assert "The sequence has no list of its own" in response.context["list_form"].errors["mailing_list"][0]


def test_another_workspaces_list_is_an_invalid_choice(ui_client, sequence):
    foreign = MailingListFactory(workspace=WorkspaceFactory())

    response = ui_client().post(url(sequence), {"list-mailing_list": str(foreign.pk), "enroll": "1"})

    assert response.status_code == 400 and "mailing_list" in response.context["list_form"].errors


def test_a_draft_sequence_refuses_with_the_services_reason(ui_client, workspace):
    draft = SequenceFactory(workspace=workspace, status=SequenceStatus.DRAFT)
    StepFactory(sequence=draft, position=1)
    SubscriberFactory(workspace=workspace, email="ada@example.org")

    response = ui_client().post(url(draft), {"emails-emails": "ada@example.org"}, follow=True)

    assert "only an active sequence accepts enrollments" in response.content.decode()
    assert not Enrollment.objects.exists()


def test_viewers_cannot_enroll_and_other_workspaces_sequences_are_404(ui_client, workspace, sequence):
    SubscriberFactory(workspace=workspace, email="ada@example.org")
    assert ui_client(Role.VIEWER).post(url(sequence), {"emails-emails": "ada@example.org"}).status_code == 403
    other = ui_client(ws=WorkspaceFactory())
    assert other.get(url(sequence)).status_code == 404
    assert not Enrollment.objects.exists()


def test_enrolling_needs_the_csrf_token(ui_client, workspace, sequence):
    SubscriberFactory(workspace=workspace, email="ada@example.org")
    response = ui_client(enforce_csrf_checks=True).post(url(sequence), {"emails-emails": "ada@example.org"})
    assert response.status_code == 403 and not Enrollment.objects.exists()
