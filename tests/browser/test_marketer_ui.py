"""The marketer UI in a real browser: log in, every main page, a CSV import, an API key shown once.

Each test fails on any console error, uncaught page error or CSP violation (see conftest.py).
"""

from __future__ import annotations

import re

import pytest

from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from sequences.models import SequenceStatus
from subscribers.models import Event, EventType, ImportJob, ImportStatus, Subscriber
from tests.browser.conftest import OWNER_EMAIL, OWNER_PASSWORD, log_in, no_horizontal_scroll, screenshot
from tests.factories import (
    MailingListFactory,
    SequenceFactory,
    StepFactory,
    SubscriberFactory,
    TagFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = OWNER_EMAIL, OWNER_PASSWORD


def test_log_in_and_visit_every_main_page(page, owner, workspace):
    from playwright.sync_api import expect  # here: without Playwright the page fixture skips first

    ada = SubscriberFactory(workspace=workspace, email="ada@example.org", attributes={})
    ada.tags.add(TagFactory(workspace=workspace, name="vip"))
    ada.list_memberships.create(mailing_list=MailingListFactory(workspace=workspace, name="Weekly news"))
    SubscriberFactory(workspace=workspace, email="grace@example.org", first_name="Grace")
    sequence = SequenceFactory(workspace=workspace, name="Welcome series")
    step = StepFactory(sequence=sequence, name="Hello")
    Event.objects.create(
        workspace=workspace, subscriber=ada, type=EventType.SENT, name="sent", sequence_id=sequence.pk, step_id=step.pk
    )

    log_in(page, EMAIL, PASSWORD)
    assert page.locator(".stat", has_text="Sent, last 7 days").locator("dd").inner_text() == "1"
    screenshot(page, "dashboard")

    page.get_by_role("link", name="Subscribers").click()
    page.get_by_label("Search email or name").fill("grace")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    # expect() waits for the page a click loads; a plain assert could read the page before it.
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("grace@example.org")
    page.get_by_role("link", name="Clear").click()
    screenshot(page, "subscribers")

    page.get_by_role("link", name="ada@example.org").click()
    expect(page.get_by_role("heading", name="ada@example.org")).to_be_visible()
    expect(page.get_by_text("Weekly news")).to_be_visible()
    expect(page.get_by_text("vip")).to_be_visible()
    screenshot(page, "subscriber-profile")

    page.get_by_role("link", name="Sequences").click()
    expect(page.get_by_role("heading", name="Sequences", exact=True)).to_be_visible()
    numbers = page.locator("tbody tr", has_text="Hello").inner_text()
    assert re.search(r"Hello\s+1 days?\s+1\s+0\s+0\s+0\s+0", numbers), numbers
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_text("Welcome series is active.")).to_be_visible()
    sequence.refresh_from_db()
    assert sequence.status == SequenceStatus.ACTIVE
    screenshot(page, "sequences")

    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    screenshot(page, "settings")

    # A narrow phone screen: the pages reflow instead of scrolling sideways.
    page.set_viewport_size({"width": 375, "height": 800})
    for path, name in [("/app/", "dashboard-375"), ("/app/subscribers/", "subscribers-375")]:
        page.goto(path)
        assert no_horizontal_scroll(page), path
        screenshot(page, name)

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/app/login/")
    page.goto("/app/subscribers/")
    assert "/app/login/" in page.url


def test_import_a_csv_and_watch_progress_and_the_bad_row_report(page, owner, workspace):
    from celery.contrib.testing.worker import start_worker
    from playwright.sync_api import expect  # here: without Playwright the page fixture skips first

    from config.celery_app import app

    log_in(page, EMAIL, PASSWORD)
    page.goto("/app/subscribers/import/")
    content = b"email,first_name\nada@example.org,Ada\nnot-an-email,Bad\ngrace@example.org,Grace\n"
    page.get_by_label("CSV file").set_input_files({"name": "people.csv", "mimeType": "text/csv", "buffer": content})
    page.get_by_label("Tags").fill("imported")
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(r"/app/subscribers/imports/\d+/$"))
    # No worker yet: the page shows the queued import and keeps polling.
    assert page.locator("[data-status]").inner_text() == "Pending"
    screenshot(page, "import-pending")
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
        # The htmx partial, polled every second, moves to the finished state without a reload.
        page.locator('[data-status="completed"]').wait_for(timeout=60_000)
    assert page.locator("progress").get_attribute("value") == "100"
    report = page.locator("table.bad-rows")
    assert report.locator("tbody tr").count() == 1
    assert "not-an-email" in report.inner_text()
    expect(page.get_by_role("link", name="Download the bad-row report (CSV)")).to_be_visible()
    screenshot(page, "import-finished")
    job = ImportJob.objects.get()
    assert (job.status, job.created_count, job.error_count) == (ImportStatus.COMPLETED, 2, 1)
    assert set(Subscriber.objects.filter(workspace=workspace).values_list("email", flat=True)) == {
        "ada@example.org",
        "grace@example.org",
    }


def test_create_an_api_key_and_see_the_secret_once(page, owner, workspace):
    log_in(page, EMAIL, PASSWORD)
    page.goto("/app/settings/")
    keys = page.locator("#api-keys")
    keys.get_by_label("Name").fill("Zapier")
    keys.get_by_label("Scope").select_option("write")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert api_key_authenticate(secret=secret).name == "Zapier"
    screenshot(page, "api-key-created")
    page.goto("/app/settings/")
    assert secret not in page.content()
    assert page.get_by_label("Secret").count() == 0
    page.once("dialog", lambda dialog: dialog.accept())  # the revoke confirmation
    page.get_by_role("button", name="Revoke").click()
    page.get_by_text("Revoked Zapier.").wait_for()
    assert ApiKey.objects.get().revoked_at is not None


def test_an_enrolled_subscribers_email_is_in_the_outbox_and_its_open_reaches_the_dashboard(
    page, owner, workspace, settings, live_server
):
    from sequences.delivery.claim import messages_claim
    from sequences.delivery.send import messages_send
    from sequences.models import OutboxEmail
    from sequences.scheduler import enrollments_process_due
    from sequences.services import sequence_enroll
    from tests.factories import TemplateFactory

    settings.EMAIL_BACKEND = "sequences.outbox.OutboxEmailBackend"
    settings.TRACKING_MACHINE_OPEN_SECONDS = 0  # the test opens it at once; count it as a person's open
    settings.PUBLIC_BASE_URL = live_server.url  # the email's pixel and links point at this server
    template = TemplateFactory(workspace=workspace, subject="Welcome aboard", html="<p>Hello <b>Ada</b></p>")
    sequence = SequenceFactory(workspace=workspace, name="Welcome", status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=0, delay_unit="minutes")
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    [enrolled] = sequence_enroll(workspace=workspace, sequence=sequence, subscriber_ids=[ada.pk])
    assert enrolled.status == "enrolled", enrolled
    assert enrollments_process_due().messages_created == 1  # a first step without delay is due at once
    ids = messages_claim(worker="browser", limit=10, lease_seconds=300)
    assert messages_send(message_ids=ids, worker="browser").outcomes == {ids[0]: "sent"}

    log_in(page, EMAIL, PASSWORD)
    page.get_by_role("link", name="Outbox").click()
    with page.expect_response(lambda response: "/t/o/" in response.url) as pixel:  # the frame loads it
        page.get_by_role("link", name="Welcome aboard").click()
    assert pixel.value.ok
    assert "ada@example.org" in page.locator("dl.facts").inner_text()
    frame = page.frame_locator("iframe.email-frame")
    assert frame.locator("b").inner_text() == "Ada"
    screenshot(page, "outbox-email")

    # Showing the email in the frame loaded its open pixel, as a mail client would: the dashboard
    # counts the open (read from the event log on the next page view).
    stored = OutboxEmail.objects.get(subject="Welcome aboard")
    assert re.search(r'src="[^"]*/t/o/[^"]+"', stored.html)
    page.get_by_role("link", name="Dashboard").click()
    assert page.locator(".stat", has_text="Opened, last 7 days").locator("dd").inner_text() == "1"
