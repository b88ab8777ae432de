"""The template editor pages: list, create/edit through the services, the sandboxed preview, test sends."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import Role
from sequences.models import Template
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db

FIELDS = {"name": "Welcome", "subject": "Hi {{ subscriber.first_name }}", "preheader": "", "text": ""}


def test_list_and_new_page_render_for_a_viewer_but_only_in_the_own_workspace(ui_client, workspace, other_workspace):
    TemplateFactory(workspace=workspace, name="Mine")
    TemplateFactory(workspace=other_workspace, name="Theirs")
    client = ui_client(Role.VIEWER)
    page = client.get("/app/templates/")
    assert page.status_code == 200
    assert b"Mine" in page.content and b"Theirs" not in page.content
    assert b"New template" not in page.content  # viewers get no write controls
    assert client.get("/app/templates/new/").status_code == 200


def test_create_then_edit_through_the_form(ui_client, workspace):
    client = ui_client()
    response = client.post("/app/templates/new/", {**FIELDS, "html": "<p>Hello {{ subscriber.first_name }}</p>"})
    template = Template.objects.get(workspace=workspace, name="Welcome")
    assert response.status_code == 302 and response["Location"] == f"/app/templates/{template.pk}/"
    page = client.get(f"/app/templates/{template.pk}/")
    assert page.status_code == 200
    assert b"<iframe sandbox src=" in page.content  # sandbox without allow-scripts
    assert b"allow-scripts" not in page.content
    assert b"ui/editor.css" in page.content and b"ui/editor.js" in page.content
    response = client.post(f"/app/templates/{template.pk}/", {**FIELDS, "name": "Renamed", "html": "<p>New</p>"})
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.name, template.html) == ("Renamed", "<p>New</p>")


def test_a_merge_tag_that_does_not_compile_is_shown_on_its_field(ui_client, workspace):
    client = ui_client()
    response = client.post("/app/templates/new/", {**FIELDS, "html": "<p>{% if %}</p>"})
    assert response.status_code == 400
    assert "html" in response.context["form"].errors
    assert "line 1" in response.context["form"].errors["html"][0]
    assert b"has-error" in response.content
    assert not Template.objects.exists()
    template = TemplateFactory(workspace=workspace)
    response = client.post(f"/app/templates/{template.pk}/", {**FIELDS, "subject": "{{ x|nosuchfilter }}", "html": "x"})
    assert response.status_code == 400 and "subject" in response.context["form"].errors
    # A required field left empty is the form's own error, not a 500.
    response = client.post("/app/templates/new/", {"name": "", "subject": "", "html": ""})
    assert response.status_code == 400 and {"name", "subject", "html"} <= set(response.context["form"].errors)


def test_preview_renders_the_saved_template_for_the_sample_subscriber_under_a_script_free_csp(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, html="<p>Hi {{ subscriber.first_name }}</p><script>x()</script>")
    response = ui_client(Role.VIEWER).get(f"/app/templates/{template.pk}/preview")
    assert response.status_code == 200
    assert b"<p>Hi Jane</p>" in response.content
    policy = response["Content-Security-Policy"]
    assert "script-src 'none'" in policy and "default-src 'none'" in policy and "sandbox" in policy
    assert "frame-ancestors 'self'" in policy
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    # The app's own pages keep the strict policy and may not be framed.
    page = ui_client().get(f"/app/templates/{template.pk}/")
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"] and page["X-Frame-Options"] == "DENY"


def test_test_send_goes_through_django_email_with_a_test_prefix(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, subject="Hello {{ subscriber.first_name }}")
    client = ui_client()
    page = client.get(f"/app/templates/{template.pk}/")
    assert client.user.email.encode() in page.content  # the address defaults to the user's own
    response = client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.subject == "[Test] Hello Jane" and sent.to == ["qa@example.com"]
    assert sent.from_email == "Acme <news@acme.test>"
    assert "Hi Jane" in sent.alternatives[0][0]
    # A bad address is a message, not a send and not a 500.
    client.post(f"/app/templates/{template.pk}/test", {"to": "not-an-address"})
    assert len(mail.outbox) == 1


def test_test_send_is_rate_limited_per_user(ui_client, workspace, monkeypatch):
    from ui import views_templates

    # The page's 10 a minute, counted per hour here: a fixed window ending mid-test would reset the count.
    monkeypatch.setattr(views_templates, "TEST_SEND_RATE", "10/h")
    template = TemplateFactory(workspace=workspace)
    client = ui_client()
    for _ in range(10):
        client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"})
    assert len(mail.outbox) == 10
    response = client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"}, follow=True)
    assert len(mail.outbox) == 10
    assert b"Too many test sends" in response.content
    # Another user is not affected by the first one's limit.
    ui_client().post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"})
    assert len(mail.outbox) == 11


def test_viewer_cannot_write(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, name="Keep")
    client = ui_client(Role.VIEWER)
    assert client.post("/app/templates/new/", {**FIELDS, "html": "<p>x</p>"}).status_code == 403
    assert client.post(f"/app/templates/{template.pk}/", {**FIELDS, "html": "<p>x</p>"}).status_code == 403
    assert client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"}).status_code == 403
    template.refresh_from_db()
    assert template.name == "Keep" and Template.objects.count() == 1 and not mail.outbox


def test_another_workspaces_template_is_404_everywhere(ui_client, other_workspace):
    template = TemplateFactory(workspace=other_workspace, name="Theirs")
    client = ui_client(Role.OWNER)
    for path in [f"/app/templates/{template.pk}/", f"/app/templates/{template.pk}/preview"]:
        assert client.get(path).status_code == 404, path
    assert client.post(f"/app/templates/{template.pk}/", {**FIELDS, "html": "<p>x</p>"}).status_code == 404
    assert client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"}).status_code == 404
    template.refresh_from_db()
    assert template.name == "Theirs" and not mail.outbox


def test_csrf_is_enforced(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, name="Keep")
    client = ui_client(enforce_csrf_checks=True)
    assert client.post("/app/templates/new/", {**FIELDS, "html": "<p>x</p>"}).status_code == 403
    assert client.post(f"/app/templates/{template.pk}/", {**FIELDS, "html": "<p>x</p>"}).status_code == 403
    assert client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"}).status_code == 403
    assert Template.objects.count() == 1 and not mail.outbox
    client.get("/app/templates/new/")
    token = client.cookies["csrftoken"].value
    response = client.post("/app/templates/new/", {**FIELDS, "html": "<p>x</p>", "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_login_required(client):
    for path in ["/app/templates/", "/app/templates/new/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/app/login/")


def test_a_template_that_fails_at_render_time_is_explained_not_a_500(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, html="<p>{{ 4|divisibleby:0 }}</p>")
    client = ui_client()
    response = client.get(f"/app/templates/{template.pk}/preview")
    assert response.status_code == 200 and b"integer modulo by zero" in response.content
    assert "script-src 'none'" in response["Content-Security-Policy"]
    response = client.post(f"/app/templates/{template.pk}/test", {"to": "qa@example.com"}, follow=True)
    assert b"Test send: html: integer modulo by zero" in response.content and not mail.outbox
