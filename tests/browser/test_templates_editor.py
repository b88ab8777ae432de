"""The template editor in a real browser: create a template, see its sandboxed preview, switch widths,
send a test; at 375 px nothing scrolls sideways. Any console error or CSP violation fails (conftest.py)."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import Role
from sequences.models import Template
from tests.browser.conftest import log_in, screenshot
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = "marketer@example.com", "browser-pass-1"


def test_create_preview_switch_width_and_send_a_test(page, workspace, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    MembershipFactory(
        workspace=workspace, user=UserFactory(username=EMAIL, email=EMAIL, password=PASSWORD), role=Role.MARKETER
    )
    log_in(page, EMAIL, PASSWORD)
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Welcome")
    page.get_by_label("Subject").fill("Hi {{ subscriber.first_name }}")
    page.get_by_label("HTML").fill("<p>Bad {% if %}</p>")
    page.get_by_role("button", name="Save").click()
    assert page.locator(".has-error", has_text="line 1").is_visible()
    # The refused form answers 400 like the other UI forms; Chromium logs that status as a console error.
    page.problems[:] = [p for p in page.problems if "status of 400 (Bad Request)" not in p]
    page.get_by_label("HTML").fill('<p style="color: #333">Hello {{ subscriber.first_name }}</p>')
    page.get_by_role("button", name="Save").click()
    assert page.get_by_text("Saved Welcome.").is_visible()
    assert Template.objects.filter(workspace=workspace, name="Welcome").exists()

    frame = page.frame_locator("iframe[title='Preview of Welcome']")
    assert frame.locator("p").inner_text() == "Hello Jane"
    wrapper = page.locator("#preview-frame")
    assert page.locator("iframe").evaluate("f => f.getBoundingClientRect().width") == 600
    page.get_by_role("button", name="Mobile").click()
    assert "mobile" in wrapper.get_attribute("class")
    assert page.locator("iframe").evaluate("f => f.getBoundingClientRect().width") == 375
    screenshot(page, "template-editor")

    assert page.get_by_label("Send a test to").input_value() == EMAIL
    page.get_by_role("button", name="Send test").click()
    assert page.get_by_text(f"Test sent to {EMAIL}.").is_visible()
    assert [m.subject for m in mail.outbox] == ["[Test] Hi Jane"]

    page.set_viewport_size({"width": 375, "height": 800})
    for path in ["/app/templates/", page.url]:
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
