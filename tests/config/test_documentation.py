"""Every environment variable the code reads is documented in .env.example and docs/configuration.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READ_BY_SETTINGS = re.compile(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""")
READ_FROM_ENVIRON = re.compile(r"""os\.environ(?:\.get)?[\(\[]\s*["']([A-Z][A-Z0-9_]*)["']""")
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "PYTHONUNBUFFERED"}


def _variables_read() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "config").rglob("*.py")]:
        text = path.read_text()
        names |= set(READ_BY_SETTINGS.findall(text)) | set(READ_FROM_ENVIRON.findall(text))
    return names - NOT_SETTINGS


def test_the_scan_finds_the_settings_variables():
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL", "SMTP_HOST", "ESP", "PORT"} <= _variables_read()


def test_every_variable_is_in_env_example():
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert _variables_read() - documented == set()


def test_every_variable_is_in_docs_configuration():
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert {name for name in _variables_read() if f"`{name}`" not in text} == set()
