"""The marketer UI: sign-in, the session's workspace, roles, tenant isolation, CSRF, CSP and every page."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Role
from accounts.services import api_key_authenticate
from sequences.models import SequenceStatus
from subscribers.imports import import_job_run
from subscribers.models import Event, EventType, ImportJob, ImportStatus
from tests.factories import (
    EnrollmentFactory,
    FieldDefinitionFactory,
    MailingListFactory,
    MembershipFactory,
    MessageFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    TagFactory,
    UserFactory,
)
from ui.access import SESSION_KEY

pytestmark = pytest.mark.django_db

PAGES = [
    "/app/", "/app/subscribers/", "/app/subscribers/import/", "/app/subscribers/new/", "/app/segments/",
    "/app/segments/new/", "/app/lists/", "/app/tags/", "/app/fields/", "/app/templates/", "/app/templates/new/",
    "/app/sequences/", "/app/sequences/new/", "/app/campaigns/", "/app/campaigns/new/", "/app/workflows/",
    "/app/workflows/new/", "/app/settings/", "/app/settings/members/", "/app/settings/webhooks/new/",
    "/app/outbox/",
]  # fmt: skip


@pytest.fixture
def ui_client(ui_client):
    """Owners by default here (tests/ui/conftest.py)."""
    return lambda role=Role.OWNER, **options: ui_client(role, **options)


@pytest.mark.parametrize("path", [*PAGES, "/app/subscribers/export.csv"])
def test_every_page_requires_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/app/login/?next=")


def test_log_in_through_the_form_lands_on_the_dashboard_and_log_out_ends_the_session(workspace):
    user = UserFactory(username="marketer@example.com", password="s3cret-pass")
    MembershipFactory(workspace=workspace, user=user, role=Role.MARKETER)
    client = Client(enforce_csrf_checks=True)
    page = client.get("/app/login/")
    assert page.status_code == 200
    token = page.cookies["csrftoken"].value
    bad = client.post(
        "/app/login/", {"username": "marketer@example.com", "password": "wrong", "csrfmiddlewaretoken": token}
    )
    assert bad.status_code == 200 and b"Please enter a correct" in bad.content
    response = client.post(
        "/app/login/", {"username": "marketer@example.com", "password": "s3cret-pass", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and response["Location"] == "/app/"
    assert client.get("/app/").status_code == 200
    token = client.cookies["csrftoken"].value
    assert client.post("/app/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get("/app/").status_code == 302


def test_login_attempts_are_limited_per_address(workspace, settings):
    settings.API_THROTTLE_AUTH = "3/h"  # per hour: a fixed window ending mid-test would reset the count
    client = Client()
    attempt = {"username": "x@example.com", "password": "guess"}
    statuses = [client.post("/app/login/", attempt).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


# Pages that are only a form a viewer may not send: refused to viewers outright.
FORM_ONLY = {"/app/subscribers/import/", "/app/subscribers/new/", "/app/settings/webhooks/new/"}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(ui_client, path):
    response = ui_client().get(path)  # an owner
    assert response.status_code == 200
    assert b"<h1" in response.content


@pytest.mark.parametrize("path", [p for p in PAGES if p not in FORM_ONLY])
def test_every_read_only_page_renders_for_a_viewer_who_is_not_offered_the_import(ui_client, path):
    client = ui_client(Role.VIEWER)
    assert client.get(path).status_code == 200
    assert client.get("/app/subscribers/import/").status_code == 403
    assert b"Import CSV" not in client.get("/app/subscribers/").content


@pytest.mark.parametrize("path", sorted(FORM_ONLY))
def test_form_only_pages_are_refused_to_viewers(ui_client, path):
    assert ui_client(Role.VIEWER).get(path).status_code == 403


def test_csp_header_allows_no_inline_script(ui_client):
    response = ui_client().get("/app/")
    policy = response["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert b"<script>" not in response.content  # every script is a static file


def test_a_user_without_a_workspace_is_refused(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/app/").status_code == 403


# Workspaces ---------------------------------------------------------------------------------------


def test_switching_to_a_workspace_of_mine_changes_what_every_page_shows(ui_client, workspace, other_workspace):
    client = ui_client(Role.OWNER)
    MembershipFactory(workspace=other_workspace, user=client.user, role=Role.VIEWER)
    SubscriberFactory(workspace=workspace, email="mine@acme.test")
    SubscriberFactory(workspace=other_workspace, email="theirs@globex.test")
    first = client.get("/app/subscribers/").content.decode()  # the first workspace by name: Acme
    assert "mine@acme.test" in first and "theirs@globex.test" not in first
    response = client.post("/app/workspace/", {"workspace": other_workspace.pk})
    assert response.status_code == 302
    second = client.get("/app/subscribers/")
    assert "theirs@globex.test" in second.content.decode() and "mine@acme.test" not in second.content.decode()
    assert second.wsgi_request.role == Role.VIEWER  # the role is that workspace's
    assert client.post("/app/settings/", {"name": "x"}).status_code == 403


def test_switching_to_a_workspace_i_am_not_a_member_of_is_refused(ui_client, workspace, other_workspace):
    client = ui_client(Role.OWNER)
    SubscriberFactory(workspace=other_workspace, email="theirs@globex.test")
    response = client.post("/app/workspace/", {"workspace": other_workspace.pk})
    assert response.status_code == 404
    assert client.post("/app/workspace/", {"workspace": "not-a-number"}).status_code == 404
    page = client.get("/app/subscribers/").content.decode()
    assert "theirs@globex.test" not in page


def test_a_stale_workspace_in_the_session_falls_back_to_a_membership(ui_client, workspace, other_workspace):
    client = ui_client(Role.OWNER)
    session = client.session
    session[SESSION_KEY] = other_workspace.pk  # e.g. the membership was removed since
    session.save()
    SubscriberFactory(workspace=other_workspace, email="theirs@globex.test")
    page = client.get("/app/subscribers/").content.decode()
    assert "theirs@globex.test" not in page


def test_objects_of_another_workspace_answer_404(ui_client, other_workspace):
    client = ui_client(Role.OWNER)
    subscriber = SubscriberFactory(workspace=other_workspace)
    sequence = SequenceFactory(workspace=other_workspace)
    StepFactory(sequence=sequence)
    job = ImportJob.objects.create(workspace=other_workspace, file="imports/x.csv", status=ImportStatus.COMPLETED)
    from accounts.services import api_key_create

    key = api_key_create(workspace=other_workspace, name="theirs", scope="read", created_by=None).api_key
    assert client.get(f"/app/subscribers/{subscriber.pk}/").status_code == 404
    assert client.get(f"/app/subscribers/imports/{job.pk}/").status_code == 404
    assert client.get(f"/app/subscribers/imports/{job.pk}/progress").status_code == 404
    assert client.get(f"/app/subscribers/imports/{job.pk}/errors.csv").status_code == 404
    assert client.post(f"/app/sequences/{sequence.pk}/activate").status_code == 404
    assert client.post(f"/app/settings/api-keys/{key.pk}/revoke").status_code == 404
    sequence.refresh_from_db()
    key.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT and key.revoked_at is None
    # A list of another workspace is not a valid filter choice: nothing leaks through it.
    their_list = MailingListFactory(workspace=other_workspace)
    assert subscriber.email not in client.get(f"/app/subscribers/?list={their_list.pk}").content.decode()


# Roles ----------------------------------------------------------------------------------------------


def test_a_viewer_cannot_post_anything(ui_client, workspace):
    client = ui_client(Role.VIEWER)
    sequence = SequenceFactory(workspace=workspace)
    StepFactory(sequence=sequence)
    upload = SimpleUploadedFile("people.csv", b"email\na@example.org\n", content_type="text/csv")
    assert client.post(f"/app/sequences/{sequence.pk}/activate").status_code == 403
    assert client.post("/app/subscribers/import/", {"file": upload}).status_code == 403
    assert client.post("/app/settings/", {"name": "Hijacked"}).status_code == 403
    assert client.post("/app/settings/api-keys/", {"key-name": "k", "key-scope": "write"}).status_code == 403
    sequence.refresh_from_db()
    workspace.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT and workspace.name == "Acme"
    assert not ImportJob.objects.exists() and not ApiKey.objects.exists()
    page = client.get("/app/sequences/").content.decode()
    assert "Activate" not in page  # controls the role cannot use are not offered


def test_a_marketer_changes_sequences_but_not_settings_or_keys(ui_client, workspace):
    client = ui_client(Role.MARKETER)
    assert client.post("/app/settings/", {"name": "Renamed"}).status_code == 403
    assert client.get("/app/settings/").status_code == 200
    assert b"API keys" not in client.get("/app/settings/").content
    assert client.post("/app/settings/api-keys/", {"key-name": "k", "key-scope": "read"}).status_code == 403


def test_csrf_is_enforced_on_every_form(ui_client, workspace):
    client = ui_client(Role.OWNER, enforce_csrf_checks=True)
    sequence = SequenceFactory(workspace=workspace)
    StepFactory(sequence=sequence)
    for path, data in [
        (f"/app/sequences/{sequence.pk}/activate", {}),
        ("/app/settings/", {"name": "x"}),
        ("/app/settings/api-keys/", {"key-name": "k", "key-scope": "read"}),
        ("/app/workspace/", {"workspace": workspace.pk}),
        ("/app/logout/", {}),
    ]:
        assert client.post(path, data).status_code == 403, path
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT and not ApiKey.objects.exists()
    client.get("/app/sequences/")
    token = client.cookies["csrftoken"].value
    assert client.post(f"/app/sequences/{sequence.pk}/activate", {"csrfmiddlewaretoken": token}).status_code == 302
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.ACTIVE


# Pages ------------------------------------------------------------------------------------------


def test_dashboard_numbers_come_from_the_data(ui_client, workspace, other_workspace):
    now = timezone.now()
    subscriber = SubscriberFactory(workspace=workspace)
    SubscriberFactory(workspace=workspace, status="unsubscribed")
    SubscriberFactory(workspace=other_workspace)
    for event_type, count in [(EventType.SENT, 3), (EventType.OPENED, 2), (EventType.CLICKED, 1)]:
        for _ in range(count):
            Event.objects.create(workspace=workspace, subscriber=subscriber, type=event_type, name=event_type)
    Event.objects.create(
        workspace=workspace,
        subscriber=subscriber,
        type=EventType.SENT,
        name="sent",
        occurred_at=now - timedelta(days=8),
    )
    Event.objects.create(workspace=other_workspace, type=EventType.SENT, name="sent")
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    EnrollmentFactory(sequence=sequence, subscriber=subscriber)
    numbers = ui_client().get("/app/").context["numbers"]
    assert numbers == {
        "subscribers_active": 1, "sent": 3, "opened": 2, "clicked": 1,
        "sequences_active": 1, "enrollments_active": 1, "campaigns_running": 0,
    }  # fmt: skip


def test_subscriber_list_searches_filters_and_paginates(ui_client, workspace):
    client = ui_client(Role.VIEWER)
    tag = TagFactory(workspace=workspace, name="vip")
    mailing_list = MailingListFactory(workspace=workspace, name="News")
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="Ada")
    ada.tags.add(tag)
    grace = SubscriberFactory(workspace=workspace, email="grace@example.org", first_name="Grace", status="bounced")
    grace.list_memberships.create(mailing_list=mailing_list)
    for i in range(30):
        SubscriberFactory(workspace=workspace, email=f"bulk{i}@example.org", first_name="Bulk")

    def emails(query: str) -> set[str]:
        response = client.get(f"/app/subscribers/?{query}")
        assert response.status_code == 200
        return {s.email for s in response.context["page"]}

    assert emails("search=grace") == {"grace@example.org"}
    assert emails("search=Ada") == {"ada@example.org"}
    assert emails("status=bounced") == {"grace@example.org"}
    assert emails(f"tag={tag.pk}") == {"ada@example.org"}
    assert emails(f"list={mailing_list.pk}") == {"grace@example.org"}
    ada.list_memberships.create(mailing_list=mailing_list, status="unsubscribed")
    assert emails(f"list={mailing_list.pk}") == {"ada@example.org", "grace@example.org"}
    assert emails(f"list={mailing_list.pk}&list_status=subscribed") == {"grace@example.org"}
    assert emails(f"list={mailing_list.pk}&list_status=unsubscribed") == {"ada@example.org"}
    assert len(emails("")) == 25
    assert len(emails("page=2")) == 7
    assert emails("status=nonsense") == set()  # a bad filter shows nothing, never everything


def test_subscriber_list_filters_by_a_saved_segment(ui_client, workspace):
    from subscribers.segments import segment_create

    FieldDefinitionFactory(workspace=workspace, key="plan", label="Plan")
    SubscriberFactory(workspace=workspace, email="in@example.org", attributes={"plan": "pro"})
    SubscriberFactory(workspace=workspace, email="out@example.org", attributes={"plan": "free"})
    segment = segment_create(
        workspace=workspace, name="Pro", rules={"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}
    )
    response = ui_client().get(f"/app/subscribers/?segment={segment.pk}")
    assert {s.email for s in response.context["page"]} == {"in@example.org"}


def test_export_streams_the_filtered_subscribers_as_csv(ui_client, workspace, other_workspace):
    SubscriberFactory(workspace=workspace, email="ada@example.org")
    SubscriberFactory(workspace=workspace, email="grace@example.org", first_name="Grace")
    SubscriberFactory(workspace=other_workspace, email="theirs@globex.test")
    response = ui_client(Role.VIEWER).get("/app/subscribers/export.csv?search=ada")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["email"] for row in rows] == ["ada@example.org"]


def test_profile_shows_lists_tags_fields_and_a_timeline_of_events_and_messages(ui_client, workspace):
    subscriber = SubscriberFactory(workspace=workspace, email="ada@example.org", attributes={"plan": "pro"})
    subscriber.tags.add(TagFactory(workspace=workspace, name="vip"))
    subscriber.list_memberships.create(mailing_list=MailingListFactory(workspace=workspace, name="Weekly news"))
    MessageFactory(workspace=workspace, subscriber=subscriber, subject="Welcome aboard")
    Event.objects.create(workspace=workspace, subscriber=subscriber, type=EventType.CUSTOM, name="order_placed")
    page = ui_client(Role.VIEWER).get(f"/app/subscribers/{subscriber.pk}/").content.decode()
    for text in ["ada@example.org", "vip", "Weekly news", "plan", "pro", "Welcome aboard", "order_placed"]:
        assert text in page, text


def test_import_page_queues_the_import_and_shows_progress_then_the_bad_rows(
    ui_client, workspace, django_capture_on_commit_callbacks
):
    client = ui_client(Role.MARKETER)
    content = b"email,first_name\nada@example.org,Ada\nnot-an-email,Bad\ngrace@example.org,Grace\n"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/app/subscribers/import/",
            {"file": SimpleUploadedFile("people.csv", content, content_type="text/csv"), "tags": "imported, csv"},
        )
    assert response.status_code == 302
    assert len(callbacks) == 1  # queued once, after commit
    job = ImportJob.objects.get()
    assert response["Location"] == f"/app/subscribers/imports/{job.pk}/"
    pending = client.get(f"/app/subscribers/imports/{job.pk}/progress").content.decode()
    assert 'hx-trigger="every 1s"' in pending  # still polling
    import_job_run(import_job_id=job.pk)
    done = client.get(f"/app/subscribers/imports/{job.pk}/progress").content.decode()
    assert "hx-trigger" not in done  # finished: polling stops
    assert "not-an-email" in done and "Download the bad-row report" in done
    report = client.get(f"/app/subscribers/imports/{job.pk}/errors.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert [row["email"] for row in rows] == ["not-an-email"]


def test_an_import_without_an_email_column_names_the_problem(ui_client):
    client = ui_client(Role.MARKETER)
    upload = SimpleUploadedFile("people.csv", b"name\nAda\n", content_type="text/csv")
    response = client.post("/app/subscribers/import/", {"file": upload})
    assert response.status_code == 200
    assert "No column looks like an email address" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_sequence_controls_go_through_the_services_and_step_numbers_come_from_the_event_log(ui_client, workspace):
    client = ui_client(Role.MARKETER)
    sequence = SequenceFactory(workspace=workspace, name="Welcome")
    first, second = StepFactory(sequence=sequence), StepFactory(sequence=sequence)
    empty = SequenceFactory(workspace=workspace, name="Empty")
    for step, event_type, count in [
        (first, EventType.SENT, 4),
        (first, EventType.OPENED, 2),
        (second, EventType.BOUNCED, 1),
    ]:
        for _ in range(count):
            Event.objects.create(
                workspace=workspace, type=event_type, name=event_type, sequence_id=sequence.pk, step_id=step.pk
            )
    response = client.get("/app/sequences/")
    steps = {item["step"].pk: item["numbers"] for row in response.context["rows"] for item in row["steps"]}
    assert steps[first.pk] == {"sent": 4, "opened": 2, "clicked": 0, "unsubscribed": 0, "bounced": 0}
    assert steps[second.pk]["bounced"] == 1 and steps[second.pk]["sent"] == 0

    client.post(f"/app/sequences/{sequence.pk}/activate")
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.ACTIVE
    client.post(f"/app/sequences/{sequence.pk}/pause")
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.PAUSED
    refused = client.post(f"/app/sequences/{empty.pk}/activate", follow=True).content.decode()
    assert "at least one step" in refused  # the service's Conflict, shown as a message
    client.post(f"/app/sequences/{sequence.pk}/archive")
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.ARCHIVED
    assert client.post(f"/app/sequences/{sequence.pk}/explode").status_code == 404


def test_settings_save_through_the_service_and_errors_name_the_field(ui_client, workspace):
    client = ui_client(Role.ADMIN)
    form = client.get("/app/settings/").context["form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items() if name in form.fields}
    data.update({"name": "Acme Mail", "quiet_hours_start": 21, "quiet_hours_end": 8, "sending_rate_per_second": 5})
    data.pop("track_opens")
    assert client.post("/app/settings/", data).status_code == 302
    workspace.refresh_from_db()
    assert (workspace.name, workspace.quiet_hours_start, workspace.quiet_hours_end) == ("Acme Mail", 21, 8)
    assert workspace.sending_rate_per_second == 5 and workspace.track_opens is False

    data.update({"quiet_hours_end": ""})
    response = client.post("/app/settings/", data)
    assert response.status_code == 400
    assert response.context["form"].errors["quiet_hours_end"]
    data.update({"quiet_hours_end": 8, "time_zone": "Mars/Olympus"})
    response = client.post("/app/settings/", data)
    assert response.status_code == 400 and response.context["form"].errors["time_zone"]
    workspace.refresh_from_db()
    assert workspace.time_zone == "UTC"


def test_an_api_key_secret_is_shown_once_and_the_key_can_be_revoked(ui_client, workspace):
    client = ui_client(Role.ADMIN)
    response = client.post("/app/settings/api-keys/", {"key-name": "Zapier", "key-scope": "write"})
    assert response.status_code == 200
    secret = response.context["new_secret"]
    assert secret in response.content.decode() and response["Cache-Control"] == "no-store"
    key = api_key_authenticate(secret=secret)
    assert key.workspace == workspace and key.name == "Zapier"
    assert secret not in client.get("/app/settings/").content.decode()  # never again
    assert client.post(f"/app/settings/api-keys/{key.pk}/revoke").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    bad = client.post("/app/settings/api-keys/", {"key-name": " ", "key-scope": "read"})
    assert bad.status_code == 400 and bad.context["key_form"].errors["name"]


def test_settings_list_the_workspace_webhooks_without_their_secret(ui_client, workspace, other_workspace):
    from automation.models import WebhookEndpoint

    mine = WebhookEndpoint.objects.create(workspace=workspace, url="https://hooks.acme.test/in", event_types=["opened"])
    WebhookEndpoint.objects.create(workspace=other_workspace, url="https://hooks.globex.test/in", event_types=["*"])
    page = ui_client(Role.VIEWER).get("/app/settings/").content.decode()
    assert "https://hooks.acme.test/in" in page and "opened" in page
    assert "hooks.globex.test" not in page
    assert mine.secret not in page


def test_the_timeline_reads_names_and_changes_not_ids(workspace):
    from sequences.models import SequenceStatus
    from subscribers.services import subscriber_tags_add, subscriber_update
    from tests.factories import SequenceFactory
    from ui.selectors import subscriber_timeline

    FieldDefinitionFactory(workspace=workspace, key="plan", label="Plan")
    subscriber = SubscriberFactory(workspace=workspace, attributes={"plan": "free"})
    subscriber_update(workspace=workspace, subscriber=subscriber, attributes={"plan": "pro"})
    subscriber_tags_add(workspace=workspace, subscriber=subscriber, names=["vip"])
    sequence = SequenceFactory(workspace=workspace, name="Onboarding", status=SequenceStatus.ACTIVE)
    Event.objects.create(
        workspace=workspace, subscriber=subscriber, type=EventType.EXITED, sequence_id=sequence.pk,
        properties={"enrollment_id": 7, "reason": "goal reached"},
    )  # fmt: skip

    details = {entry.title: entry.detail for entry in subscriber_timeline(workspace=workspace, subscriber=subscriber)}

    assert details["Field changed"] == "plan: free → pro"
    assert details["Tag added"] == "vip"
    assert details["Exited"] == "sequence Onboarding, reason: goal reached"


def test_a_new_workspaces_dashboard_shows_getting_started_until_every_step_is_done(ui_client, workspace):
    from tests.factories import EnrollmentFactory, SequenceFactory, StepFactory, TemplateFactory

    workspace.from_email = ""
    workspace.save(update_fields=["from_email"])
    client = ui_client(Role.MARKETER)

    def steps() -> list[tuple[str, bool]]:
        return [(step.label, step.done) for step in client.get("/app/").context["getting_started"]]

    page = client.get("/app/").content.decode()
    assert "Getting started" in page and 'href="/app/subscribers/import/"' in page
    assert [done for _, done in steps()] == [False, False, False, False, False]

    workspace.from_email = "hello@acme.test"
    workspace.save(update_fields=["from_email"])
    subscriber = SubscriberFactory(workspace=workspace)
    template = TemplateFactory(workspace=workspace)
    sequence = SequenceFactory(workspace=workspace, status=SequenceStatus.ACTIVE)
    assert [done for _, done in steps()] == [True, True, True, False, False]  # a sequence without steps
    step = StepFactory(sequence=sequence, template=template, position=1)
    assert [done for _, done in steps()] == [True, True, True, True, False]

    EnrollmentFactory(sequence=sequence, subscriber=subscriber, current_step=step)
    assert steps() == [] and "Getting started" not in client.get("/app/").content.decode()
