"""The foundation's promise, end to end: an integrator with a JWT or an API key creates subscribers, a
template and a sequence with steps, activates it, enrolls subscribers, and never sees another
workspace's data. Only real credentials are used (no force_authenticate)."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from sequences.models import Enrollment

pytestmark = pytest.mark.django_db


@pytest.fixture
def integrator() -> APIClient:
    call_command("create_workspace", name="Acme", owner_email="owner@acme.test", password="s3cret-pass-phrase")
    call_command("create_workspace", name="Globex", owner_email="owner@globex.test", password="s3cret-pass-phrase")
    client = APIClient()
    token = client.post("/api/v1/auth/token", {"username": "owner@acme.test", "password": "s3cret-pass-phrase"})
    assert token.status_code == 200, token.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    return client


def test_integrator_builds_activates_and_enrolls_with_a_jwt_then_an_api_key(integrator):
    key = integrator.post("/api/v1/api-keys", {"name": "crm", "scope": "write"})
    assert key.status_code == 201, key.content
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.json()["key"])

    bulk = client.post(
        "/api/v1/subscribers/bulk",
        {"subscribers": [{"email": "ada@example.org", "first_name": "Ada"}, {"email": "not-an-email"}]},
        format="json",
    )
    assert bulk.status_code == 200, bulk.content
    statuses = [item["status"] for item in bulk.json()["results"]]
    assert statuses[0] == "created" and statuses[1] == "error"
    grace = client.post("/api/v1/subscribers", {"email": "Grace@Example.org", "time_zone": "Europe/Berlin"})
    assert grace.status_code == 201, grace.content

    template = client.post(
        "/api/v1/templates",
        {"name": "Welcome", "subject": "Hi {{ subscriber.first_name|default:'there' }}", "html": "<p>Welcome!</p>"},
    )
    assert template.status_code == 201, template.content
    sequence = client.post(
        "/api/v1/email-sequences",
        {
            "name": "Onboarding",
            "steps": [
                {"template": template.json()["id"], "delay_value": 0, "delay_unit": "minutes"},
                {"template": template.json()["id"], "delay_value": 2, "delay_unit": "days"},
            ],
        },
        format="json",
    )
    assert sequence.status_code == 201, sequence.content
    sequence_id = sequence.json()["id"]
    assert len(sequence.json()["steps"]) == 2

    activated = client.post(f"/api/v1/email-sequences/{sequence_id}/activate")
    assert activated.status_code == 200 and activated.json()["status"] == "active"
    enrolled = client.post(
        f"/api/v1/email-sequences/{sequence_id}/enroll",
        {"subscriber_ids": [grace.json()["id"]], "emails": ["ada@example.org", "nobody@example.org"]},
        format="json",
    )
    assert enrolled.status_code == 200, enrolled.content
    assert [r["status"] for r in enrolled.json()["results"]] == ["enrolled", "enrolled", "not_found"]
    assert Enrollment.objects.filter(sequence_id=sequence_id, status="active").count() == 2

    # The other workspace's owner sees none of it, and cannot reach it by id.
    outsider = APIClient()
    token = outsider.post("/api/v1/auth/token", {"username": "owner@globex.test", "password": "s3cret-pass-phrase"})
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    assert outsider.get("/api/v1/subscribers").json()["results"] == []
    assert outsider.get("/api/v1/email-sequences").json()["results"] == []
    assert outsider.get(f"/api/v1/email-sequences/{sequence_id}").status_code == 404
    assert outsider.get(f"/api/v1/subscribers/{grace.json()['id']}").status_code == 404
    assert outsider.post(f"/api/v1/email-sequences/{sequence_id}/pause").status_code == 404
