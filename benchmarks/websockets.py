"""Live dashboards: 100 and 1,000 WebSocket clients on one workspace, events published at a fixed rate (issue 5).

Real parts end to end: daphne serving config.asgi on loopback (its own process), the Redis channel layer
(BENCH_WS_REDIS, default redis://127.0.0.1:6379/11), and real WebSocket clients over TCP in a process of
their own (autobahn's asyncio client: it comes with daphne; neither `websockets` nor `aiohttp` is installed).
This process is the producer, like a Celery worker: it records events through `events_record_many`, so the
realtime event handler counts them and its flusher thread pushes the coalesced updates.

Measured: delivery latency of each event to each client (from just before the producer records it to the
client's receipt of the update that carries it), p50/p95/max, and drops (client x event pairs never
delivered). Baseline, in the same run: a bare channel-layer `group_send` -> `receive` round trip on the
same Redis, with no WebSocket, daphne nor coalescing.

python -m benchmarks websockets [--clients 100,1000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

REDIS_URL = os.environ.get("BENCH_WS_REDIS", "redis://127.0.0.1:6379/11")
TICKS_PER_SECOND = 10
FEED_SIZE = 1000  # the push carries every pending event here: drops measure delivery, not the feed's bound


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- clients (a process of their own)


async def _clients(url: str, count: int, out: str) -> None:
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    loop = asyncio.get_running_loop()
    received: list[list] = [[] for _ in range(count)]  # per client: [receipt time, [event ids]]
    closes: dict[int, int] = {}
    ready = [asyncio.Event() for _ in range(count)]

    def protocol_for(index: int) -> type:
        class Client(WebSocketClientProtocol):
            def onMessage(self, payload: bytes, is_binary: bool) -> None:
                now = time.time()
                message = json.loads(payload)
                kind = message.get("type")
                if kind == "snapshot":
                    ready[index].set()
                elif kind == "update":
                    received[index].append([now, [event["id"] for event in message["events"]]])
                elif kind == "ping":
                    self.sendMessage(b'{"type": "pong"}')

            def onClose(self, was_clean: bool, code: int | None, reason: str | None) -> None:
                closes[index] = code or 0
                ready[index].set()

        return Client

    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    transports = []
    for start in range(0, count, 100):  # connect in waves: a loopback accept queue is finite
        wave = []
        for index in range(start, min(start + 100, count)):
            factory = WebSocketClientFactory(url)
            factory.protocol = protocol_for(index)
            wave.append(loop.create_connection(factory, host, int(port)))
        transports += await asyncio.gather(*wave)
        await asyncio.gather(*(ready[i].wait() for i in range(start, min(start + 100, count))))
    print(f"ready {count - len(closes)}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until the producer says stop
    Path(out).write_text(json.dumps({"received": received, "closes": closes}))
    for transport, _ in transports:
        transport.close()


# ---------------------------------------------------------------- producer and measurements


def _baseline(rounds: int = 300) -> list[float]:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def measure() -> list[float]:
        channel = await layer.new_channel()
        await layer.group_add("bench.baseline", channel)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            await layer.group_send("bench.baseline", {"type": "bench.ping", "events": list(range(10))})
            await layer.receive(channel)
            times.append((time.perf_counter() - started) * 1000)
        await layer.group_discard("bench.baseline", channel)
        return times

    return async_to_sync(measure)()


class Daphne:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Daphne:
        env = {
            **os.environ, "DJANGO_ENV": "development", "DEBUG": "0", "REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": REDIS_URL, "WEBSOCKET_MAX_CONNECTIONS": "5000", "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        daphne = Path(sys.executable).with_name("daphne")
        self.process = subprocess.Popen(
            [str(daphne), "-v", "0", "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"], env=env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        raise RuntimeError("daphne did not start")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)


def _one_size(*, url: str, workspace, subscriber, count: int, rate: int, seconds: int) -> dict:
    import redis
    from django.utils import timezone

    from subscribers.models import Event, EventType
    from subscribers.services import events_record_many

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        clients = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.websockets", "_clients", url, str(count), out.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert clients.stdout is not None and clients.stdin is not None
        ready_line = clients.stdout.readline().split()
        connected = int(ready_line[1]) if len(ready_line) == 2 else 0
        published: dict[int, float] = {}
        per_tick = max(1, rate // TICKS_PER_SECOND)
        started = time.time()
        for tick in range(seconds * TICKS_PER_SECOND):
            due = started + tick / TICKS_PER_SECOND
            time.sleep(max(0.0, due - time.time()))
            at = time.time()
            batch = [
                Event(workspace=workspace, subscriber=subscriber, type=EventType.OPENED, occurred_at=timezone.now())
                for _ in range(per_tick)
            ]
            for event in events_record_many(workspace=workspace, events=batch):
                published[event.pk] = at
        publishing = time.time() - started
        time.sleep(2.0)  # a few push intervals: the last pending events go out
        clients.stdin.write("stop\n")
        clients.stdin.flush()
        clients.wait(timeout=120)
        result = json.loads(Path(out.name).read_text())
    pushed = int(redis.Redis.from_url(REDIS_URL).hget("rt:pushed", f"{workspace.pk}:dashboard") or 0)
    latencies: list[float] = []
    delivered = 0
    updates = []
    for messages in result["received"]:
        seen: set[int] = set()
        updates.append(len(messages))
        for received_at, ids in messages:
            for pk in ids:
                if pk in published and pk not in seen:
                    seen.add(pk)
                    latencies.append((received_at - published[pk]) * 1000)
        delivered += len(seen)
    expected = count * len(published)
    return {
        "clients": count, "connected": connected, "events": len(published), "publishing_s": publishing,
        "pushes": pushed, "updates_per_client": statistics.mean(updates) if updates else 0,
        "p50": _pct(latencies, 0.50), "p95": _pct(latencies, 0.95), "max": max(latencies, default=float("nan")),
        "drops": expected - delivered, "expected": expected, "closes": result["closes"],
    }  # fmt: skip


def run(sizes: list[int], rate: int, seconds: int) -> None:
    import redis
    from django.conf import settings

    from accounts.models import Workspace
    from subscribers.models import Subscriber

    global REDIS_URL
    REDIS_URL = settings.REDIS_URL  # daphne and this producer share the Redis the settings use
    settings.WEBSOCKET_FEED_SIZE = FEED_SIZE
    print(f"\n== WebSockets: {', '.join(map(str, sizes))} clients on one dashboard, {rate} events/s for {seconds}s ==")
    print(f"server    daphne (1 process) on loopback; channel layer {REDIS_URL}; push interval "
          f"{settings.WEBSOCKET_PUSH_INTERVAL_MS} ms; clients: autobahn asyncio, 1 process")  # fmt: skip
    workspace = Workspace.objects.create(name="WS bench", slug=f"ws-bench-{int(time.time())}")
    subscriber = Subscriber.objects.create(workspace=workspace, email=f"reader@{workspace.slug}.example.org")
    base = _baseline()
    print(
        f"baseline  bare channel-layer group_send -> receive, 1 channel, {len(base)} rounds: "
        f"p50 {_pct(base, 0.5):.2f} ms, p95 {_pct(base, 0.95):.2f} ms"
    )
    from django.contrib.auth.models import User
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import Membership, Role

    user = User.objects.create_user(username=f"ws-bench-{workspace.pk}", password=None)
    Membership.objects.create(workspace=workspace, user=user, role=Role.VIEWER)
    port = _free_port()
    with Daphne(port):
        for count in sizes:
            token = str(AccessToken.for_user(user))  # fresh: an access token is short-lived
            url = f"ws://127.0.0.1:{port}/api/v1/ws/connect/dashboard?workspace={workspace.pk}&token={token}"
            redis.Redis.from_url(REDIS_URL).hdel("rt:pushed", f"{workspace.pk}:dashboard")
            r = _one_size(url=url, workspace=workspace, subscriber=subscriber, count=count, rate=rate, seconds=seconds)
            print(
                f"product   {r['clients']:>5} clients ({r['connected']} connected): {r['events']:,} events in "
                f"{r['publishing_s']:.1f}s; {r['pushes']} pushes ({r['updates_per_client']:.1f} updates per client, "
                f"{r['updates_per_client'] / seconds:.1f}/s); latency p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, "
                f"max {r['max']:.0f} ms; drops {r['drops']:,} of {r['expected']:,}"
                + (f"; closed early: {len(r['closes'])}" if r["closes"] else "")
            )


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_clients":
        asyncio.run(_clients(argv[1], int(argv[2]), argv[3]))
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks websockets")
    parser.add_argument("--clients", default="100,1000", help="comma-separated client counts")
    parser.add_argument("--rate", type=int, default=100, help="events per second")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = REDIS_URL
    common.setup_django()
    print(common.machine())
    run([int(n) for n in args.clients.split(",")], args.rate, args.seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
