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


def bare_claim_loop(*, now, batch_size: int) -> int:
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


# The same work as the product, done by the database alone: claim, one queued message per enrollment
# (INSERT ... SELECT from the claimed rows), complete. No Python per row, no checks, no windows.
FLOOR_SOURCE = {
    "workspace_id": "e.workspace_id", "subscriber_id": "e.subscriber_id", "enrollment_id": "e.id",
    "step_id": "e.current_step_id", "template_id": "st.template_id", "to_email": "s.email",
    "from_email": "w.from_email", "subject": "t.subject", "status": "'queued'", "send_after": "%(now)s",
    "created_at": "%(now)s", "updated_at": "%(now)s",
}  # fmt: skip
FLOOR_FROM = """
    FROM sequences_enrollment e JOIN subscribers_subscriber s ON s.id = e.subscriber_id
    JOIN sequences_step st ON st.id = e.current_step_id JOIN sequences_template t ON t.id = st.template_id
    JOIN accounts_workspace w ON w.id = e.workspace_id
    WHERE e.id = ANY(%(ids)s) ON CONFLICT DO NOTHING
"""
FLOOR_ADVANCE = """
    UPDATE sequences_enrollment SET status = 'completed', current_step_id = NULL, next_run_at = NULL,
    finished_at = %(now)s WHERE id = ANY(%(ids)s)
"""


def floor_loop(*, now, batch_size: int) -> int:
    from django.db import connection, transaction

    from sequences.models import Message

    columns, selects, params = [], [], {"now": now}
    for field in Message._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in FLOOR_SOURCE:
            selects.append(FLOOR_SOURCE[field.attname])
        else:
            params[field.attname] = field.get_db_prep_save(field.get_default(), connection)
            selects.append(f"%({field.attname})s::{field.db_type(connection)}")
    insert = f"INSERT INTO sequences_message ({', '.join(columns)}) SELECT {', '.join(selects)} {FLOOR_FROM}"
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(BARE_CLAIM, [now, batch_size])
            ids = [row[0] for row in cursor.fetchall()]
            if ids:
                cursor.execute(insert, {**params, "ids": ids})
                cursor.execute(FLOOR_ADVANCE, {"now": now, "ids": ids})
        total += len(ids)
        if len(ids) < batch_size:
            return total


def run(enrollments: int, profile_top: int = 0) -> dict[str, float]:
    from django.utils import timezone

    from sequences.models import Message
    from sequences.scheduler import DEFAULT_BATCH_SIZE, enrollments_process_due

    common.reset()
    print(f"\n== Scheduler: {enrollments:,} due enrollments, one-step sequence, PostgreSQL, "
          f"batches of {DEFAULT_BATCH_SIZE:,} (all three loops) ==")  # fmt: skip
    started = time.perf_counter()
    workspace, product_seq, product_step = common.one_step_sequence("Product")
    _, baseline_seq, baseline_step = common.one_step_sequence("Baseline")
    floor_workspace, floor_seq, floor_step = common.one_step_sequence("Floor")
    subscribers = common.subscribers_create(workspace, enrollments)
    now = timezone.now()
    # Three equal sets side by side, each due an hour before the next: the floor's cut-off (an hour and a
    # half ago) sees only its rows, the bare loop's (half an hour ago) only its own once the floor ran,
    # and the product run finds both already advanced. The floor's enrollments are in another workspace
    # (their subscribers are the product's: the workspace only matters for the message rows).
    common.enrollments_create(floor_seq, floor_step, subscribers, due_at=now - timedelta(hours=2))
    common.enrollments_create(baseline_seq, baseline_step, subscribers, due_at=now - timedelta(hours=1))
    common.enrollments_create(product_seq, product_step, subscribers, due_at=now)
    common.analyze()
    print(f"set-up: {time.perf_counter() - started:.1f}s")
    print(common.oldest_transaction())

    started = time.perf_counter()
    floor = floor_loop(now=now - timedelta(minutes=90), batch_size=DEFAULT_BATCH_SIZE)
    floor_seconds = time.perf_counter() - started

    started = time.perf_counter()
    bare = bare_claim_loop(now=now - timedelta(minutes=30), batch_size=DEFAULT_BATCH_SIZE)
    bare_seconds = time.perf_counter() - started

    profile = cProfile.Profile() if profile_top else None
    started = time.perf_counter()
    result = profile.runcall(enrollments_process_due, now=now) if profile else enrollments_process_due(now=now)
    product_seconds = time.perf_counter() - started
    assert bare == floor == enrollments, (bare, floor)
    assert Message.objects.filter(enrollment__workspace=floor_workspace).count() == enrollments
    assert result.claimed == result.messages_created == enrollments, result
    assert Message.objects.filter(workspace=workspace).count() == enrollments

    bare_rate = common.rate(bare, bare_seconds)
    product_rate = common.rate(result.claimed, product_seconds)
    print(f"baseline  bare SKIP LOCKED claim + advance: {bare:,} rows in {bare_seconds:.2f}s = {bare_rate:,.0f} rows/s")
    print(f"product   enrollments_process_due:          {result.claimed:,} rows in {product_seconds:.2f}s "
          f"= {product_rate:,.0f} rows/s (each creates a queued Message)")  # fmt: skip
    floor_rate = common.rate(floor, floor_seconds)
    print(f"floor     the same work in SQL alone:       {floor:,} rows in {floor_seconds:.2f}s "
          f"= {floor_rate:,.0f} rows/s (claim, INSERT ... SELECT the messages, complete)")  # fmt: skip
    print(f"ratio     product / baseline = {product_rate / bare_rate:.2f}  (targets: 20,000 rows/s, ratio >= 0.5)")
    print(
        f"          product / floor = {product_rate / floor_rate:.2f}; floor / baseline = {floor_rate / bare_rate:.2f}"
    )
    if profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(profile_top)
        print(f"\nprofile of the product run (under cProfile, so slower; top {profile_top} by own time):")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return {"baseline": bare_rate, "product": product_rate, "floor": floor_rate}


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
