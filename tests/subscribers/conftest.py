"""Fixtures of the subscribers tests: uploaded files land in a temporary MEDIA_ROOT."""

import pytest


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
