"""Lists, tags and profile editing in a real browser: create a list and a tag, add a subscriber by hand into
them, edit a custom field on the profile and see it in the profile and its timeline; at 375 px nothing
scrolls sideways. Any console error or CSP violation fails (conftest.py)."""

from __future__ import annotations

import pytest

from accounts.models import Role
from subscribers.models import FieldType, MembershipStatus, Subscriber
from tests.browser.conftest import log_in, no_horizontal_scroll, screenshot
from tests.factories import FieldDefinitionFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = "marketer@example.com", "browser-pass-1"


def test_create_list_and_tag_add_a_subscriber_and_edit_a_field(page, workspace):
    from playwright.sync_api import expect  # here: without Playwright the page fixture skips first

    MembershipFactory(
        workspace=workspace, user=UserFactory(username=EMAIL, email=EMAIL, password=PASSWORD), role=Role.MARKETER
    )
    FieldDefinitionFactory(
        workspace=workspace, key="plan", label="Plan", type=FieldType.CHOICE, choices=["free", "pro"]
    )
    log_in(page, EMAIL, PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Subscribers").click()

    page.get_by_role("link", name="Lists", exact=True).click()
    page.get_by_label("Name").fill("Weekly news")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_text("Created the list Weekly news.")).to_be_visible()
    screenshot(page, "audience-lists")

    page.get_by_role("navigation", name="Audience").get_by_role("link", name="Tags").click()
    page.get_by_label("Tag name").fill("vip")
    page.get_by_role("button", name="Create tag").click()
    expect(page.get_by_text("Created the tag vip.")).to_be_visible()

    page.get_by_role("navigation", name="Audience").get_by_role("link", name="Subscribers").click()
    page.get_by_role("link", name="Add subscriber").click()
    page.get_by_label("Email").fill("grace@example.org")
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Plan").select_option("free")
    page.get_by_label("Weekly news").check()
    page.get_by_label("Tags").fill("vip")
    screenshot(page, "subscriber-new")
    page.get_by_role("button", name="Add subscriber").click()
    expect(page.get_by_text("Added grace@example.org.")).to_be_visible()
    expect(page.locator("#profile-lists").get_by_text("Weekly news")).to_be_visible()
    expect(page.locator("#profile-tags").get_by_text("vip")).to_be_visible()

    page.get_by_role("link", name="Edit profile").click()
    page.get_by_label("Plan").select_option("pro")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Profile saved.")).to_be_visible()
    assert page.locator("#profile-fields dd").inner_text() == "pro"
    expect(page.locator(".timeline li", has_text="plan: free → pro")).to_be_visible()
    screenshot(page, "subscriber-profile-edit")

    grace = Subscriber.objects.get(workspace=workspace, email="grace@example.org")
    assert grace.attributes == {"plan": "pro"}
    assert list(grace.tags.values_list("name", flat=True)) == ["vip"]
    assert grace.list_memberships.get().status == MembershipStatus.SUBSCRIBED

    page.set_viewport_size({"width": 375, "height": 800})
    for path in ["/app/lists/", "/app/tags/", "/app/fields/", "/app/subscribers/new/", page.url]:
        page.goto(path)
        assert no_horizontal_scroll(page), path
    screenshot(page, "subscriber-profile-narrow")
