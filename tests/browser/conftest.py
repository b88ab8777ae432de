"""Playwright with Debian's Chromium: skipped where either is missing, except in CI (CI=true), where that fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

# Records CSP violations on every page, before any of the page's own scripts run.
CSP_RECORDER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} `
    + `at ${event.sourceFile || document.location.href}:${event.lineNumber}`);
});
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


# Module scope: the browser (and DJANGO_ALLOW_ASYNC_UNSAFE below) must not outlive these tests; a
# subprocess started by a later test would inherit the variable (`check --deploy` refuses it).
@pytest.fixture(scope="module")
def chromium(django_db_setup) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -r requirements-dev.txt)")
    # Playwright's sync API keeps an event loop running in this thread while the browser is open, and
    # Django's ORM refuses to run beside one unless told it is safe. It is: the test thread does one thing
    # at a time (the live server and the Celery worker have threads of their own).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Problems(list):
    """Console errors, uncaught page errors and CSP violations seen during a test: each one fails it."""


class Tabs:
    """A browser context whose pages all record their problems in one list (tabs share the login)."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.problems = Problems()
        context.expose_function("__reportCspViolation", lambda text: self.problems.append(f"CSP violation: {text}"))
        context.add_init_script(CSP_RECORDER)

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("console", lambda message: message.type == "error" and self.problems.append(f"console: {message.text}"))
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.set_default_timeout(15_000)
        page.problems = self.problems
        return page


@contextmanager
def browser_tabs(chromium: Any, base_url: str) -> Iterator[Tabs]:
    """Tabs on `base_url`; leaving the block fails the test if any page had a problem."""
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    tabs = Tabs(context)
    try:
        yield tabs
    finally:
        context.close()
    assert not tabs.problems, "\n".join(tabs.problems)


@pytest.fixture
def page(chromium, live_server) -> Iterator[Any]:
    with browser_tabs(chromium, live_server.url) as tabs:
        yield tabs.new_page()


def screenshot(page: Any, name: str) -> None:
    """Kept under var/screenshots/ (gitignored) as artifacts of the run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, email: str, password: str) -> None:
    page.goto("/app/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/app/")


def no_horizontal_scroll(page: Any) -> bool:
    """Nothing wider than the viewport: the page reflows on a narrow screen instead of scrolling sideways."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


OWNER_EMAIL, OWNER_PASSWORD = "owner@example.com", "browser-pass-1"


@pytest.fixture
def owner(workspace):
    """The workspace's owner, who logs in with OWNER_EMAIL and OWNER_PASSWORD."""
    from accounts.models import Role
    from tests.factories import MembershipFactory, UserFactory

    user = UserFactory(username=OWNER_EMAIL, email=OWNER_EMAIL, password=OWNER_PASSWORD)
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    return user
