"""/health, /health/ready and /metrics; the worker heartbeat recorded by a real Celery worker."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import worker_ready
from django.core.cache import cache

from config.celery_app import app as celery_app
from config.health import HEARTBEAT_KEY, heartbeat_record
from config.tasks import worker_heartbeat


def test_health_answers_ok_without_touching_dependencies(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_is_503_and_names_the_missing_worker_when_no_heartbeat_was_seen(client):
    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["worker"] == "worker: no heartbeat seen"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["broker"] == "ok"


@pytest.mark.django_db
def test_ready_is_200_once_a_heartbeat_is_recorded(client):
    heartbeat_record()

    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "broker": "ok", "worker": "ok"},
    }


@pytest.mark.django_db
def test_ready_is_503_when_the_last_heartbeat_is_older_than_the_allowed_age(client, settings):
    cache.set(HEARTBEAT_KEY, time.time() - settings.WORKER_HEARTBEAT_MAX_AGE - 30, timeout=None)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["worker"].startswith("worker: last heartbeat")


def test_worker_ready_signal_records_a_heartbeat():
    assert cache.get(HEARTBEAT_KEY) is None

    worker_ready.send(sender=None)

    assert cache.get(HEARTBEAT_KEY) is not None


@pytest.mark.slow
# transaction=True: starting a worker fires Celery's Django fixup, which closes this thread's database
# connection; outside a test transaction Django simply reconnects.
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_running_the_heartbeat_task_makes_ready_answer_200(client):
    celery_app.control.purge()  # tasks other tests enqueued and nobody consumed
    assert client.get("/health/ready").status_code == 503

    with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
        worker_heartbeat.delay()
        deadline = time.monotonic() + 30  # a bound on waiting, not a performance assertion
        while cache.get(HEARTBEAT_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.05)

    assert cache.get(HEARTBEAT_KEY) is not None
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()


@pytest.mark.django_db
def test_metrics_serves_prometheus_text(client):
    client.get("/health")  # so the request counters have a sample

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE django_http_requests_before_middlewares_total counter" in text
    assert "python_info" in text
