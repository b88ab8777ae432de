"""DJANGO_ENV=production refuses insecure settings, and `check --deploy` is clean when configured properly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "p" + "r0duct10n-s3cret-" * 4  # 70 characters, not the development default
SETTINGS_VARS = {
    "DJANGO_ENV", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "VAR_DIR", "EMAIL_URL", "SMTP_HOST", "ESP",
}  # fmt: skip

pytestmark = pytest.mark.slow


def _production_env(**overrides: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
    env.update(
        DJANGO_ENV="production",
        SECRET_KEY=GOOD_SECRET,
        ALLOWED_HOSTS="example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/es_deploy_check",  # `check` does not connect
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY must be set to a random value of 50+ characters in production"),
        ({"SECRET_KEY": "insecure-development-key-change-me"}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY must be set"),
        ({"DEBUG": "true"}, "DEBUG must be off in production"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS must be set in production"),
        ({"REDIS_URL": None}, "REDIS_URL must point at a real Redis server in production"),
    ],
    ids=["no-secret-key", "default-secret-key", "short-secret-key", "debug-on", "no-allowed-hosts", "no-redis"],
)
def test_production_refuses_to_start_insecurely(overrides, message):
    result = _manage("check", env=_production_env(**overrides))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_check_deploy_is_clean_with_a_production_configuration():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_an_unknown_django_env_is_refused():
    result = _manage("check", env=_production_env(DJANGO_ENV="staging"))

    assert result.returncode != 0
    assert "DJANGO_ENV must be development, test or production" in result.stderr
