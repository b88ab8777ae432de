"""The template editor in a real browser: create a template, see its sandboxed preview, switch widths,
see unsaved edits in the preview as you type, send a test; at 375 px nothing scrolls sideways. Any console
error or CSP violation fails (conftest.py)."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import Role
from sequences.models import Template
from tests.browser.conftest import log_in, no_horizontal_scroll, screenshot
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = "marketer@example.com", "browser-pass-1"


def test_create_preview_switch_width_and_send_a_test(page, workspace, settings):
    from playwright.sync_api import expect  # here: without Playwright the page fixture skips first

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
    expect(page.locator(".has-error", has_text="line 1")).to_be_visible()
    # The refused form answers 400 like the other UI forms; Chromium logs that status as a console error.
    page.problems[:] = [p for p in page.problems if "status of 400 (Bad Request)" not in p]
    page.get_by_label("HTML").fill('<p style="color: #333">Hello {{ subscriber.first_name }}</p>')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved Welcome.")).to_be_visible()
    assert Template.objects.filter(workspace=workspace, name="Welcome").exists()

    frame = page.frame_locator("iframe[title='Preview of Welcome']")
    assert frame.locator("p").inner_text() == "Hello Jane"
    wrapper = page.locator("#preview-frame")
    assert page.locator("iframe").evaluate("f => f.getBoundingClientRect().width") == 600
    page.get_by_role("button", name="Mobile").click()
    assert "mobile" in wrapper.get_attribute("class")
    assert page.locator("iframe").evaluate("f => f.getBoundingClientRect().width") == 375
    screenshot(page, "template-editor")

    # Typing changes the preview without saving: the subject and the HTML (inline styles allowed in the frame).
    page.get_by_label("Subject").fill("Hello {{ subscriber.last_name }}")
    page.get_by_label("HTML").fill('<h1 style="color: #3452d1">Live {{ subscriber.first_name }}</h1>')
    live = page.frame_locator("iframe[title='Preview of Welcome']")
    expect(live.locator("h1")).to_have_text("Live Jane")
    expect(page.locator("#preview-subject")).to_have_text("Hello Doe")
    expect(page.locator("#preview-state")).to_have_text("(unsaved edits, sample subscriber)")
    assert "mobile" in wrapper.get_attribute("class")  # the width choice survives the swap
    assert page.locator("iframe").evaluate("f => f.getBoundingClientRect().width") == 375
    assert page.locator("iframe").get_attribute("sandbox") == ""
    template = Template.objects.get(workspace=workspace, name="Welcome")
    assert "Live" not in template.html and template.subject == "Hi {{ subscriber.first_name }}"
    # A bad merge tag: the error appears beside the field, the last good preview stays.
    page.get_by_label("HTML").fill("<h1>Broken {% if %}</h1>")
    expect(page.locator("#live-error-html")).to_contain_text("line 1")
    expect(live.locator("h1")).to_have_text("Live Jane")
    page.get_by_label("HTML").fill("<h1>Fixed {{ subscriber.first_name }}</h1>")
    expect(live.locator("h1")).to_have_text("Fixed Jane")
    expect(page.locator("#live-error-html")).to_be_empty()
    screenshot(page, "template-editor-live-preview")
    page.get_by_role("button", name="Desktop").click()
    assert page.locator("iframe").evaluate("f => f.getBoundingClientRect().width") == 600

    assert page.get_by_label("Send a test to").input_value() == EMAIL
    send = page.get_by_role("button", name="Send test")
    # Scrolled into view first, and a frame painted: headless Chromium otherwise hit-tests the click against
    # where the (replaced, out-of-process) preview frame was before the scroll, and the click is lost.
    send.scroll_into_view_if_needed()
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    send.click()
    expect(page.get_by_text(f"Test sent to {EMAIL}.")).to_be_visible()  # waits for the reload
    assert [m.subject for m in mail.outbox] == ["[Test] Hi Jane"]

    page.set_viewport_size({"width": 375, "height": 800})
    for path in ["/app/templates/", page.url]:
        page.goto(path)
        assert no_horizontal_scroll(page), path
