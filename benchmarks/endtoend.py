"""End to end: N subscribers in a one-step sequence, through real Celery workers and the Redis broker, until
every message is accepted by a local SMTP sink and recorded as sent; against plain smtplib into the same sink.

python -m benchmarks.endtoend [--messages 20000] [--workers 1] [--concurrency 2] [--sink auto|postfix|aiosmtpd]

The scheduler tick is published to the `default` queue; the worker that runs it creates the messages and
hands them, batch by batch as each commits, to the `email` queue, where the workers send them. The clock
runs from publishing the tick until the database holds N messages with status `sent`. Resident memory of
every worker process is sampled throughout.
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from benchmarks import common
from benchmarks.sink import open_sink

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9")
RATE_PER_SECOND = 100_000  # the workspace's sending rate: far above what the machine can do
STALL_SECONDS = 120  # no message sent for this long: the run failed


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def children(pid: int) -> list[int]:
    """Direct children of a process (the prefork pool of a Celery worker)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return sorted(found)


class Workers:
    """`with Workers(n, concurrency, smtp_port):` n `celery worker` processes (queues default and email,
    prefork pool) on the benchmark's database and broker, sending to the sink; stopped on exit."""

    def __init__(self, count: int, concurrency: int, smtp_port: int) -> None:
        self.count, self.concurrency, self.smtp_port = count, concurrency, smtp_port
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []

    def __enter__(self) -> Workers:
        env = {
            **os.environ, "DJANGO_ENV": "development", "DEBUG": "0", "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": REDIS_URL, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.smtp_port),
            "SMTP_USE_TLS": "0", "SMTP_USE_SSL": "0", "PYTHONPATH": str(REPO),
        }  # fmt: skip
        env.pop("EMAIL_URL", None)
        for index in range(self.count):
            command = [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,email", "-P", "prefork",
                "-c", str(self.concurrency), "-n", f"bench{index}@%h", "-l", "warning",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip
            log = open(Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench-worker-{index}.log", "wb")
            self.processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from config.celery_app import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited with {process.returncode}; see /tmp/bench-worker-*.log")
            replies = app.control.ping(timeout=1.0)
            if len(replies) >= self.count and all(len(children(p.pid)) >= self.concurrency for p in self.processes):
                return
        raise RuntimeError("the workers did not answer a ping within 60 s")

    def pids(self) -> list[int]:
        """Every worker process: each main process and its pool."""
        return [pid for process in self.processes for pid in (process.pid, *children(process.pid))]

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def broker_purge() -> None:
    """Empty the benchmark's Redis database (BENCH_REDIS, db 9 by default): no task of an earlier run."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def setup(messages: int) -> int:
    """The workspace, its one-step sequence, N subscribers and N enrollments due now; returns the workspace id."""
    from django.utils import timezone

    from accounts.models import Workspace

    common.reset()
    workspace, sequence, step = common.one_step_sequence("EndToEnd")
    Workspace.objects.filter(pk=workspace.pk).update(sending_rate_per_second=RATE_PER_SECOND)
    subscribers = common.subscribers_create(workspace, messages)
    common.enrollments_create(sequence, step, subscribers, due_at=timezone.now())
    common.analyze()
    return workspace.pk


def product_run(workspace_id: int, messages: int, workers: Workers) -> tuple[float, float | None, dict[int, list[int]]]:
    """Publish the scheduler tick, wait until every message is sent. Returns the seconds until then, the
    seconds until the scheduler had created every message, and the RSS samples of each worker process."""
    from django.db.models import Count, Q

    from config.queues import Queue
    from sequences.models import Message
    from sequences.tasks import scheduler_tick

    rss: dict[int, list[int]] = {pid: [] for pid in workers.pids()}
    started = time.perf_counter()
    scheduler_tick.apply_async(queue=Queue.DEFAULT.value)
    sent, progress_at, created_after = 0, time.monotonic(), None
    while sent < messages:
        time.sleep(0.25)
        counts = Message.objects.filter(workspace_id=workspace_id).aggregate(
            sent=Count("id", filter=Q(status="sent")),
            failed=Count("id", filter=Q(status="failed")),
            created=Count("id"),
        )
        if created_after is None and counts["created"] >= messages:
            created_after = time.perf_counter() - started
        for pid in rss:
            rss[pid].append(rss_bytes(pid))
        if counts["failed"]:
            raise RuntimeError(f"{counts['failed']} messages failed; see /tmp/bench-worker-*.log")
        if counts["sent"] > sent:
            sent, progress_at = counts["sent"], time.monotonic()
        elif time.monotonic() - progress_at > STALL_SECONDS:
            raise RuntimeError(f"stalled at {sent:,} of {messages:,} sent; see /tmp/bench-worker-*.log")
    return time.perf_counter() - started, created_after, rss


def ceiling_run(port: int, messages: int) -> float:
    """Plain smtplib, one connection, the prebuilt messages already serialized to bytes before the clock
    starts (100,000 `EmailMessage` objects held at once took 9.6 GB)."""
    from benchmarks.sender import prebuilt

    built = []
    for start in range(0, messages, 1000):
        built.extend(
            (message["To"], message.as_bytes()) for message in prebuilt(min(1000, messages - start), offset=start)
        )
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for recipient, data in built:
            smtp.sendmail("news@acme.test", [recipient], data)
    return time.perf_counter() - started


def memory_report(rss: dict[int, list[int]], workers: Workers) -> str:
    """Start (first sample), middle and end of each worker process's RSS, and whether it stayed flat
    (end within 10 % of the middle)."""
    mains = {process.pid for process in workers.processes}
    lines = []
    for pid, samples in rss.items():
        samples = [value for value in samples if value]
        if not samples:
            continue
        start, middle, end = samples[0], samples[len(samples) // 2], samples[-1]
        flat = abs(end - middle) <= 0.10 * middle
        kind = "main" if pid in mains else "pool"
        lines.append(
            f"  pid {pid} ({kind}): {start / 2**20:.1f} -> {middle / 2**20:.1f} -> {end / 2**20:.1f} MiB "
            f"(max {max(samples) / 2**20:.1f}; {len(samples)} samples) {'flat' if flat else 'NOT FLAT'}"
        )
    return "\n".join(lines)


def run(messages: int, workers: int = 1, concurrency: int = 2, sink_kind: str = "auto") -> dict[str, float]:
    from django.db.models import Count

    from sequences.models import Message

    print(f"\n== End to end: {messages:,} subscribers, one-step sequence, PostgreSQL + Redis + Celery ==")
    started = time.perf_counter()
    workspace_id = setup(messages)
    broker_purge()
    print(f"set-up: {time.perf_counter() - started:.1f}s (subscribers and enrollments bulk-inserted, not timed)")
    with open_sink(sink_kind) as sink:
        print(f"sink      {sink.description}")
        print(f"workers   {workers} x `celery worker -Q default,email -P prefork -c {concurrency}`; broker {REDIS_URL}")
        with Workers(workers, concurrency, sink.port) as pool:
            seconds, created_after, rss = product_run(workspace_id, messages, pool)
            accepted = sink.count()
            memory = memory_report(rss, pool)
        rows = Message.objects.filter(workspace_id=workspace_id).aggregate(
            sent=Count("id"), distinct_ids=Count("message_id_header", distinct=True)
        )
        assert accepted == rows["sent"] == rows["distinct_ids"] == messages, (accepted, rows)
        product = common.rate(messages, seconds)
        print(f"product   tick -> scheduler -> broker -> send -> recorded: {messages:,} in {seconds:.2f}s "
              f"= {product:,.0f} msg/s  (sink: {accepted:,}; {rows['distinct_ids']:,} Message-IDs)")  # fmt: skip

        if created_after is not None:
            print(f"          (the scheduler had created all {messages:,} messages after {created_after:.2f}s)")
        print("memory    worker RSS, first sample -> middle -> last (flat: last within 10 % of middle):")
        print(memory, flush=True)
        sink.reset()
        seconds = ceiling_run(sink.port, messages)
        assert sink.count() == messages, sink.count()
        ceiling = common.rate(messages, seconds)
        print(f"ceiling   smtplib, one connection, prebuilt bytes:        {messages:,} in {seconds:.2f}s "
              f"= {ceiling:,.0f} msg/s")  # fmt: skip
    print(f"ratio     product / ceiling = {product / ceiling:.2f}  (targets: 1,000 msg/s, ratio >= 0.5)")
    return {"product": product, "ceiling": ceiling}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1, help="celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork pool size of each (Procfile: 2)")
    parser.add_argument("--sink", choices=["auto", "postfix", "aiosmtpd"], default="auto")
    args = parser.parse_args(argv)
    os.environ["REDIS_URL"] = REDIS_URL  # the benchmark process publishes the tick to the same broker
    os.environ["CELERY_BROKER_URL"] = REDIS_URL
    common.setup_django()
    print(common.machine())
    run(args.messages, args.workers, args.concurrency, args.sink)


if __name__ == "__main__":
    main()
