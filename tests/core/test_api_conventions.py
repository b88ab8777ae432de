"""The API's shared conventions: JSON errors with the right status, never an HTML page or a 500 leak."""

import json

import pytest
from django.urls import path
from rest_framework.decorators import api_view, permission_classes

from core.errors import Conflict, ValidationFailed

pytestmark = pytest.mark.django_db


@api_view(["GET"])
@permission_classes([])
def _raises_conflict(request):
    raise Conflict("The sequence has no steps.", code="sequence_empty", details={"steps": 0})


@api_view(["GET"])
@permission_classes([])
def _raises_field_error(request):
    raise ValidationFailed.for_field("email", "Enter a valid email address.")


def _crashes(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("api/v1/test/conflict", _raises_conflict),
    path("api/v1/test/field", _raises_field_error),
    path("api/v1/test/crash", _crashes),
]


def test_unknown_api_path_answers_json_404(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_malformed_json_answers_400_parse_error(api):
    response = api.post("/api/v1/members", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_wrong_method_answers_405_in_the_error_format(api):
    response = api.put("/api/v1/api-keys", {})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_validation_error_names_the_field_in_message_and_details(api):
    response = api.post("/api/v1/members", {"email": "not-an-email", "role": "viewer"})
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    assert body["message"].startswith("email:")
    assert "email" in body["details"]


def test_body_over_the_limit_answers_413_before_parsing(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api.post("/api/v1/members", data=json.dumps({"email": "a" * 5000}), content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.urls("tests.core.test_api_conventions")
def test_application_errors_map_to_status_code_and_details(client):
    response = client.get("/api/v1/test/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "sequence_empty", "message": "The sequence has no steps.", "details": {"steps": 0}}
    }
    response = client.get("/api/v1/test/field")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"email": ["Enter a valid email address."]}


@pytest.mark.urls("tests.core.test_api_conventions")
def test_unexpected_exception_on_api_path_is_a_json_500_without_internals(client):
    client.raise_request_exception = False
    response = client.get("/api/v1/test/crash")
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "server_error",
        "message": "An unexpected error occurred.",
        "details": None,
    }
    assert "boom" not in response.content.decode()
