"""The product's own processes for tests that need them: daphne (pages and WebSockets), a Celery worker
and beat, each a subprocess on the test database and the test run's Redis (REDIS_URL, inherited).

pytest-django's `live_server` serves WSGI only; the live dashboard needs daphne, and sends should come
from a worker process of their own, as in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# Settings that would send real mail: the processes must keep every email in the local outbox.
MAIL_SETTINGS = ("EMAIL_URL", "SMTP_HOST", "ESP")
# What an in-process Celery test worker (celery.contrib.testing) leaves in os.environ: a child process
# inheriting it would log, or fork its pool, as that worker's setup says.
WORKER_LEFTOVERS = ("CELERY_LOG_", "_MP_FORK_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def product_env(**extra: str) -> dict[str, str]:
    """The environment of a product process on this test run's database (DEBUG: whitenoise serves static)."""
    db = connection.settings_dict
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in MAIL_SETTINGS and not key.startswith(WORKER_LEFTOVERS)
    }
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        DEBUG="1",
        DJANGO_ENV="test",
    )
    env.update(extra)
    return env


@contextmanager
def running(args: Sequence[str], *, env: dict[str, str], port: int | None = None) -> Iterator[subprocess.Popen]:
    """A process for the block; with `port`, entered once it listens there (or it died, which raises)."""
    process = subprocess.Popen(list(args), env=env, cwd=ROOT)
    try:
        for _ in range(600 if port else 0):
            if process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {process.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:  # type: ignore[arg-type]
                    break
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def daphne_args(port: int) -> list[str]:
    return [PYTHON, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]


@contextmanager
def web_worker_and_beat(*, env: dict[str, str], port: int, run_dir: Path) -> Iterator[None]:
    """daphne on `port`, a Celery worker on every queue, and beat (its schedule is in the database)."""
    from config.queues import Queue

    queues = ",".join(queue.value for queue in Queue)
    with ExitStack() as stack:
        stack.enter_context(running(daphne_args(port), env=env, port=port))
        stack.enter_context(
            running([PYTHON, "-m", "celery", "-A", "config", "worker", "-l", "warning", "-Q", queues,
                     "--concurrency", "2", "-n", f"journey-{port}@%h"], env=env)
        )  # fmt: skip
        stack.enter_context(
            running([PYTHON, "-m", "celery", "-A", "config", "beat", "-l", "warning",
                     "--pidfile", str(run_dir / "beat.pid"), "-s", str(run_dir / "beat-schedule")], env=env)
        )  # fmt: skip
        yield
