"""No input makes a subscribers endpoint fail with a 500: generated JSON bodies, query strings and files."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.sampled_from(["", "ada@example.org", "Europe/Paris", "\x00", "\ud800", "2026-01-01", "pro", "1e999"])
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
KEYS = [
    "email", "first_name", "last_name", "attributes", "time_zone", "locale", "list_ids", "tags", "subscribers",
    "update_existing", "list_id", "events", "subscriber_id", "name", "properties", "occurred_at", "dedupe_key",
    "revenue", "currency", "create_subscriber", "subscriber_ids", "emails", "key", "label", "type", "choices",
    "kind", "value", "reason", "description", "double_opt_in", "consent_ip", "consent_at", "confirmed_at",
]  # fmt: skip
bodies = json_values | st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, json_values))
item_bodies = st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, json_values)).map(
    lambda item: {"subscribers": [item], "events": [item], **item}
)

PATHS = [
    ("post", "/api/v1/subscribers"),
    ("patch", "/api/v1/subscribers/{subscriber}"),
    ("post", "/api/v1/subscribers/bulk"),
    ("post", "/api/v1/subscribers/{subscriber}/unsubscribe"),
    ("post", "/api/v1/subscribers/{subscriber}/lists"),
    ("post", "/api/v1/subscribers/{subscriber}/tags"),
    ("post", "/api/v1/lists"),
    ("patch", "/api/v1/lists/{list}"),
    ("post", "/api/v1/lists/{list}/members"),
    ("delete", "/api/v1/lists/{list}/members"),
    ("post", "/api/v1/tags"),
    ("post", "/api/v1/fields"),
    ("post", "/api/v1/suppressions"),
    ("post", "/api/v1/events"),
]


@pytest.fixture
def ids(workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan", type="choice", choices=["free", "pro"])
    FieldDefinitionFactory(workspace=workspace, key="seats", type="number")
    FieldDefinitionFactory(workspace=workspace, key="signup", type="datetime")
    return {
        "subscriber": SubscriberFactory(workspace=workspace, email="ada@example.org").pk,
        "list": MailingListFactory(workspace=workspace).pk,
    }


@pytest.mark.parametrize(("method", "path"), PATHS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(body=bodies | item_bodies)
def test_generated_json_bodies_never_cause_a_500(api, ids, method, path, body):
    # Encoded here, with escapes, as a real client would: the test client's renderer cannot encode surrogates.
    response = api.generic(method.upper(), path.format(**ids), json.dumps(body), content_type="application/json")
    assert response.status_code < 500, (body, response.content)
    assert response.status_code in (200, 201, 204) or "error" in response.json()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "list", "tag", "search", "created_after", "created_before", "type", "name",
                         "subscriber", "occurred_after", "occurred_before", "cursor", "page_size", "list_status"]),
        st.text(max_size=30) | st.integers(min_value=-(10**30), max_value=10**30).map(str),
    ),
    path=st.sampled_from(["/api/v1/subscribers", "/api/v1/subscribers/export", "/api/v1/events",
                          "/api/v1/subscribers/{subscriber}/events", "/api/v1/lists/{list}/members"]),
)  # fmt: skip
def test_generated_query_strings_never_cause_a_500(api, ids, params, path):
    response = api.get(path.format(**ids), params)
    assert response.status_code < 500, (params, response.content)
    if response.streaming:
        b"".join(response.streaming_content)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(lambda text: ("email,first_name\n" + text).encode()))
def test_generated_csv_uploads_never_cause_a_500_nor_a_crashed_import(api, ids, content):
    from subscribers.imports import import_job_run
    from subscribers.models import ImportJob, ImportStatus

    response = api.post("/api/v1/imports", {"file": SimpleUploadedFile("g.csv", content)}, format="multipart")
    assert response.status_code in (202, 400), (content, response.content)
    if response.status_code == 202:
        job = import_job_run(import_job_id=response.json()["id"])
        assert job.status == ImportStatus.COMPLETED, (content, job.failure_reason)
        assert job.processed_rows == job.created_count + job.updated_count + job.skipped_count + job.error_count
        assert ImportJob.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/fields", {"key": "plan", "type": "\ud800"}),
        ("/api/v1/subscribers", {"email": "a\ud800@example.org"}),
        ("/api/v1/subscribers/bulk", {"subscribers": [{"email": "a@example.org", "first_name": "\ud800"}]}),
        ("/api/v1/events", {"email": "ada@example.org", "name": "x", "properties": {"k": "\u0000"}}),
        ("/api/v1/suppressions", {"kind": "domain", "value": "\ud800.example"}),
    ],
)
def test_lone_surrogates_and_nul_are_refused_without_a_500(api, ids, path, body):
    response = api.generic("POST", path, json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:  # a batch: the item is refused
        assert response.json()["results"][0]["status"] == "error"


def test_json_nested_beyond_the_recursion_limit_answers_400(api):
    body = "[" * 100_000 + "]" * 100_000
    response = api.generic("POST", "/api/v1/events", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.parametrize("moment", ["0123-11-24T22:29:46-17:08", "0001-01-01T00:00:00+05:00", "2026-01-01T00:00:00Z"])
def test_moments_with_offsets_postgresql_refuses_filter_the_export_without_a_500(api, workspace, moment):
    SubscriberFactory(workspace=workspace)
    response = api.get("/api/v1/subscribers/export", {"format": "csv", "created_before": moment})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        b"".join(response.streaming_content)  # the query runs while streaming
    assert api.get("/api/v1/subscribers", {"created_before": moment}).status_code in (200, 400)


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_json_values_with_infinite_or_nan_numbers_are_refused_before_the_database(number):
    from core.errors import ValidationFailed
    from subscribers.services.validation import json_storable

    with pytest.raises(ValidationFailed) as refused:
        json_storable(value={"cart": [1, {"total": number}]}, field="properties")

    assert refused.value.details == {"properties": ["Numbers must be finite (no Infinity or NaN)."]}
    assert json_storable(value={"total": 1e308}, field="properties") == {"total": 1e308}
