"""Sender throughput: messages_claim + messages_send (Django's SMTP backend) against plain smtplib, same sink.

python -m benchmarks.sender [--messages 2000] [--batch 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import multiprocessing
import os
import pstats
import smtplib
import time
from email.message import EmailMessage

from benchmarks import common
from benchmarks.sink import Sink

TEXT = "Welcome, Ada\n\n" + "Thanks for signing up. Here is what happens next, and a few links to get started.\n" * 8


def queue_messages(n: int, name: str) -> None:
    """n queued Messages, made as in production: due enrollments in a one-step sequence, then the scheduler."""
    from django.utils import timezone

    from sequences.scheduler import enrollments_process_due

    workspace, sequence, step = common.one_step_sequence(name)
    now = timezone.now()
    common.enrollments_create(sequence, step, common.subscribers_create(workspace, n), due_at=now)
    assert enrollments_process_due(now=now).messages_created == n
    common.analyze()


def prebuilt(n: int, offset: int = 0) -> list[EmailMessage]:
    messages = []
    for i in range(offset, offset + n):
        message = EmailMessage()
        message["From"] = "Acme <news@acme.test>"
        message["To"] = f"s{i}@example.org"
        message["Subject"] = "Hello Ada"
        message["Message-ID"] = f"<{i}.{time.time_ns()}@acme.test>"
        message.set_content(TEXT)
        message.add_alternative(f"<html><body>{common.HTML}</body></html>", subtype="html")
        messages.append(message)
    return messages


def smtplib_send(port: int, messages: list[EmailMessage]) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for message in messages:
            smtp.send_message(message)


def rss_bytes() -> int:
    """This process's resident memory (Linux; no dependency)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def send_loop(port: int, batch: int, rss: list[int] | None = None) -> int:
    """What a worker does: claim a batch, send it over one SMTP connection, until nothing is claimable."""
    from django.core.mail import get_connection

    from sequences.delivery.claim import messages_claim
    from sequences.delivery.send import messages_send
    from sequences.delivery.tasks import worker_name

    smtp = {"host": "127.0.0.1", "port": port, "use_tls": False, "use_ssl": False, "username": "", "password": ""}
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend", fail_silently=False, **smtp)
    sent = 0
    while True:
        worker = worker_name("bench")
        ids = messages_claim(worker=worker, limit=batch, lease_seconds=600)
        if not ids:
            return sent
        sent += messages_send(message_ids=ids, worker=worker, connection=connection).count("sent")
        if rss is not None:
            rss.append(rss_bytes())


def _child(args: tuple[int, int]) -> int:
    from django.db import connections

    connections.close_all()
    return send_loop(*args)


def run(messages: int, batch: int, workers: int) -> dict[str, float]:
    from django.db import connections

    common.reset()
    print(f"\n== Sender: {messages:,} messages, batches of {batch}, aiosmtpd sink on loopback (own process) ==")
    results: dict[str, float] = {}
    with Sink() as sink:
        built = prebuilt(messages)
        started = time.perf_counter()
        smtplib_send(sink.port, built)
        seconds = time.perf_counter() - started
        count, _, size = sink.stats()
        assert count == messages, count
        results["baseline"] = common.rate(messages, seconds)
        print(f"baseline  smtplib, one connection, prebuilt: {messages:,} in {seconds:.2f}s = "
              f"{results['baseline']:,.0f} msg/s  (avg {size // count:,} bytes)")  # fmt: skip

        del built  # the baseline's messages would otherwise sit in the product run's memory figures
        gc.collect()
        sink.reset()
        queue_messages(messages, "Single")
        rss: list[int] = []
        started = time.perf_counter()
        sent = send_loop(sink.port, batch, rss)
        seconds = time.perf_counter() - started
        count, distinct, size = sink.stats()
        assert sent == count == distinct == messages, (sent, count, distinct)
        results["product"] = common.rate(messages, seconds)
        print(f"product   claim + send, 1 process:          {messages:,} in {seconds:.2f}s = "
              f"{results['product']:,.0f} msg/s  (avg {size // count:,} bytes)")  # fmt: skip
        print(
            f"ratio     product / baseline = {results['product'] / results['baseline']:.2f}  "
            "(targets: 1,000 msg/s, ratio >= 0.5)"
        )
        mib = [value / 2**20 for value in rss]
        points = ", ".join(f"{mib[int(i * (len(mib) - 1) / 4)]:.1f}" for i in range(5))
        print(f"memory    RSS (MiB) at batch 1, 25%, 50%, 75%, last of {len(mib)}: {points}; max {max(mib):.1f}")

        if workers > 1:
            sink.reset()
            queue_messages(messages, "Multi")
            connections.close_all()  # each forked worker opens its own
            started = time.perf_counter()
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                sent = sum(pool.map(_child, [(sink.port, batch)] * workers))
            seconds = time.perf_counter() - started
            count, distinct, _ = sink.stats()
            assert sent == count == distinct == messages, (sent, count, distinct)
            results["workers"] = common.rate(messages, seconds)
            ratio = results["workers"] / results["baseline"]
            print(f"product   claim + send, {workers} processes:        {messages:,} in {seconds:.2f}s = "
                  f"{results['workers']:,.0f} msg/s  (ratio {ratio:.2f})")  # fmt: skip

        sink.reset()
        queue_messages(min(messages, 1000), "Profile")
        profile = cProfile.Profile()
        profile.runcall(send_loop, sink.port, batch)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(15)
        print(f"\nprofile of the product run ({min(messages, 1000):,} messages, top 15 by cumulative time):")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="also run this many worker processes (1: skip)")
    args = parser.parse_args(argv)
    common.setup_django()
    print(common.machine())
    run(args.messages, args.batch, args.workers)


if __name__ == "__main__":
    main()
