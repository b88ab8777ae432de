"""Run every benchmark: `python -m benchmarks [--enrollments 200000] [--messages 2000] [--workers 2]`."""

from __future__ import annotations

import argparse
import os
import platform
import time

from benchmarks import common, scheduler, sender


def machine() -> str:
    from django.db import connection

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        ram = next(int(line.split()[1]) for line in f if line.startswith("MemTotal")) / 2**20
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    try:
        import redis

        client = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
        redis_version = client.info("server")["redis_version"]
    except Exception as exc:  # noqa: BLE001 - the benchmarks do not need Redis; report why it is unknown
        redis_version = f"unknown ({type(exc).__name__})"
    return (
        f"machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, {cpu}; "
        f"{ram:.1f} GiB RAM; "
        f"Python {platform.python_version()}; PostgreSQL {postgres}; Redis {redis_version}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enrollments", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    common.setup_django()
    print(machine())
    scheduler.run(args.enrollments)
    sender.run(args.messages, args.batch, args.workers)


if __name__ == "__main__":
    main()
