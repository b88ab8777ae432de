"""The segment builder in a real browser: two conditions (the second added with htmx), a refused preview
shown beside its row, the matching count, save, and the list's count; at 375 px nothing scrolls sideways.
Any console error or CSP violation fails (conftest.py)."""

from __future__ import annotations

import json
import re

import pytest

from accounts.models import Role
from subscribers.models import FieldType, Segment, SubscriberStatus
from tests.browser.conftest import log_in, no_horizontal_scroll, screenshot
from tests.factories import FieldDefinitionFactory, MembershipFactory, SubscriberFactory, TagFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = "marketer@example.com", "browser-pass-1"


def settled(page) -> None:
    """Wait until htmx has settled what it swapped in: only then are the new inputs' hx- attributes live
    (a person cannot act within htmx's 20 ms settle delay; a test can)."""
    page.locator(".htmx-added, .htmx-settling, .htmx-request").first.wait_for(state="detached")


def test_build_preview_and_save_a_two_condition_segment(page, workspace):
    from playwright.sync_api import expect  # here: without Playwright the page fixture skips first

    MembershipFactory(
        workspace=workspace, user=UserFactory(username=EMAIL, email=EMAIL, password=PASSWORD), role=Role.MARKETER
    )
    vip = TagFactory(workspace=workspace, name="vip")
    for i in range(3):
        SubscriberFactory(workspace=workspace, email=f"vip{i}@example.org").tags.add(vip)
    SubscriberFactory(workspace=workspace, status=SubscriberStatus.UNSUBSCRIBED).tags.add(vip)
    SubscriberFactory(workspace=workspace, email="plain@example.org")

    log_in(page, EMAIL, PASSWORD)
    page.get_by_role("link", name="Subscribers").click()
    page.get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Name").fill("Active VIPs")
    rows = page.locator(".seg-row")
    rows.nth(0).get_by_label("Status is any of").select_option("active")
    page.get_by_role("button", name="Add condition", exact=True).click()
    rows.nth(1).wait_for()
    settled(page)
    rows.nth(1).get_by_label("Condition", exact=True).select_option("tag")
    tags = rows.nth(1).get_by_label("Has any of the tags")
    tags.wait_for()
    settled(page)

    # No tag chosen yet: the service's error appears beside the second row, nowhere else.
    page.get_by_role("button", name="Preview").click()
    rows.nth(1).locator(".seg-error p").wait_for()
    assert rows.nth(1).locator(".seg-error").inner_text().startswith("tag: ")
    assert rows.nth(0).locator(".seg-error").inner_text() == ""

    tags.select_option(label="vip")
    page.get_by_role("button", name="Preview").click()
    page.locator("#segment-count").wait_for()
    assert page.locator("#segment-count").inner_text() == "3"
    assert rows.nth(1).locator(".seg-error").inner_text() == ""
    expect(page.get_by_role("link", name="vip0@example.org")).to_be_visible()
    assert not page.get_by_text("plain@example.org").count()
    screenshot(page, "segment-builder")

    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Saved segment Active VIPs.")).to_be_visible()
    segment = Segment.objects.get(workspace=workspace, name="Active VIPs")
    assert segment.rules == {"all": [{"status": ["active"]}, {"tag": [vip.pk]}]}

    page.get_by_role("link", name="All segments").click()
    row = page.get_by_role("row", name="Active VIPs")
    assert row.get_by_role("cell").nth(2).inner_text() == "3"
    screenshot(page, "segments")

    page.set_viewport_size({"width": 375, "height": 800})
    for path, name in [("/app/segments/", "segments-375"), (f"/app/segments/{segment.pk}/", "segment-builder-375")]:
        page.goto(path)
        assert no_horizontal_scroll(page), path
        screenshot(page, name)


def test_a_group_and_the_json_round_trip(page, workspace):
    from playwright.sync_api import expect  # here: without Playwright the module must still import

    MembershipFactory(
        workspace=workspace, user=UserFactory(username=EMAIL, email=EMAIL, password=PASSWORD), role=Role.MARKETER
    )
    FieldDefinitionFactory(workspace=workspace, key="plan", label="Plan", type=FieldType.TEXT)
    SubscriberFactory(workspace=workspace, attributes={"plan": "pro"})
    SubscriberFactory(workspace=workspace, attributes={"plan": "free"})
    SubscriberFactory(workspace=workspace, attributes={"plan": "team"}, status=SubscriberStatus.BOUNCED)

    log_in(page, EMAIL, PASSWORD)
    page.goto("/app/segments/new/")
    page.get_by_label("Name").fill("Paying")
    first = page.locator(".seg-row").nth(0)
    kind = first.get_by_label("Condition", exact=True)
    kind_id = kind.get_attribute("id")
    kind.focus()
    page.keyboard.press("ArrowDown")  # Status -> Custom field, by keyboard: the row is re-rendered
    first.get_by_label("Field").wait_for()
    settled(page)
    assert page.evaluate("document.activeElement.id") == kind_id  # and the focus stayed on the kind
    first.get_by_label("Operator").select_option("in")
    first.get_by_label("Values (comma-separated)").fill("pro, team")
    settled(page)

    page.get_by_role("button", name="Add group").click()
    group = page.locator(".seg-group")
    group.wait_for()
    settled(page)
    group.get_by_label("Matches").select_option("any")
    group.get_by_label("Status is any of").select_option("active")

    page.get_by_text("Advanced: edit as JSON").click()
    page.get_by_role("button", name="Show the editor's rules as JSON").click()
    expect(page.get_by_label("Rules as JSON")).to_have_value(re.compile('"pro"'))
    tree = json.loads(page.get_by_label("Rules as JSON").input_value())
    assert tree == {
        "all": [{"attribute": "plan", "op": "in", "value": ["pro", "team"]}, {"any": [{"status": ["active"]}]}]
    }
    tree["all"][1]["any"].append({"status": ["bounced"]})
    page.get_by_label("Rules as JSON").fill(json.dumps(tree))
    page.get_by_role("button", name="Load this JSON into the editor").click()
    page.locator(".seg-group .seg-row").nth(1).wait_for()
    settled(page)

    page.get_by_role("button", name="Preview").click()
    page.locator("#segment-count").wait_for()
    assert page.locator("#segment-count").inner_text() == "2"
    screenshot(page, "segment-builder-group")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Saved segment Paying.")).to_be_visible()
    assert Segment.objects.get(name="Paying").rules == tree
