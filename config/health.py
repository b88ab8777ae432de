"""Liveness and readiness: /health answers while the process runs; /health/ready checks its dependencies."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes

HEARTBEAT_KEY = "health:worker-heartbeat"


def heartbeat_record() -> None:
    cache.set(HEARTBEAT_KEY, time.time(), timeout=None)


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
        return f"database: {exc.__class__.__name__}"
    return None


def _check_redis() -> str | None:
    try:
        cache.get("health:ping")
    except Exception as exc:  # noqa: BLE001
        return f"redis: {exc.__class__.__name__}"
    return None


def _check_broker() -> str | None:
    from config.celery_app import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return f"broker: {exc.__class__.__name__}"
    return None


def _check_worker() -> str | None:
    try:
        seen = cache.get(HEARTBEAT_KEY)
    except Exception:  # noqa: BLE001 - reported as redis
        return None
    if seen is None:
        return "worker: no heartbeat seen"
    age = time.time() - float(seen)
    if age > settings.WORKER_HEARTBEAT_MAX_AGE:
        return f"worker: last heartbeat {int(age)}s ago"
    return None


_HealthSerializer = inline_serializer("Health", {"status": serializers.CharField()})
_ReadySerializer = inline_serializer(
    "Readiness",
    {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())},
)


@extend_schema(tags=["health"], responses=_HealthSerializer, auth=[])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@extend_schema(tags=["health"], responses={200: _ReadySerializer, 503: _ReadySerializer}, auth=[])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def health_ready(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis, the broker and a worker are all there; 503 naming what is not."""
    checks = {
        "database": _check_database(),
        "redis": _check_redis(),
        "broker": _check_broker(),
        "worker": _check_worker(),
    }
    failures = {name: problem for name, problem in checks.items() if problem}
    body = {"status": "ok" if not failures else "unavailable", "checks": {n: p or "ok" for n, p in checks.items()}}
    return JsonResponse(body, status=200 if not failures else 503)
