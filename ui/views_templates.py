"""Template editor pages: list, new/edit (through sequences.services), a sandboxed preview, a test send.

Two previews share one sandbox. The editor's iframe always loads a same-origin URL whose response carries
its own CSP (`sandbox`, no script source at all), and the iframe itself is `sandbox` without allow-scripts,
so a template's HTML can never run script in the app's origin:
- `template_preview` serves the SAVED template;
- the live preview of UNSAVED edits: htmx posts the form (on input, 500 ms after typing stops) to
  `template_live_preview`, which renders it through the same service, keeps the HTML in the cache under a
  key of this user, workspace and editor page, and answers a new iframe whose src is
  `template_live_preview_document` for that key. Not `srcdoc`: a srcdoc document inherits the app page's
  CSP, which forbids the inline styles every email uses (each one would be a CSP violation), and it would
  put the template's markup inside the app's page source. Render errors come back beside their field
  (htmx out-of-band swaps) and leave the last good preview in place.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from email.utils import formataddr
from typing import Any

from csp.decorators import csp
from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from accounts.models import Role, Workspace
from core.errors import ApplicationError, NotFound
from sequences import services as sequence_services
from sequences.models import Template
from sequences.rendering import CONTENT_FIELDS, RenderedEmail
from ui.access import request_workspace, workspace_view
from ui.forms import form_errors_add
from ui.views_outbox import TEST_SEND_HEADER, test_send_token

logger = logging.getLogger(__name__)

LIVE_PREVIEW_SECONDS = 15 * 60  # an editor left open keeps its last preview this long
# Per user. Typing posts at most twice a second (the editor waits 500 ms after each keystroke); a
# script posting faster would make the server render and cache without end.
LIVE_PREVIEW_RATE = "120/m"
TEST_SEND_RATE = "10/m"  # per user: enough to iterate on a design, too few to use the page as a mailer

# The preview response's own policy: nothing may load but inline styles and images (emails use both);
# `sandbox` also gives the document an opaque origin, and only the app's own pages may frame it.
PREVIEW_CSP: dict[str, Any] = {
    "default-src": ["'none'"],
    "style-src": ["'unsafe-inline'"],
    "img-src": ["https:", "http:", "data:"],
    "font-src": ["https:", "data:"],
    "script-src": ["'none'"],
    "frame-ancestors": ["'self'"],
    "form-action": ["'none'"],
    "base-uri": ["'none'"],
    "sandbox": [""],
}


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=200)
    subject = forms.CharField(max_length=255, help_text="Merge tags allowed, e.g. {{ subscriber.first_name }}.")
    preheader = forms.CharField(max_length=255, required=False)
    html = forms.CharField(label="HTML", widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false"}))
    text = forms.CharField(
        label="Plain text", required=False, widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Generated from the HTML when empty.",
    )  # fmt: skip


class TestSendForm(forms.Form):
    to = forms.EmailField(label="Send a test to")


def _template(workspace: Workspace, template_id: int) -> Template:
    """Scoped lookup: another workspace's template is NotFound (the decorator's 404)."""
    template = Template.objects.filter(workspace=workspace, pk=template_id).first()
    if template is None:
        raise NotFound("Template not found.")
    return template


@workspace_view()
@require_GET
def template_list(request: HttpRequest) -> HttpResponse:
    templates = Template.objects.filter(workspace=request_workspace(request)).order_by("name", "id")
    return render(request, "ui/templates/list.html", {"templates": templates, "nav": "templates"})


def _editor(request: HttpRequest, template: Template | None) -> HttpResponse:
    workspace = request_workspace(request)
    if request.method == "POST":
        form = TemplateForm(request.POST)
        if form.is_valid():
            try:
                if template is None:
                    template = sequence_services.template_create(workspace=workspace, **form.cleaned_data)
                else:
                    template = sequence_services.template_update(
                        workspace=workspace, template=template, **form.cleaned_data
                    )
            except ApplicationError as error:
                form_errors_add(form, error)
            else:
                messages.success(request, f"Saved {template.name}.")
                return redirect("ui:template-edit", template_id=template.pk)
        status = 400
    else:
        initial = {f: getattr(template, f) for f in TemplateForm.base_fields} if template else {}
        form = TemplateForm(initial=initial)
        status = 200
    context = {
        "form": form,
        "template_obj": template,
        "rendered": _saved_rendering(workspace, template),
        # One cache slot per editor page: every live preview from this page overwrites the last.
        "preview_key": secrets.token_urlsafe(16),
        "live_fields": CONTENT_FIELDS,
        "test_form": TestSendForm(initial={"to": getattr(request.user, "email", "")}),
        "nav": "templates",
    }
    return render(request, "ui/templates/edit.html", context, status=status)


def _saved_rendering(workspace: Workspace, template: Template | None) -> RenderedEmail | None:
    """The saved template's subject and text beside its preview (None: new, or it fails to render)."""
    if template is None:
        return None
    try:
        return sequence_services.template_preview(workspace=workspace, template=template)
    except ApplicationError:
        return None


@workspace_view()
@require_http_methods(["GET", "POST"])
def template_new(request: HttpRequest) -> HttpResponse:
    return _editor(request, None)


@workspace_view()
@require_http_methods(["GET", "POST"])
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    return _editor(request, _template(request_workspace(request), template_id))


@xframe_options_sameorigin
@csp(PREVIEW_CSP)
@workspace_view()
@require_GET
def template_preview(request: HttpRequest, template_id: int) -> HttpResponse:
    """The saved template rendered for the sample subscriber, as a standalone document for the iframe."""
    template = _template(request_workspace(request), template_id)
    try:
        rendered = sequence_services.template_preview(workspace=request_workspace(request), template=template)
    except ApplicationError as error:  # a merge tag that fails at render time: say so inside the frame
        return HttpResponse(f"<p>{escape(error.message)}</p>", status=200)
    return HttpResponse(rendered.html)


class LivePreviewForm(forms.Form):
    """The editor's form as the live preview reads it: only the parts that render, none required (a
    half-typed template previews as far as it goes)."""

    preview_key = forms.SlugField(max_length=64)
    subject = forms.CharField(required=False, strip=False)
    preheader = forms.CharField(required=False, strip=False)
    html = forms.CharField(required=False, strip=False)
    text = forms.CharField(required=False, strip=False)
    name = forms.CharField(required=False)


def _live_cache_key(request: HttpRequest, preview_key: str) -> str:
    # The user and workspace are part of the key: a key seen by someone else opens nothing for them.
    return f"ui:template-live-preview:{request_workspace(request).pk}:{request.user.pk}:{preview_key}"


def _draft_render(request: HttpRequest, data: dict[str, Any]) -> tuple[RenderedEmail | None, dict[str, list[str]]]:
    """The unsaved parts rendered through the service, or None and each part's errors."""
    draft = Template(workspace=request_workspace(request), name=data["name"], **{
        part: data[part] for part in CONTENT_FIELDS
    })  # fmt: skip  # never saved: template_preview only reads it
    try:
        return sequence_services.template_preview(workspace=request_workspace(request), template=draft), {}
    except ApplicationError as error:  # a merge tag that does not compile or fails to render
        errors: dict[str, list[str]] = {}
        details = error.details if isinstance(error.details, dict) else {}
        for field, field_messages in details.items():
            errors.setdefault(field if field in CONTENT_FIELDS else "html", []).extend(map(str, field_messages))
        return None, errors or {"html": [error.message]}


def _live_preview_rate(group: str, request: HttpRequest) -> str:
    return LIVE_PREVIEW_RATE


@workspace_view(write_role=Role.VIEWER)  # changes no data; the API's template preview is a viewer's POST too
@require_POST
@ratelimit(group="ui-template-live-preview", key="user", rate=_live_preview_rate, method="POST", block=False)
def template_live_preview(request: HttpRequest) -> HttpResponse:
    """Render the editor's unsaved parts for the sample subscriber (htmx). Answers a new sandboxed iframe
    for the preview wrapper, plus out-of-band swaps: each part's render error beside its field, the
    rendered subject and text. On an error the last good preview stays (HX-Reswap: none)."""
    form = LivePreviewForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Reload the editor to preview.", status=400)
    data = form.cleaned_data
    if getattr(request, "limited", False):
        rendered, errors = None, {"html": ["Too many previews at once; the preview catches up when you pause."]}
    else:
        rendered, errors = _draft_render(request, data)
    context: dict[str, Any] = {"rendered": rendered, "name": data["name"], "preview_key": data["preview_key"]}
    if rendered is not None:
        try:
            cache.set(_live_cache_key(request, data["preview_key"]), rendered.html, LIVE_PREVIEW_SECONDS)
        except Exception:  # the cache (Redis) is down: say so beside the HTML, not a 500
            logger.warning("Could not keep a template live preview in the cache", exc_info=True)
            rendered, errors = None, {"html": ["The live preview is unavailable right now; saving still works."]}
        else:
            # A new src for new content: the iframe is replaced and reloads, and the URL names the version.
            context["version"] = hashlib.sha256(rendered.html.encode()).hexdigest()[:16]
    context["rendered"] = rendered
    context["error_slots"] = [(field, errors.get(field, [])) for field in CONTENT_FIELDS]
    response = render(request, "ui/templates/_live_preview.html", context)
    if rendered is None:
        response["HX-Reswap"] = "none"
    return response


@xframe_options_sameorigin
@csp(PREVIEW_CSP)
@workspace_view()
@require_GET
def template_live_preview_document(request: HttpRequest, preview_key: str) -> HttpResponse:
    """The last live preview of one editor page, as a standalone document for the iframe (same CSP as the
    saved preview). Expired, or another user's or workspace's key: 404."""
    try:
        html = cache.get(_live_cache_key(request, preview_key))
    except Exception:  # the cache (Redis) is down: the frame says so instead of a 500
        logger.warning("Could not read a template live preview from the cache", exc_info=True)
        response = HttpResponse("<p>The live preview is unavailable right now.</p>", status=503)
    else:
        if html is None:
            response = HttpResponse("<p>This preview has expired; edit the template to show it again.</p>", status=404)
        else:
            response = HttpResponse(html)
    response["Cache-Control"] = "no-store"
    return response


def _test_rate(group: str, request: HttpRequest) -> str:
    return TEST_SEND_RATE


@workspace_view()
@require_POST
@ratelimit(group="ui-template-test", key="user", rate=_test_rate, method="POST", block=False)
def template_test_send(request: HttpRequest, template_id: int) -> HttpResponseBase:
    workspace = request_workspace(request)
    template = _template(workspace, template_id)
    if getattr(request, "limited", False):
        messages.error(request, "Too many test sends; wait a minute.")
        return redirect("ui:template-edit", template_id=template.pk)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Test send: {form.errors['to'][0]}")
        return redirect("ui:template-edit", template_id=template.pk)
    try:
        rendered = sequence_services.template_preview(workspace=workspace, template=template)
    except ApplicationError as error:
        messages.error(request, f"Test send: {error.message}")
        return redirect("ui:template-edit", template_id=template.pk)
    from_email = template.from_email or workspace.from_email or settings.DEFAULT_FROM_EMAIL
    from_name = template.from_name or workspace.from_name
    sender = formataddr((from_name, from_email)) if from_name else from_email
    message = EmailMultiAlternatives(
        subject=f"[Test] {rendered.subject}",
        body=rendered.text,
        from_email=sender,
        to=[form.cleaned_data["to"]],
        headers={TEST_SEND_HEADER: test_send_token(workspace)},  # shows it in the workspace's local outbox
    )
    message.attach_alternative(rendered.html, "text/html")
    message.send()
    messages.success(request, f"Test sent to {form.cleaned_data['to']}.")
    return redirect("ui:template-edit", template_id=template.pk)
