"""/api/docs/ works in a browser under the site's Content-Security-Policy, and offline."""

import re

import pytest
from django.contrib.staticfiles import finders


@pytest.mark.django_db
def test_swagger_ui_loads_only_same_origin_assets_and_no_inline_script(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls
    assert all(url.startswith("/") for url in urls), urls
    assert "<script>" not in html  # an inline script would be blocked by script-src 'self'
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"  # django-csp orders directives differently per process
    assert "http" not in policy


def test_swagger_ui_assets_are_shipped_as_static_files():
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert finders.find(f"drf_spectacular_sidecar/swagger-ui-dist/{asset}"), asset


@pytest.mark.django_db
def test_swagger_ui_init_script_is_served_as_javascript(client):
    response = client.get("/api/docs/?script=")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"/api/schema/" in response.content
