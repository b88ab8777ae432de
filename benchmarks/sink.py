"""A local SMTP sink in its own process (so it does not share the GIL with the sender being timed)."""

from __future__ import annotations

import logging
import multiprocessing
import re
import socket

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


class Sink:
    """`with Sink() as sink:` -> sink.port; sink.stats() -> (messages, distinct Message-IDs, bytes)."""

    def __enter__(self) -> Sink:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
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

    def __exit__(self, *exc: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)
