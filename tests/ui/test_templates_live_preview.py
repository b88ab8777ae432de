"""The template editor's live preview of unsaved edits: rendered through the service into a per-user,
per-workspace, per-page cache slot, served to the sandboxed iframe under the script-free CSP, with render
errors sent beside their field instead of a 500."""

from __future__ import annotations

import re

import pytest

from accounts.models import Role
from sequences.models import Template
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db

KEY = "k3y-for-this-editor_page"
PREVIEW = "/app/templates/preview/"


def draft(**parts: str) -> dict[str, str]:
    base = {"preview_key": KEY, "name": "Draft", "subject": "Hi", "preheader": "", "html": "<p>x</p>", "text": ""}
    return base | parts


def frame_src(content: bytes) -> str:
    match = re.search(r'<iframe sandbox src="([^"]+)"', content.decode())
    assert match, content
    return match.group(1)


def test_the_editor_posts_its_form_to_the_live_preview_as_the_user_types(ui_client, workspace):
    template = TemplateFactory(workspace=workspace)
    for path in ["/app/templates/new/", f"/app/templates/{template.pk}/"]:
        page = ui_client().get(path).content.decode()
        assert f'hx-post="{PREVIEW}"' in page and 'hx-trigger="input changed delay:500ms"' in page
        assert 'name="preview_key"' in page and 'hx-target="#preview-frame"' in page
        for part in ["subject", "preheader", "html", "text"]:
            assert f'id="live-error-{part}"' in page  # the slot beside each field
        assert "<iframe sandbox" in page and "allow-scripts" not in page


def test_unsaved_edits_render_into_a_sandboxed_document_and_nothing_is_saved(ui_client, workspace):
    template = TemplateFactory(workspace=workspace, html="<p>Saved</p>")
    client = ui_client()
    html = '<p style="color: red">Hello {{ subscriber.first_name }}</p><script>alert(1)</script>'
    response = client.post(PREVIEW, draft(html=html, subject="Hi {{ subscriber.first_name }}", text="Text for Jane"))
    assert response.status_code == 200 and "HX-Reswap" not in response
    body = response.content.decode()
    assert 'title="Preview of Draft"' in body
    assert '<strong id="preview-subject" hx-swap-oob="innerHTML">Hi Jane</strong>' in body
    assert "Text for Jane" in body
    assert "Hello Jane" not in body  # the email's HTML is never part of the app's page, only of the frame
    src = frame_src(response.content)
    assert src.startswith(f"/app/templates/preview/{KEY}?v=")
    document = client.get(src)
    assert document.status_code == 200
    assert b'<p style="color: red">Hello Jane</p>' in document.content
    policy = document["Content-Security-Policy"]
    assert "script-src 'none'" in policy and "default-src 'none'" in policy and "sandbox" in policy
    assert "frame-ancestors 'self'" in policy and document["X-Frame-Options"] == "SAMEORIGIN"
    assert document["Cache-Control"] == "no-store"
    # Typing on: the same slot shows the newest edit under a new version.
    newer = client.post(PREVIEW, draft(html="<p>Bye {{ subscriber.last_name }}</p>"))
    assert frame_src(newer.content) != src
    assert b"<p>Bye Doe</p>" in client.get(frame_src(newer.content)).content
    template.refresh_from_db()
    assert template.html == "<p>Saved</p>" and Template.objects.count() == 1


@pytest.mark.parametrize(
    ("parts", "field", "message"),
    [
        ({"html": "<p>{% if %}</p>"}, "html", "line 1"),
        ({"subject": "{{ x|nosuchfilter }}"}, "subject", "nosuchfilter"),
        ({"text": "{% for %}"}, "text", "line 1"),
        ({"html": "<p>{{ 4|divisibleby:0 }}</p>"}, "html", "integer modulo by zero"),  # fails at render time
    ],
)
def test_a_bad_merge_tag_is_shown_beside_its_field_and_keeps_the_last_preview(ui_client, parts, field, message):
    client = ui_client()
    response = client.post(PREVIEW, draft(**parts))
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    body = response.content.decode()
    slot = re.search(rf'<div id="live-error-{field}"[^>]*>(.*?)</div>', body, re.DOTALL)
    assert slot and message in slot.group(1), body
    assert "<iframe" not in body
    other_slots = re.findall(r'<div id="live-error-(\w+)"[^>]*>(.*?)</div>', body, re.DOTALL)
    assert {name for name, text in other_slots if text} == {field}  # the other slots are cleared


def test_a_viewer_may_preview_as_in_the_api(ui_client, workspace):
    client = ui_client(Role.VIEWER)
    response = client.post(PREVIEW, draft(html="<p>Viewer {{ subscriber.first_name }}</p>"))
    assert response.status_code == 200
    assert b"Viewer Jane" in client.get(frame_src(response.content)).content


def test_a_preview_is_only_seen_by_its_user_in_its_workspace(ui_client, workspace, other_workspace):
    mine = ui_client()
    src = frame_src(mine.post(PREVIEW, draft(html="<p>Mine</p>")).content)
    assert mine.get(src).status_code == 200
    assert ui_client().get(src).status_code == 404  # a colleague with the same key
    assert ui_client(Role.OWNER, ws=other_workspace).get(src).status_code == 404
    expired = mine.get("/app/templates/preview/never-written")
    assert expired.status_code == 404 and "script-src 'none'" in expired["Content-Security-Policy"]


def test_bad_input_is_a_400_not_a_500(ui_client):
    client = ui_client()
    assert client.post(PREVIEW, draft(preview_key="")).status_code == 400
    assert client.post(PREVIEW, draft(preview_key="no spaces/or slashes")).status_code == 400
    assert client.get(PREVIEW).status_code == 405


def test_csrf_and_login_are_required(ui_client, client):
    strict = ui_client(enforce_csrf_checks=True)
    assert strict.post(PREVIEW, draft()).status_code == 403
    strict.get("/app/templates/new/")
    token = strict.cookies["csrftoken"].value
    assert strict.post(PREVIEW, {**draft(), "csrfmiddlewaretoken": token}).status_code == 200
    response = client.post(PREVIEW, draft())
    assert response.status_code == 302 and response["Location"].startswith("/app/login/")


def test_a_cache_outage_is_explained_beside_the_html_not_a_500(ui_client, monkeypatch):
    from django.core.cache import cache

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    client = ui_client()
    monkeypatch.setattr(cache, "set", down)
    response = client.post(PREVIEW, draft())
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    assert b"The live preview is unavailable right now" in response.content and b"<iframe" not in response.content
    monkeypatch.setattr(cache, "get", down)
    assert client.get(f"/app/templates/preview/{KEY}").status_code == 503


def test_the_live_preview_is_rate_limited_per_user(ui_client, monkeypatch):
    from ui import views_templates

    monkeypatch.setattr(views_templates, "LIVE_PREVIEW_RATE", "2/h")  # per hour: no window ends mid-test
    client = ui_client()
    assert [client.post(PREVIEW, draft()).has_header("HX-Reswap") for _ in range(2)] == [False, False]

    limited = client.post(PREVIEW, draft())

    assert limited["HX-Reswap"] == "none" and "<iframe" not in limited.content.decode()
    assert "Too many previews" in limited.content.decode()
    assert not ui_client().post(PREVIEW, draft()).has_header("HX-Reswap")  # another user is not limited
