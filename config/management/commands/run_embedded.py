"""`python manage.py run_embedded`: migrate, load the demo, then run web, worker and beat together.

`make run` calls it inside `python -m config.embedded`, which provides the embedded Redis. The three
processes are children in their own process groups: Ctrl-C or SIGTERM stops them all (and whatever
they forked), and if one dies the others are stopped and the command exits non-zero.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from config.management.commands.load_demo_data import DemoSummary, demo_data_load
from config.queues import Queue

STOP_TIMEOUT = 15.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    @property
    def pgid(self) -> int:
        return self.process.pid  # each child leads its own session, so its pid is its group id


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for_port(host: str, port: int, children: list[Child], timeout: float, stop_requested: list[int]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop_requested:
        if any(child.process.poll() is not None for child in children):
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _signal_group(child: Child, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pgid, sig)


def stop_children(children: list[Child], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every child's process group, wait, then SIGKILL whatever is left of each group."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.1, deadline - time.monotonic()))
    for child in children:
        # Also catches grandchildren (celery's pool processes) that outlived their parent.
        _signal_group(child, signal.SIGKILL)
        child.process.wait()


class Command(BaseCommand):
    help = "Run the whole product on this machine: migrate, demo data, then web (daphne), a worker and beat."
    requires_system_checks = []  # checked once below, before anything starts

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface of the web process.")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "2")))
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo workspace.")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = str(options["host"]), int(options["port"])
        if not _port_is_free(host, port):
            raise CommandError(f"Port {port} on {host} is in use; choose another with PORT=... (make run PORT=8001).")
        call_command("check")
        self.stdout.write("Migrating the database ...")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        demo = None if options["no_demo"] else demo_data_load(with_login=not settings.PRODUCTION)

        connections.close_all()  # the children open their own; keep no idle SQLite handle here

        run_dir = Path(settings.VAR_DIR) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        commands = {
            "web": [python, "-m", "daphne", "-b", host, "-p", str(port), "config.asgi:application"],
            "worker": [
                python, "-m", "celery", "-A", "config", "worker", "-l", "info",
                "-Q", ",".join(queue.value for queue in Queue), "--concurrency", str(options["concurrency"]),
                "-n", f"embedded-{port}@%h",
            ],
            "beat": [
                python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                "--pidfile", str(run_dir / "celerybeat.pid"), "-s", str(run_dir / "celerybeat-schedule"),
            ],
        }  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        stop_requested: list[int] = []

        def request_stop(signum: int, _frame: object) -> None:
            stop_requested.append(signum)

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        children: list[Child] = []
        try:
            for name, command in commands.items():
                # A session of its own: the terminal's Ctrl-C reaches only us, and we stop the children in order.
                children.append(Child(name, subprocess.Popen(command, env=env, start_new_session=True)))
            base = f"http://{host}:{port}"
            if _wait_for_port(host, port, children, timeout=60, stop_requested=stop_requested):
                self._print_banner(base, demo)
            code = self._supervise(children, stop_requested)
        finally:
            stop_children(children)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if code:
            sys.exit(code)
        self.stdout.write("Stopped web, worker and beat.")

    def _supervise(self, children: list[Child], stop_requested: list[int]) -> int:
        while not stop_requested:
            for child in children:
                code = child.process.poll()
                if code is not None:
                    self.stderr.write(f"The {child.name} process exited (code {code}); stopping the others.")
                    return 1
            time.sleep(0.3)
        self.stdout.write(f"Received {signal.Signals(stop_requested[0]).name}; stopping web, worker and beat ...")
        return 0

    def _print_banner(self, base: str, demo: DemoSummary | None) -> None:
        lines = [
            "",
            f"{settings.APP_NAME} is running (Ctrl-C stops it).",
            f"  UI / admin   {base}/admin/",
            f"  API docs     {base}/api/docs/",
            f"  API schema   {base}/api/schema/",
            f"  Health       {base}/health  and  {base}/health/ready",
            f"  Metrics      {base}/metrics",
        ]
        if demo is not None and demo.owner_email:
            lines.append(
                f"  Demo login   {demo.owner_email} / {demo.password}   (workspace 'Demo', id {demo.workspace.pk})"
            )
        lines.append(f"  Outgoing mail goes to {self._mail_destination()}.")
        lines.append("")
        self.stdout.write("\n".join(lines))

    @staticmethod
    def _mail_destination() -> str:
        backend = settings.EMAIL_BACKEND
        if backend == "sequences.outbox.OutboxEmailBackend":
            return "the local outbox (admin: Sequences > Outbox emails); nothing leaves this machine"
        return backend
