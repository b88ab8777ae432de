"""`python -m config.healthcheck`: exit 0 when this container's web process answers GET /health with 200.

Used by the Dockerfile's HEALTHCHECK and docker-compose. It sends a Host header taken from ALLOWED_HOSTS,
so the check passes Django's host validation in production without allowing `localhost` there.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def health_host(allowed_hosts: str) -> str:
    """A Host header that ALLOWED_HOSTS accepts: its first concrete entry (`.example.com` -> `example.com`)."""
    for entry in (part.strip() for part in allowed_hosts.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".")
    return "localhost"


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health",
        headers={"Host": health_host(os.environ.get("ALLOWED_HOSTS", "")), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
