"""Scheduler throughput: `enrollments_process_due` against a bare SKIP LOCKED claim loop, same run, same table.

python -m benchmarks.scheduler [--enrollments 200000]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from datetime import timedelta

from benchmarks import common

BARE_CLAIM = """
    SELECT id FROM sequences_enrollment
    WHERE status = 'active' AND next_run_at <= %s
    ORDER BY next_run_at LIMIT %s FOR UPDATE SKIP LOCKED
"""
BARE_ADVANCE = "UPDATE sequences_enrollment SET next_run_at = NULL WHERE id = ANY(%s)"


def bare_claim_loop(*, now, batch_size: int = 500) -> int:
    from django.db import connection, transaction

    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(BARE_CLAIM, [now, batch_size])
            ids = [row[0] for row in cursor.fetchall()]
            if ids:
                cursor.execute(BARE_ADVANCE, [ids])
        total += len(ids)
        if len(ids) < batch_size:
            return total


def run(enrollments: int, profile_top: int = 0) -> dict[str, float]:
    from django.utils import timezone

    from sequences.models import Message
    from sequences.scheduler import enrollments_process_due

    common.reset()
    print(f"\n== Scheduler: {enrollments:,} due enrollments, one-step sequence, PostgreSQL ==")
    started = time.perf_counter()
    workspace, product_seq, product_step = common.one_step_sequence("Product")
    _, baseline_seq, baseline_step = common.one_step_sequence("Baseline")
    subscribers = common.subscribers_create(workspace, enrollments)
    now = timezone.now()
    # Two equal sets side by side: the baseline's rows are due an hour earlier, so its cut-off
    # (half an hour ago) sees only them, and the product run finds them already advanced.
    common.enrollments_create(baseline_seq, baseline_step, subscribers, due_at=now - timedelta(hours=1))
    common.enrollments_create(product_seq, product_step, subscribers, due_at=now)
    common.analyze()
    print(f"set-up: {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    bare = bare_claim_loop(now=now - timedelta(minutes=30))
    bare_seconds = time.perf_counter() - started

    profile = cProfile.Profile() if profile_top else None
    started = time.perf_counter()
    result = profile.runcall(enrollments_process_due, now=now) if profile else enrollments_process_due(now=now)
    product_seconds = time.perf_counter() - started
    assert bare == enrollments, bare
    assert result.claimed == result.messages_created == enrollments, result
    assert Message.objects.filter(workspace=workspace).count() == enrollments

    bare_rate = common.rate(bare, bare_seconds)
    product_rate = common.rate(result.claimed, product_seconds)
    print(f"baseline  bare SKIP LOCKED claim + advance: {bare:,} rows in {bare_seconds:.2f}s = {bare_rate:,.0f} rows/s")
    print(f"product   enrollments_process_due:          {result.claimed:,} rows in {product_seconds:.2f}s "
          f"= {product_rate:,.0f} rows/s (each creates a queued Message)")  # fmt: skip
    print(f"ratio     product / baseline = {product_rate / bare_rate:.2f}  (targets: 20,000 rows/s, ratio >= 0.5)")
    if profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(profile_top)
        print(f"\nprofile of the product run (under cProfile, so slower; top {profile_top} by own time):")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return {"baseline": bare_rate, "product": product_rate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enrollments", type=int, default=20_000)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile the product run, print N")
    args = parser.parse_args(argv)
    common.setup_django()
    print(common.machine())
    run(args.enrollments, args.profile)


if __name__ == "__main__":
    main()
