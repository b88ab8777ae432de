"""The local outbox backend, and the admin: compile checks, state actions, exit, and the read-only outbox."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, send_mail
from django.test import Client

from sequences.models import EnrollmentStatus, OutboxEmail, Sequence, SequenceStatus, Template
from sequences.outbox import OutboxEmailBackend
from tests.factories import EnrollmentFactory, SequenceFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def development_email_backend() -> str:
    """EMAIL_BACKEND as a fresh development process with no mail settings would have it."""
    env = {k: v for k, v in os.environ.items() if k not in {"EMAIL_URL", "SMTP_HOST", "ESP", "DJANGO_ENV"}}
    env.update(DJANGO_ENV="development", DJANGO_SETTINGS_MODULE="config.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.EMAIL_BACKEND)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def test_outbox_backend_stores_a_multipart_email():
    message = EmailMultiAlternatives(
        subject="Welcome Ada", body="Hi Ada", from_email="Acme <news@acme.test>", to=["ada@example.org"],
        cc=["cc@example.org"], headers={"List-Unsubscribe": "<https://acme.test/u/1>"},
    )  # fmt: skip
    message.attach_alternative("<p>Hi <b>Ada</b></p>", "text/html")
    assert OutboxEmailBackend().send_messages([message]) == 1
    stored = OutboxEmail.objects.get()
    assert (stored.subject, stored.to, stored.cc) == ("Welcome Ada", ["ada@example.org"], ["cc@example.org"])
    assert (stored.text, stored.html) == ("Hi Ada", "<p>Hi <b>Ada</b></p>")
    assert stored.headers["List-Unsubscribe"] == "<https://acme.test/u/1>"
    assert stored.message_id and "multipart/alternative" in stored.raw


def test_send_mail_in_development_lands_in_the_outbox(settings):
    settings.EMAIL_BACKEND = development_email_backend()
    assert settings.EMAIL_BACKEND == "sequences.outbox.OutboxEmailBackend"
    send_mail("Hello", "Plain body", "news@acme.test", ["grace@example.org"], html_message="<p>Hello</p>")
    stored = OutboxEmail.objects.get()
    assert (stored.to, stored.subject, stored.html) == (["grace@example.org"], "Hello", "<p>Hello</p>")


@pytest.fixture
def admin_client(db) -> Client:
    user = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def test_admin_refuses_a_template_that_does_not_compile(admin_client, workspace):
    response = admin_client.post(
        "/admin/sequences/template/add/",
        {"workspace": workspace.pk, "name": "Broken", "subject": "Hi", "html": "<p>\n{% endif %}"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "line 2" in response.content.decode()
    assert not Template.objects.exists()
    fine = {"workspace": workspace.pk, "name": "Fine", "subject": "Hi", "html": "<p>x</p>"}
    ok = admin_client.post("/admin/sequences/template/add/", fine)
    assert ok.status_code == 302 and Template.objects.filter(name="Fine").exists()


def test_admin_template_page_previews_it_inside_an_escaped_sandbox(admin_client, template):
    template.html = '<p class="x">Hi {{ subscriber.first_name }}</p>"><script>alert(1)</script>'
    template.save()
    body = admin_client.get(f"/admin/sequences/template/{template.pk}/change/").content.decode()
    assert "<strong>Hello Jane</strong>" in body
    assert 'srcdoc="&lt;p class=&quot;x&quot;&gt;Hi Jane&lt;/p&gt;&quot;&gt;&lt;script&gt;' in body
    assert "<script>alert(1)</script>" not in body


def test_admin_activate_action_shows_why_it_was_refused(admin_client, workspace):
    sequence = SequenceFactory(workspace=workspace, name="Empty")
    response = admin_client.post(
        "/admin/sequences/sequence/", {"action": "activate", "_selected_action": [sequence.pk]}, follow=True
    )
    assert "at least one step" in response.content.decode()
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.DRAFT


def test_admin_archive_action_calls_the_service(admin_client, active_sequence):
    enrollment = EnrollmentFactory(sequence=active_sequence)
    admin_client.post("/admin/sequences/sequence/", {"action": "archive", "_selected_action": [active_sequence.pk]})
    active_sequence.refresh_from_db()
    enrollment.refresh_from_db()
    assert (active_sequence.status, enrollment.status) == ("archived", "exited")


def test_admin_exit_selected_enrollments(admin_client, active_sequence):
    enrollment = EnrollmentFactory(sequence=active_sequence)
    admin_client.post("/admin/sequences/enrollment/", {"action": "exit_selected", "_selected_action": [enrollment.pk]})
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "exited by an admin")
    assert admin_client.get("/admin/sequences/enrollment/?q=" + enrollment.subscriber.email).status_code == 200


def test_admin_outbox_lists_and_shows_html_only_inside_a_sandbox(admin_client):
    email = OutboxEmail.objects.create(
        from_email="news@acme.test", to=["ada@example.org"], subject="Evil", text="plain part",
        html='<p>Hi</p><script>alert("x")</script>', headers={"X-Test": "1"}, raw="raw",
    )  # fmt: skip
    listing = admin_client.get("/admin/sequences/outboxemail/").content.decode()
    assert "ada@example.org" in listing and "Evil" in listing
    page = admin_client.get(f"/admin/sequences/outboxemail/{email.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert '<iframe sandbox="" srcdoc="&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;' in body
    assert '<script>alert("x")</script>' not in body
    assert "plain part" in body and "X-Test" in body
    policy = dict(part.strip().split(" ", 1) for part in page["Content-Security-Policy"].split(";"))
    assert (policy["style-src"], policy["script-src"]) == ("'self' 'unsafe-inline'", "'self'")
    assert admin_client.post(f"/admin/sequences/outboxemail/{email.pk}/change/", {"subject": "x"}).status_code == 403


def test_admin_pages_of_every_sequences_model_open(admin_client, active_sequence):
    enrollment = EnrollmentFactory(sequence=active_sequence)
    template = active_sequence.steps.first().template
    pages = [
        "/admin/sequences/template/", "/admin/sequences/template/add/",
        f"/admin/sequences/template/{template.pk}/change/",
        "/admin/sequences/sequence/", "/admin/sequences/sequence/add/",
        f"/admin/sequences/sequence/{active_sequence.pk}/change/",
        "/admin/sequences/enrollment/", f"/admin/sequences/enrollment/{enrollment.pk}/change/",
        "/admin/sequences/outboxemail/",
    ]  # fmt: skip
    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_admin_step_inline_refuses_another_workspaces_template(admin_client, active_sequence, other_template):
    step = active_sequence.steps.order_by("position").first()
    data = {
        "workspace": active_sequence.workspace_id, "name": active_sequence.name, "description": "",
        "send_days": "[0, 1, 2, 3, 4, 5, 6]", "send_start_hour": 0, "send_end_hour": 24, "re_entry": "never",
        "goal_event": "",
        "steps-TOTAL_FORMS": 1, "steps-INITIAL_FORMS": 1, "steps-MIN_NUM_FORMS": 0, "steps-MAX_NUM_FORMS": 1000,
        "steps-0-id": step.pk, "steps-0-sequence": active_sequence.pk, "steps-0-position": 1, "steps-0-name": "",
        "steps-0-template": other_template.pk, "steps-0-delay_value": 0, "steps-0-delay_unit": "days",
    }  # fmt: skip
    response = admin_client.post(f"/admin/sequences/sequence/{active_sequence.pk}/change/", data)
    assert response.status_code == 200
    assert "Pick a template of the sequence" in response.content.decode()
    step.refresh_from_db()
    assert step.template.workspace_id == active_sequence.workspace_id


def test_admin_never_deletes_an_active_sequence(admin_client, active_sequence, workspace):
    draft = SequenceFactory(workspace=workspace, name="Old draft")
    url = "/admin/sequences/sequence/"
    both = admin_client.post(
        url, {"action": "delete_selected", "_selected_action": [active_sequence.pk, draft.pk], "post": "yes"}
    )
    assert both.status_code == 403
    assert Sequence.objects.count() == 2
    admin_client.post(url, {"action": "delete_selected", "_selected_action": [draft.pk], "post": "yes"})
    assert list(Sequence.objects.values_list("name", flat=True)) == ["Onboarding"]
    assert admin_client.get(f"/admin/sequences/sequence/{active_sequence.pk}/delete/").status_code == 403
