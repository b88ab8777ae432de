"""The embedded Redis: URL spelling for Celery, starting and stopping redis-server, the command wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.embedded import (
    _answers_ping,
    embedded_redis_url,
    redis_url_for_celery,
    start_embedded_redis,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("redis_url", "broker_url"),
    [
        ("unix:///srv/var/redis/redis.sock", "redis+socket:///srv/var/redis/redis.sock"),
        ("unix:///srv/var/redis/redis.sock?db=1", "redis+socket:///srv/var/redis/redis.sock?virtual_host=1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://user:secret@redis.example.com:6380/2", "rediss://user:secret@redis.example.com:6380/2"),
    ],
)
def test_redis_url_for_celery_spells_unix_sockets_the_kombu_way(redis_url, broker_url):
    assert redis_url_for_celery(redis_url) == broker_url


def test_embedded_redis_url_is_a_unix_socket_under_var_redis(tmp_path):
    assert embedded_redis_url(tmp_path) == f"unix://{tmp_path}/redis/redis.sock"


def test_the_broker_url_follows_redis_url_unless_set(settings):
    from config.embedded import redis_url_for_celery as spell

    assert (os.environ.get("CELERY_BROKER_URL") or spell(settings.REDIS_URL)) == settings.CELERY_BROKER_URL


@pytest.fixture
def short_tmp():
    # A unix socket path must stay under ~100 bytes; pytest's tmp_path can be longer.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="es-") as path:
        yield Path(path)


def test_start_embedded_redis_starts_a_server_once_and_stop_process_ends_it(short_tmp):
    process = start_embedded_redis(short_tmp)
    try:
        assert process is not None
        socket_path = short_tmp / "redis" / "redis.sock"
        assert _answers_ping(socket_path)
        assert start_embedded_redis(short_tmp) is None  # one already answers there: reuse it
    finally:
        stop_process(process)
    assert process.poll() is not None
    assert not _answers_ping(socket_path)


def _env_without_redis(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL", "VAR_DIR"}}
    return {**env, **extra}


@pytest.mark.slow
def test_wrapper_exports_the_embedded_redis_url_and_stops_its_server_afterwards(short_tmp):
    script = "import os, redis; url = os.environ['REDIS_URL']; print(url); print(redis.Redis.from_url(url).ping())"
    result = subprocess.run(
        [sys.executable, "-m", "config.embedded", "--", sys.executable, "-c", script],
        cwd=ROOT, env=_env_without_redis(VAR_DIR=str(short_tmp)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"unix://{short_tmp}/redis/redis.sock", "True"]
    assert not _answers_ping(short_tmp / "redis" / "redis.sock")


@pytest.mark.slow
def test_wrapper_passes_on_the_exit_status_of_its_command(short_tmp):
    result = subprocess.run(
        [sys.executable, "-m", "config.embedded", "--", sys.executable, "-c", "raise SystemExit(3)"],
        cwd=ROOT, env=_env_without_redis(VAR_DIR=str(short_tmp)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 3


def test_wrapper_leaves_an_existing_redis_url_alone(short_tmp):
    script = "import os; print(os.environ['REDIS_URL'])"
    result = subprocess.run(
        [sys.executable, "-m", "config.embedded", "--", sys.executable, "-c", script],
        cwd=ROOT, env=_env_without_redis(REDIS_URL="redis://example.invalid:6379/3", VAR_DIR=str(short_tmp)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.stdout.strip() == "redis://example.invalid:6379/3"
    assert not (short_tmp / "redis").exists()


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"  # a zombie has exited; it only awaits reaping
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_the_embedded_server_dies_with_the_process_that_started_it(short_tmp):
    script = (
        "import sys, time; from config.embedded import start_embedded_redis; "
        "print(start_embedded_redis(sys.argv[1]).pid, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(short_tmp)],
        cwd=ROOT, env=_env_without_redis(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    server_pid = int(parent.stdout.readline())

    parent.kill()  # no atexit, no finally: only the kernel's parent-death signal can stop the server
    parent.wait()

    deadline = time.monotonic() + 15
    while not _dead(server_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dead(server_pid)
