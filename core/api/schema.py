"""OpenAPI post-processing: the headers every workspace-scoped operation accepts."""

from __future__ import annotations

from typing import Any

UNSCOPED_PREFIXES = ("/api/v1/auth/", "/api/v1/workspaces", "/health", "/metrics")

WORKSPACE_HEADER = {
    "in": "header",
    "name": "X-Workspace",
    "required": False,
    "schema": {"type": "string"},
    "description": "Workspace id or slug. Needed when the signed-in user belongs to several workspaces; "
    "API keys act in their own workspace.",
}
IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Retrying with the same key returns the first response instead of acting twice (24 hours).",
}


def add_common_headers(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            parameters = operation.setdefault("parameters", [])
            if not path.startswith(UNSCOPED_PREFIXES):
                parameters.append(WORKSPACE_HEADER)
            if method == "post" and not path.startswith("/api/v1/auth/"):
                parameters.append(IDEMPOTENCY_HEADER)
    return result
