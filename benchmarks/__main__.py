"""Run the benchmarks on PostgreSQL (database es_bench).

python -m benchmarks [--enrollments 20000] [--messages 2000] [--workers 2] [--e2e-messages 20000]   # all
python -m benchmarks scheduler --enrollments 200000                                                   # one
python -m benchmarks sender --messages 20000
python -m benchmarks endtoend --messages 20000 [--workers 1] [--concurrency 2]
python -m benchmarks segments [--subscribers 100000] [--events 1000000]
python -m benchmarks websockets [--clients 100,1000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks import common, endtoend, scheduler, segments, sender, websockets

ONE = {
    "scheduler": scheduler.main,
    "sender": sender.main,
    "endtoend": endtoend.main,
    "segments": segments.main,
    "websockets": websockets.main,
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ONE:
        ONE[sys.argv[1]](sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrollments", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--e2e-messages", type=int, default=20_000)
    args = parser.parse_args()
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = endtoend.REDIS_URL
    common.setup_django()
    print(common.machine())
    scheduler.run(args.enrollments)
    sender.run(args.messages, args.batch, args.workers)
    endtoend.run(args.e2e_messages)
    segments.run()
    websockets.run([100, 1000], rate=100, seconds=10)


if __name__ == "__main__":
    main()
