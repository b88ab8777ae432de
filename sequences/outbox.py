"""The local outbox: an email backend that stores messages in the database instead of sending them."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage


def _html_alternative(message: EmailMessage) -> str:
    for content, mimetype in getattr(message, "alternatives", []) or []:
        if mimetype == "text/html":
            return str(content)
    return str(message.body) if getattr(message, "content_subtype", "plain") == "html" else ""


class OutboxEmailBackend(BaseEmailBackend):
    """The embedded default: nothing leaves the machine; every message is kept for the admin (and the UI)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        from sequences.models import OutboxEmail

        rows = []
        for message in email_messages:
            mime = message.message()
            rows.append(
                OutboxEmail(
                    message_id=str(mime.get("Message-ID", "")),
                    from_email=str(message.from_email),
                    to=list(message.to),
                    cc=list(message.cc),
                    bcc=list(message.bcc),
                    subject=str(message.subject),
                    text=str(message.body) if message.content_subtype == "plain" else "",
                    html=_html_alternative(message),
                    headers={key: str(value) for key, value in mime.items()},
                    raw=mime.as_string(),
                )
            )
        OutboxEmail.objects.bulk_create(rows)
        return len(rows)
