"""Property-based fuzzing of every documented operation: whatever the input, never a 500.

Schemathesis generates requests from the OpenAPI schema (valid and invalid ones) and sends them
in-process to the WSGI app as a workspace owner. Each operation gets a handful of examples so the
whole API is covered in seconds; the point is breadth: a field type or path the views forgot.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import AccessToken
from schemathesis.checks import not_a_server_error

from accounts.models import Role
from config.health import heartbeat_record
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_test_connection_open():
    """Like Django's test client: the WSGI app must not close the connection the test's transaction uses."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owner_headers(db):
    heartbeat_record()  # /health/ready's 503 without a worker is by design, not a crash
    workspace = WorkspaceFactory(slug="fuzz")
    user = UserFactory()
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}", "X-Workspace": "fuzz"}


@pytest.mark.django_db
@schema.exclude(path_regex=r"^/api/v1/auth/").parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_no_generated_request_causes_a_server_error(case, owner_headers):
    case.call_and_validate(headers=owner_headers, checks=[not_a_server_error])
