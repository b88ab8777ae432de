"""Shared set-up: a dedicated PostgreSQL database (never the test one), Django configured for it, fixtures."""

from __future__ import annotations

import os
import platform
import time
from datetime import timedelta

DB_NAME = os.environ.get("BENCH_DB", "es_bench")
PG_DSN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def setup_django() -> None:
    """Create the benchmark database if missing, configure Django for it (DEBUG off) and migrate."""
    import psycopg

    with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ["DATABASE_URL"] = f"{PG_DSN}/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ.setdefault("DJANGO_ENV", "development")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # The scheduler would hand new messages to Celery; the benchmarks time the scheduler and sender alone.
    from sequences import scheduler

    scheduler._messages_callbacks.clear()


def machine() -> str:
    from django.db import connection

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        ram = next(int(line.split()[1]) for line in f if line.startswith("MemTotal")) / 2**20
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    try:
        import redis

        client = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9"))
        redis_version = client.info("server")["redis_version"]
    except Exception as exc:  # noqa: BLE001 - report why it is unknown; the e2e run will fail loudly
        redis_version = f"unknown ({type(exc).__name__})"
    return (
        f"machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, {cpu}; "
        f"{ram:.1f} GiB RAM; "
        f"Python {platform.python_version()}; PostgreSQL {postgres}; Redis {redis_version}; "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine)"
    )


def reset() -> None:
    """Empty the workspace-owned tables so every run starts from the same size."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE accounts_workspace CASCADE")


def oldest_transaction() -> str:
    """The oldest open transaction on the server (any database): while it is open, no row version that
    dies after it began can be vacuumed or skipped in an index, which slows every claim loop."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname, EXTRACT(EPOCH FROM now() - xact_start) FROM pg_stat_activity "
            "WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 1"
        )
        row = cursor.fetchone()
    if row is None:
        return "oldest other open transaction on the server: none"
    return f"oldest other open transaction on the server: {row[1]:,.0f}s old (database {row[0]})"


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


HTML = (
    "<h1>Welcome, {{ subscriber.first_name|default:'there' }}</h1>"
    + "<p>Thanks for signing up. Here is what happens next, and a few links to get started.</p>" * 8
    + '<p><a href="https://example.com/start">Start here</a> or '
    + '<a href="https://example.com/docs">read the docs</a>.</p>'
)


def one_step_sequence(name: str = "Bench"):
    """A workspace with an active one-step sequence (no delay); returns (workspace, sequence, step)."""
    from accounts.models import Workspace
    from sequences.models import Sequence, SequenceStatus, Step, Template

    workspace = Workspace.objects.create(
        name=name, slug=f"{name.lower()}-{time.time_ns()}", from_name="Acme", from_email="news@acme.test",
        postal_address="1 Main Street, Springfield",
    )  # fmt: skip
    template = Template.objects.create(
        workspace=workspace, name="Welcome", subject="Hello {{ subscriber.first_name|default:'there' }}", html=HTML
    )
    sequence = Sequence.objects.create(workspace=workspace, name=name, status=SequenceStatus.ACTIVE)
    step = Step.objects.create(sequence=sequence, template=template, position=0, delay_value=0)
    return workspace, sequence, step


def subscribers_create(workspace, n: int) -> list:
    from subscribers.models import Subscriber

    rows = [Subscriber(workspace=workspace, email=f"s{i}@example.org", first_name="Ada") for i in range(n)]
    return Subscriber.objects.bulk_create(rows, batch_size=5000)


def enrollments_create(sequence, step, subscribers, *, due_at) -> None:
    from sequences.models import Enrollment

    rows = [
        Enrollment(workspace_id=sequence.workspace_id, sequence=sequence, subscriber=s, current_step=step,
                   next_run_at=due_at - timedelta(seconds=i % 60), enrolled_at=due_at - timedelta(minutes=5))
        for i, s in enumerate(subscribers)
    ]  # fmt: skip
    Enrollment.objects.bulk_create(rows, batch_size=5000)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")
