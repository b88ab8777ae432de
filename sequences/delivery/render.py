"""Turning a claimed Message into the email that goes out: content, tracked links, footer and headers."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, field
from email import quoprimime
from email.header import Header
from email.utils import formataddr, formatdate

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.crypto import salted_hmac

from accounts.models import Workspace
from sequences.models import Message, Template
from sequences.rendering import CompiledTemplate, compile_template, merge_context
from sequences.tokens import TokenPurpose, token_make, tracking_url

# An <a ...href="..."> (or href='...') attribute: group 1 is everything before the URL's quote.
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<html\b", re.IGNORECASE)
_TRACKED_SCHEMES = ("http://", "https://")

PREHEADER_STYLE = (
    "display:none;font-size:1px;color:transparent;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;"
    "mso-hide:all"
)


@dataclass
class BuiltEmail:
    """One message, ready for a backend, with what must be stored on its row before it is sent."""

    email: EmailMultiAlternatives
    subject: str
    from_email: str
    message_id_header: str
    links: list[str] = field(default_factory=list)


def message_id_header(*, message_id: int, from_email: str) -> str:
    """The RFC 5322 Message-ID of a message: the same for every attempt, so a resend is recognisable."""
    digest = salted_hmac("email-sequence.message-id", str(message_id)).hexdigest()[:12]
    domain = _domain(from_email) or _domain(settings.FROM_EMAIL) or "localhost"
    return f"<es.{message_id}.{digest}@{domain}>"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower() if "@" in address else ""


def _address(address: str) -> str:
    # The bare address inside "Name <address>".
    return address.rpartition("<")[2].rstrip(">").strip() if "<" in address else address.strip()


def unsubscribe_mailto(*, message_id: int, from_email: str) -> str:
    """`mailto:unsubscribe+TOKEN@domain`: the signed unsubscribe token with its ':' written as '.'
    (a colon is not allowed in an address); neither the base62 id nor the signature contains a dot."""
    token = token_make(purpose=TokenPurpose.UNSUBSCRIBE, message_id=message_id).replace(":", ".")
    domain = _domain(from_email) or _domain(settings.FROM_EMAIL) or "localhost"
    return f"mailto:unsubscribe+{token}@{domain}?subject=unsubscribe"


def rewrite_links(*, html_text: str, message_id: int, skip_prefixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """Every http(s) link replaced by its click-tracking URL; returns the HTML and the original URLs by index.

    mailto:, tel:, anchors, merge-less relative links and the unsubscribe link are left alone.
    """
    links: list[str] = []

    def replace(match: re.Match[str]) -> str:
        url = html.unescape(match.group(3)).strip()
        if not url.lower().startswith(_TRACKED_SCHEMES) or url.startswith(skip_prefixes):
            return match.group(0)
        index = len(links)
        links.append(url)
        tracked = tracking_url(purpose=TokenPurpose.CLICK, message_id=message_id, link_index=index)
        return f"{match.group(1)}{match.group(2)}{html.escape(tracked)}{match.group(2)}"

    return _HREF.sub(replace, html_text), links


def _document(body: str) -> str:
    if _HTML_TAG.search(body):
        return body
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f"<body>{body}</body></html>"
    )


def _insert_after_body_open(document: str, snippet: str) -> str:
    match = _BODY_OPEN.search(document)
    if match is None:
        return snippet + document
    return document[: match.end()] + snippet + document[match.end() :]


def _insert_before_body_close(document: str, snippet: str) -> str:
    matches = list(_BODY_CLOSE.finditer(document))
    if not matches:
        return document + snippet
    at = matches[-1].start()
    return document[:at] + snippet + document[at:]


def _footer_html(*, workspace: Workspace, unsubscribe_url: str) -> str:
    address = "<br>".join(html.escape(line) for line in workspace.postal_address.strip().splitlines() if line.strip())
    parts = [f'<p style="margin:0 0 8px 0">{address}</p>'] if address else []
    link = f'<a href="{html.escape(unsubscribe_url)}" style="color:#6b7280">Unsubscribe</a>'
    parts.append(f'<p style="margin:0">{link}</p>')
    return (
        '<div class="es-footer" style="margin-top:32px;padding-top:16px;border-top:1px solid #e5e7eb;'
        f'font-size:12px;line-height:1.5;color:#6b7280;text-align:center">{"".join(parts)}</div>'
    )


def _footer_text(*, workspace: Workspace, unsubscribe_url: str) -> str:
    lines = ["", "", "--"]
    lines += [line.strip() for line in workspace.postal_address.strip().splitlines() if line.strip()]
    lines.append(f"Unsubscribe: {unsubscribe_url}")
    return "\n".join(lines)


_inliner: css_inline.CSSInliner | None = None


def _inline_css(document: str) -> str:
    global _inliner
    if _inliner is None:
        # No remote stylesheets: rendering must never reach out to the network.
        _inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)
    try:
        return _inliner.inline(document)
    except (css_inline.InlineError, ValueError):
        return document


class BatchRenderer:
    """Renders the messages of one batch; each template is compiled once, however many messages use it."""

    def __init__(self) -> None:
        self._compiled: dict[int, CompiledTemplate] = {}

    def compiled(self, template: Template) -> CompiledTemplate:
        compiled = self._compiled.get(template.pk)
        if compiled is None:
            compiled = compile_template(
                subject=template.subject, preheader=template.preheader, html=template.html, text=template.text
            )
            self._compiled[template.pk] = compiled
        return compiled

    def build(self, *, message: Message, connection: object | None = None) -> BuiltEmail:
        """The email for `message` (its workspace, subscriber and template loaded)."""
        workspace = message.workspace
        template = message.template or (message.step.template if message.step_id and message.step else None)
        if template is None:
            raise ValueError("the message has no template")
        rendered = self.compiled(template).render(merge_context(workspace=workspace, subscriber=message.subscriber))

        unsubscribe_url = tracking_url(purpose=TokenPurpose.UNSUBSCRIBE, message_id=message.pk)
        unsubscribe_prefix = unsubscribe_url.rsplit("/", 1)[0] + "/"
        body, links = rewrite_links(html_text=rendered.html, message_id=message.pk, skip_prefixes=(unsubscribe_prefix,))
        document = _document(body)
        if rendered.preheader:
            hidden = f'<div class="es-preheader" style="{PREHEADER_STYLE}">{html.escape(rendered.preheader)}</div>'
            document = _insert_after_body_open(document, hidden)
        tail = _footer_html(workspace=workspace, unsubscribe_url=unsubscribe_url)
        if workspace.track_opens:
            pixel = tracking_url(purpose=TokenPurpose.OPEN, message_id=message.pk)
            tail += (
                f'<img src="{html.escape(pixel)}" width="1" height="1" alt="" '
                'style="display:block;width:1px;height:1px;border:0" />'
            )
        document = _inline_css(_insert_before_body_close(document, tail))
        text = rendered.text + _footer_text(workspace=workspace, unsubscribe_url=unsubscribe_url)

        # The scheduler stores the bare address; the header adds the from name unless the row says otherwise.
        from_email = _from_header(workspace=workspace, template=template)
        if message.from_email and _address(message.from_email).lower() != _address(from_email).lower():
            from_email = message.from_email
        message_id = message.message_id_header or message_id_header(message_id=message.pk, from_email=from_email)
        headers = {
            "Message-ID": message_id,
            "List-Unsubscribe": (
                f"<{unsubscribe_url}>, <{unsubscribe_mailto(message_id=message.pk, from_email=_address(from_email))}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        email = EmailMultiAlternatives(
            subject=rendered.subject,
            body=text,
            from_email=from_email,
            to=[message.to_email],
            reply_to=[workspace.reply_to] if workspace.reply_to else None,
            headers=headers,
            connection=connection,
        )
        email.attach_alternative(document, "text/html")
        return BuiltEmail(
            email=email, subject=rendered.subject, from_email=from_email, message_id_header=message_id, links=links
        )


# RFC 5322: a line is at most 998 characters, and should be at most 78.
_LINE_LIMIT = 998
_FOLD_AT = 78
_NEWLINES = re.compile(r"\r\n|\r|\n")


def _fold(name: str, value: str) -> str:
    """`Name: value`, folded at spaces so lines stay within 78 characters where a space allows."""
    line = f"{name}: {value}"
    if len(line) <= _FOLD_AT:
        return line
    lines: list[str] = []
    while len(line) > _FOLD_AT:
        # The last space within the limit that has something other than spaces before it.
        at = line.rfind(" ", len(name) + 2 if not lines else 1, _FOLD_AT + 1)
        if at <= 0 or not line[:at].strip():
            at = line.find(" ", _FOLD_AT + 1)
            if at == -1:
                break
        lines.append(line[:at])
        line = line[at:]  # the continuation line starts with the space it was folded at
    lines.append(line)
    return "\r\n".join(lines)


def _part(text: str, subtype: str) -> str:
    # Django's choice: 7bit/8bit unless a line is longer than RFC 5322 allows, then quoted-printable.
    if any(len(line.encode()) > _LINE_LIMIT for line in text.splitlines()):
        encoding = "quoted-printable"
        body = quoprimime.body_encode(text.encode().decode("latin-1"), eol="\r\n")
    else:
        encoding = "7bit" if text.isascii() else "8bit"
        body = _NEWLINES.sub("\r\n", text)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n{body}"
    )


def smtp_bytes(email: EmailMultiAlternatives) -> bytes | None:
    """The message as Django's SMTP backend would put it on the wire (multipart/alternative: the text
    part, then the HTML; the same headers in the same order), built directly rather than through the
    email package (whose header folding and boundary search cost more than the rest of a send).
    None for anything else (attachments, non-ASCII addresses, another charset, odd headers): the caller
    then lets the backend build it."""
    if email.attachments or email.cc or len(email.alternatives) != 1:
        return None
    html_content, mimetype = email.alternatives[0]
    subject, body = email.subject, email.body
    if (
        not isinstance(body, str) or not body or not isinstance(subject, str) or not isinstance(html_content, str)
        or mimetype != "text/html" or (email.encoding or settings.DEFAULT_CHARSET).lower() != "utf-8"
    ):  # fmt: skip
        return None
    headers: list[tuple[str, str]] = [
        ("From", email.extra_headers.get("From", email.from_email)),
        ("To", ", ".join(email.to)),
    ]
    if email.reply_to:
        headers.append(("Reply-To", ", ".join(email.reply_to)))
    names = {name.lower() for name in email.extra_headers}
    if "date" not in names:
        headers.append(("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
    if "message-id" not in names:
        return None
    headers += [
        (n, str(v)) for n, v in email.extra_headers.items() if n.lower() not in {"from", "to", "cc", "reply-to"}
    ]
    lines = []
    for name, value in headers:
        if not value.isascii() or "\n" in value or "\r" in value:
            return None
        lines.append(_fold(name, value))
    if "\n" in subject or "\r" in subject:
        return None
    if subject.isascii():
        lines.insert(0, _fold("Subject", subject))
    else:
        lines.insert(0, "Subject: " + Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n"))
    parts = [_part(body, "plain"), _part(html_content, "html")]
    boundary = f"==============={secrets.randbelow(10**19):019d}=="
    while any(boundary in part for part in parts):
        boundary = f"==============={secrets.randbelow(10**19):019d}=="
    if any(len(line) > _LINE_LIMIT for header in lines for line in header.split("\r\n")):
        return None
    head = f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\nMIME-Version: 1.0\r\n'
    separator = f"\r\n--{boundary}\r\n"
    document = (
        head + "\r\n".join(lines) + "\r\n\r\n" + f"--{boundary}\r\n" + separator.join(parts)
        + f"\r\n--{boundary}--\r\n"
    )  # fmt: skip
    return document.encode()


def _from_header(*, workspace: Workspace, template: Template) -> str:
    address = template.from_email or workspace.from_email or settings.FROM_EMAIL
    name = template.from_name or workspace.from_name
    return formataddr((name, address)) if name else address
