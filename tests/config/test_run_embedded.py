"""End to end: `python -m config.embedded -- manage.py run_embedded` serves, gets ready, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _marked_pids(mark: str) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"ES_TEST_MARK={mark}".encode() in (entry / "environ").read_bytes():
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def test_make_run_serves_gets_ready_with_a_worker_and_stops_every_process_on_ctrl_c():
    port, mark = _free_port(), f"run-embedded-{os.getpid()}-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    with tempfile.TemporaryDirectory(prefix="es-run-") as var_dir:
        env.update(DJANGO_ENV="development", VAR_DIR=var_dir, PORT=str(port), ES_TEST_MARK=mark)
        log = Path(var_dir) / "run.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "config.embedded", "--", sys.executable, "manage.py", "run_embedded"],
            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            status, body = 0, b""
            deadline = time.monotonic() + 120  # a bound on waiting for start-up, not a performance assertion
            while time.monotonic() < deadline and process.poll() is None:
                status, body = _get(f"http://127.0.0.1:{port}/health/ready")
                if status == 200:
                    break
                time.sleep(0.5)
            assert status == 200, body
            assert json.loads(body)["checks"]["worker"] == "ok"
            assert _get(f"http://127.0.0.1:{port}/api/schema/")[0] == 200
            assert len(_marked_pids(mark)) >= 5  # wrapper, redis-server, run_embedded, web, worker, beat

            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

        output = log.read_text()
        assert process.returncode == 0, output[-3000:]
        assert "demo@example.com" in output
        assert f"http://127.0.0.1:{port}/admin/" in output
        deadline = time.monotonic() + 10
        while _marked_pids(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked_pids(mark) == set()
