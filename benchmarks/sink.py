"""Local SMTP sinks in their own processes (so they do not share the GIL with the sender being timed):
Postfix's `smtp-sink` (fast, C) when installed, else aiosmtpd."""

from __future__ import annotations

import logging
import multiprocessing
import re
import shutil
import socket
import subprocess
import threading
import time
from contextlib import AbstractContextManager

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class CountingHandler:
    def __init__(self) -> None:
        self.count = self.bytes = 0
        self.message_ids: set[bytes] = set()

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        self.bytes += len(envelope.original_content or b"")
        found = MESSAGE_ID.search(envelope.original_content or b"")
        if found:
            self.message_ids.add(found.group(1))
        return "250 OK"


def _serve(port: int, pipe) -> None:
    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # it logs every command at INFO
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    pipe.send("ready")
    while (command := pipe.recv()) != "stop":
        if command == "stats":
            pipe.send((handler.count, len(handler.message_ids), handler.bytes))
        elif command == "reset":
            handler.count, handler.bytes, handler.message_ids = 0, 0, set()
            pipe.send("ok")
    controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    """`with Sink() as sink:` -> sink.port; sink.stats() -> (messages, distinct Message-IDs, bytes)."""

    description = "aiosmtpd on loopback (own process)"

    def __enter__(self) -> Sink:
        self.port = free_port()
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_serve, args=(self.port, child), daemon=True)
        self._process.start()
        assert self._pipe.recv() == "ready"
        return self

    def _ask(self, command: str):
        self._pipe.send(command)
        return self._pipe.recv()

    def stats(self) -> tuple[int, int, int]:
        return self._ask("stats")

    def reset(self) -> None:
        self._ask("reset")

    def count(self) -> int:
        return self.stats()[0]

    def __exit__(self, *exc: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)


class PostfixSink:
    """`with PostfixSink() as sink:` Postfix's `smtp-sink` on loopback; sink.count() -> messages accepted
    (its running counter, `-c`) since the last sink.reset()."""

    COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.description = f"Postfix smtp-sink on loopback ({binary}, backlog 1024)"
        self._total = self._offset = 0

    def __enter__(self) -> PostfixSink:
        self.port = free_port()
        # -u: it refuses to run as root without a user to switch to; -c: print the counter.
        command = [self.binary, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def _read(self) -> None:
        assert self._process.stdout is not None
        buffer = b""
        while chunk := self._process.stdout.read1(65536):
            buffer += chunk
            found = self.COUNTER.findall(buffer)
            if found:
                self._total = int(found[-1])
                buffer = buffer[buffer.rfind(b"mesg=") :]

    def count(self) -> int:
        previous = -1
        while previous != self._total:  # let the counter settle: the reader may be a line behind
            previous = self._total
            time.sleep(0.2)
        return self._total - self._offset

    def reset(self) -> None:
        self._offset += self.count()

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def open_sink(kind: str = "auto") -> AbstractContextManager[Sink | PostfixSink]:
    """`postfix`: smtp-sink (an error if missing); `aiosmtpd`; `auto`: smtp-sink if installed."""
    binary = shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin")
    if kind == "postfix" and binary is None:
        raise RuntimeError("smtp-sink not found: apt-get install postfix")
    if kind != "aiosmtpd" and binary is not None:
        return PostfixSink(binary)
    return Sink()
