"""The local outbox in the UI: what the embedded mode 'sent', for the current workspace only.

OutboxEmail rows carry no workspace (the email backend sees only MIME); they are scoped through the
Message-ID the sender gives each message, which the outbox stores: a workspace sees the emails of its
own messages, and the template editor's test sends, which carry a header signed for the workspace (they
have no Message row). Team notices stay admin-only.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.core.signing import Signer
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from accounts.models import Workspace
from sequences.models import Message, OutboxEmail
from ui.access import request_workspace, workspace_view

PAGE_SIZE = 25
OUTBOX_BACKEND = "sequences.outbox.OutboxEmailBackend"
# The stored HTML is shown in a sandboxed frame: no scripts, no forms, no navigation of the page; images
# may load (they are what the recipient would see, tracking pixel included).
EMAIL_HTML_CSP = "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
TEST_SEND_HEADER = "X-Email-Sequence-Test"


def test_send_token(workspace: Workspace) -> str:
    """The value of a test send's TEST_SEND_HEADER: signed, so no email can claim another workspace."""
    return Signer(salt="ui.outbox.test-send").sign(str(workspace.pk))


def outbox_emails(*, workspace: Workspace) -> QuerySet[OutboxEmail]:
    ids = Message.objects.filter(workspace=workspace).exclude(message_id_header="").values("message_id_header")
    test_sends = OutboxEmail.objects.filter(**{f"headers__{TEST_SEND_HEADER}": test_send_token(workspace)})
    return OutboxEmail.objects.filter(message_id__in=ids) | test_sends


def _email(request: HttpRequest, email_id: int) -> OutboxEmail:
    email = outbox_emails(workspace=request_workspace(request)).filter(pk=email_id).first()
    if email is None:
        raise Http404("No such email.")
    return email


@workspace_view()
@require_GET
def outbox_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(outbox_emails(workspace=request_workspace(request)), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "nav": "outbox", "local": settings.EMAIL_BACKEND == OUTBOX_BACKEND}
    return render(request, "ui/outbox/list.html", context)


@workspace_view()
@require_GET
def outbox_detail(request: HttpRequest, email_id: int) -> HttpResponse:
    email = _email(request, email_id)
    context = {"email": email, "list_unsubscribe": (email.headers or {}).get("List-Unsubscribe", ""), "nav": "outbox"}
    return render(request, "ui/outbox/detail.html", context)


@workspace_view()
@require_GET
@xframe_options_sameorigin
def outbox_html(request: HttpRequest, email_id: int) -> HttpResponse:
    email = _email(request, email_id)
    response = HttpResponse(email.html or "<p>(no HTML part)</p>", content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = EMAIL_HTML_CSP
    return response
