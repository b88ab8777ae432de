"""Counting a three-condition segment over 100,000 subscribers and 1,000,000 events (issue 4, §1).

Product: `segment_count` (the rule tree compiled into one query). Baseline, in the same run: the same
question hand-written in SQL (an attribute test and two EXISTS over the event log). Target: under 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from benchmarks import common

TREE = {
    "all": [
        {"attribute": "plan", "op": "eq", "value": "pro"},
        {"event": "purchased", "did": True, "within_days": 30},
        {"engagement": "opened", "within_days": 30},
    ]
}

BASELINE_SQL = """
SELECT count(*) FROM subscribers_subscriber s
WHERE s.workspace_id = %(ws)s AND s.attributes -> 'plan' = '"pro"'::jsonb
  AND EXISTS (SELECT 1 FROM subscribers_event e WHERE e.workspace_id = %(ws)s AND e.subscriber_id = s.id
              AND e.name = 'purchased' AND e.occurred_at >= %(since)s AND e.occurred_at <= %(now)s)
  AND EXISTS (SELECT 1 FROM subscribers_event e WHERE e.workspace_id = %(ws)s AND e.subscriber_id = s.id
              AND e.type = 'opened' AND e.occurred_at >= %(since)s AND e.occurred_at <= %(now)s)
"""


def _setup(subscribers: int, events: int):
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Workspace
    from subscribers.models import FieldDefinition, FieldType

    common.reset()
    workspace = Workspace.objects.create(name="Segments bench", slug="segments-bench")
    FieldDefinition.objects.create(workspace=workspace, key="plan", label="Plan", type=FieldType.TEXT)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO subscribers_subscriber (workspace_id, email, first_name, last_name, status, attributes,
                   time_zone, locale, consent_source, created_at, updated_at, status_reason, status_changed_by)
               SELECT %s, 'b' || g || '@example.org', '', '', 'active',
                      jsonb_build_object('plan', (ARRAY['free','pro','team'])[1 + g %% 3]), '', '', '', %s, %s, '', ''
               FROM generate_series(1, %s) g""",
            [workspace.pk, now, now, subscribers],
        )
        cursor.execute("SELECT min(id), max(id) FROM subscribers_subscriber WHERE workspace_id = %s", [workspace.pk])
        low, high = cursor.fetchone()
        names = ["purchased", "viewed", "added_to_cart", "opened", "clicked"]
        cursor.execute(
            """INSERT INTO subscribers_event (workspace_id, subscriber_id, type, name, properties, occurred_at,
                   recorded_at, currency)
               SELECT %s, %s + (random() * (%s - %s))::bigint, t.kind, t.kind, '{}'::jsonb,
                      %s - random() * interval '90 days', %s, ''
               FROM generate_series(1, %s) g,
                    LATERAL (SELECT (%s::text[])[1 + (g %% 5)] AS kind) t""",
            [workspace.pk, low, high, low, now, now, events, names],
        )
        cursor.execute(
            "UPDATE subscribers_event SET type = 'custom' WHERE name IN ('purchased','viewed','added_to_cart')"
        )
        cursor.execute("ANALYZE subscribers_subscriber; ANALYZE subscribers_event")
    return workspace, now


def run(subscribers: int = 100_000, events: int = 1_000_000, repeats: int = 5) -> None:
    from datetime import timedelta

    from django.db import connection

    from subscribers.segments import segment_count

    print(f"\n== Segment count: {subscribers:,} subscribers, {events:,} events, three conditions, PostgreSQL ==")
    started = time.perf_counter()
    workspace, now = _setup(subscribers, events)
    print(f"set-up: {time.perf_counter() - started:.1f}s (bulk-inserted, analyzed; not timed)")
    product, baseline, answers = [], [], set()
    for _ in range(repeats):
        t0 = time.perf_counter()
        answers.add(("product", segment_count(workspace=workspace, tree=TREE, now=now)))
        product.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(BASELINE_SQL, {"ws": workspace.pk, "since": now - timedelta(days=30), "now": now})
            answers.add(("baseline", cursor.fetchone()[0]))
        baseline.append(time.perf_counter() - t0)
    counts = dict(answers)
    p, b = statistics.median(product), statistics.median(baseline)
    print(f"answer    product {counts['product']:,} subscribers; baseline {counts['baseline']:,}")
    print(f"baseline  hand-written SQL (EXISTS):   median of {repeats}: {b * 1000:.0f} ms")
    print(f"product   segment_count (one query):   median of {repeats}: {p * 1000:.0f} ms  (target < 1,000 ms)")
    print(f"ratio     baseline / product = {b / p:.2f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks segments")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    common.setup_django()
    print(common.machine())
    random.seed(7)
    run(args.subscribers, args.events)
