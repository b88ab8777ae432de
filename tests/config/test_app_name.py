"""APP_NAME names the product in the admin and the API docs."""

import pytest


@pytest.mark.django_db
def test_admin_and_api_docs_carry_the_app_name(admin_client, settings):
    assert settings.APP_NAME in admin_client.get("/admin/").content.decode()
    assert f"{settings.APP_NAME} API" in admin_client.get("/api/schema/").content.decode()
