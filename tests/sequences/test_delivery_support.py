"""Support of the delivery tests (no tests here): a real SMTP server on loopback (aiosmtpd) and helpers."""

from __future__ import annotations

import email
import socket
import threading
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from sequences.models import Message, Template


class SmtpSink:
    """An aiosmtpd handler that keeps every accepted message and can answer scripted replies.

    `rcpt_replies[address]` and `data_replies[address]` are lists of replies used (and consumed) before
    the server accepts normally, e.g. ["451 4.7.1 Try again later"].
    """

    def __init__(self) -> None:
        self.envelopes: list = []
        self.rcpt_replies: dict[str, list[str]] = {}
        self.data_replies: dict[str, list[str]] = {}
        self.connections = 0
        self.port = 0
        self._lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            replies = self.rcpt_replies.get(address)
            if replies:
                return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                replies = self.data_replies.get(rcpt)
                if replies:
                    return replies.pop(0)
            self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or e.content, policy=default_policy) for e in self.envelopes
        ]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smtp_server_start(sink: SmtpSink) -> Controller:
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), server_hostname="sink.test")
    controller.start()
    return controller


def message_make(*, workspace, subscriber, template: Template, **fields) -> Message:
    return Message.objects.create(
        workspace=workspace, subscriber=subscriber, template=template, to_email=subscriber.email, **fields
    )


def html_part(mime: EmailMessage) -> str:
    return mime.get_body(preferencelist=("html",)).get_content()


def text_part(mime: EmailMessage) -> str:
    return mime.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture(name="smtp")
def smtp_server(settings):
    """A real SMTP server on 127.0.0.1 and a free port; Django's SMTP backend pointed at it."""
    sink = SmtpSink()
    controller = smtp_server_start(sink)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    sink.port = controller.port
    try:
        yield sink
    finally:
        controller.stop()
