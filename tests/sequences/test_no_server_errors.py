"""Arbitrary JSON sent to every writing endpoint of existing objects: a 2xx or 4xx, never a 500."""

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import EnrollmentFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=30)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELDS = [
    "name", "subject", "preheader", "html", "text", "from_email", "subscriber_id", "sample", "steps", "template",
    "send_days", "send_start_hour", "send_end_hour", "re_entry", "delay_value", "delay_unit", "position",
    "step_ids", "subscriber_ids", "emails", "reason", "id",
]  # fmt: skip
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6) | json_values


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(body=bodies)
def test_arbitrary_json_never_causes_a_server_error(api, active_sequence, body):
    cache.clear()  # hundreds of requests: stay under the throttle
    step = active_sequence.steps.first()
    template = step.template
    enrollment = EnrollmentFactory(sequence=active_sequence, subscriber=SubscriberFactory(workspace=template.workspace))
    calls = [
        ("post", "/api/v1/templates"),
        ("patch", f"/api/v1/templates/{template.pk}"),
        ("put", f"/api/v1/templates/{template.pk}"),
        ("post", f"/api/v1/templates/{template.pk}/preview"),
        ("post", "/api/v1/email-sequences"),
        ("patch", f"/api/v1/email-sequences/{active_sequence.pk}"),
        ("put", f"/api/v1/email-sequences/{active_sequence.pk}"),
        ("post", f"/api/v1/email-sequences/{active_sequence.pk}/steps"),
        ("post", f"/api/v1/email-sequences/{active_sequence.pk}/steps/reorder"),
        ("post", f"/api/v1/email-sequences/{active_sequence.pk}/enroll"),
        ("patch", f"/api/v1/steps/{step.pk}"),
        ("put", f"/api/v1/steps/{step.pk}"),
        ("post", f"/api/v1/enrollments/{enrollment.pk}/exit"),
    ]
    for method, url in calls:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code < 500, (method, url, body, response.content)


ints = st.integers(min_value=-5, max_value=30) | st.integers()
step_bodies = st.fixed_dictionaries(
    {"template": st.sampled_from(["valid", "other"]) | ints},
    optional={
        "id": st.sampled_from(["existing"]) | ints, "name": st.text(max_size=5), "delay_value": ints,
        "delay_unit": st.sampled_from(["seconds", "minutes", "hours", "days", "weeks", "years"]),
    },
)  # fmt: skip
sequence_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=5), "send_days": st.lists(ints, max_size=8), "send_start_hour": ints,
        "send_end_hour": ints, "re_entry": st.sampled_from(["never", "after_completion", "always", "x"]),
        "steps": st.lists(step_bodies, max_size=4),
    },
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(body=sequence_bodies, method=st.sampled_from(["post", "patch", "put"]))
def test_almost_valid_sequences_never_cause_a_server_error(api, active_sequence, other_template, body, method):
    cache.clear()
    template = active_sequence.steps.first().template
    existing = list(active_sequence.steps.values_list("id", flat=True))
    for step in body.get("steps", []):
        step["template"] = {"valid": template.pk, "other": other_template.pk}.get(step["template"], step["template"])
        if step.get("id") == "existing":
            step["id"] = existing[0] if existing else 1
    url = "/api/v1/email-sequences" if method == "post" else f"/api/v1/email-sequences/{active_sequence.pk}"
    response = getattr(api, method)(url, body, format="json")
    assert response.status_code < 500, (method, body, response.content)
