"""The container health check picks a Host header that ALLOWED_HOSTS accepts."""

import pytest

from config.healthcheck import health_host


@pytest.mark.parametrize(
    ("allowed_hosts", "host"),
    [
        ("mail.example.com,www.example.com", "mail.example.com"),
        (".example.com", "example.com"),
        ("*", "localhost"),
        ("*, app.example.com", "app.example.com"),
        ("", "localhost"),
    ],
)
def test_health_host_is_the_first_concrete_allowed_host(allowed_hosts, host):
    assert health_host(allowed_hosts) == host
