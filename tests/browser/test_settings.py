"""Settings in a real browser: create a webhook and see its signing secret once, disable and enable it;
add a member and change their role; at 375 px nothing scrolls sideways. Any console error or CSP violation
fails the test (conftest.py)."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Role
from automation.models import WebhookEndpoint
from tests.browser.conftest import OWNER_EMAIL, OWNER_PASSWORD, log_in, no_horizontal_scroll, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = OWNER_EMAIL, OWNER_PASSWORD
HOOK_URL = "https://93.184.215.14/hooks/in"  # a public address: nothing to resolve, nothing is sent


def test_create_a_webhook_and_see_its_secret_once(page, owner, workspace):
    from playwright.sync_api import expect  # here: without Playwright the page fixture skips first

    log_in(page, EMAIL, PASSWORD)
    page.goto("/app/settings/")
    page.get_by_role("link", name="New webhook").click()
    page.get_by_label("URL").fill(HOOK_URL)
    page.get_by_label("Email opened (email.opened)").check()
    page.get_by_label("Email clicked (email.clicked)").check()
    page.get_by_label("Description").fill("CRM sync")
    page.get_by_role("button", name="Create webhook").click()

    secret = page.get_by_label("Signing secret").input_value()
    endpoint = WebhookEndpoint.objects.get(workspace=workspace)
    assert secret == endpoint.secret and secret.startswith("whsec_")
    assert endpoint.event_types == ["email.opened", "email.clicked"] and endpoint.description == "CRM sync"
    screenshot(page, "webhook-created")

    page.goto(f"/app/settings/webhooks/{endpoint.pk}/")  # never shown again
    assert secret not in page.content() and page.get_by_label("Signing secret").count() == 0
    page.once("dialog", lambda dialog: dialog.accept())  # the disable confirmation
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_text("Webhook disabled; its pending deliveries failed.")).to_be_visible()
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_text("Webhook enabled.")).to_be_visible()
    endpoint.refresh_from_db()
    assert endpoint.active
    page.set_viewport_size({"width": 375, "height": 800})
    assert no_horizontal_scroll(page)
    page.goto("/app/settings/webhooks/new/")
    assert no_horizontal_scroll(page)


def test_add_a_member_and_change_their_role(page, owner, workspace):
    from playwright.sync_api import expect

    log_in(page, EMAIL, PASSWORD)
    page.goto("/app/settings/")
    page.get_by_role("link", name="Manage members").click()
    form = page.locator("#add-member")
    form.get_by_label("Email").fill("ada@example.org")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_label("Password").fill("a-long-pass-1")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("Added ada@example.org as Viewer.")).to_be_visible()
    page.get_by_label("Role of ada@example.org").select_option("marketer")
    page.get_by_role("row", name="ada@example.org").get_by_role("button", name="Change role").click()
    expect(page.get_by_text("ada@example.org is now Marketer.")).to_be_visible()
    assert Membership.objects.get(workspace=workspace, user__email="ada@example.org").role == Role.MARKETER
    screenshot(page, "members")
    page.set_viewport_size({"width": 375, "height": 800})
    assert no_horizontal_scroll(page)
