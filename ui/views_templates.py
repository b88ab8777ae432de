"""Template editor pages: list, new/edit (through sequences.services), a sandboxed preview, a test send.

The preview shows the SAVED template (the simplest safe choice): the editor's iframe loads a same-origin
URL whose response carries its own CSP (`sandbox`, no script source at all) and the iframe itself is
`sandbox` without allow-scripts, so a template's HTML can never run script in the app's origin. Saving
reloads the page and with it the preview; unsaved edits are not previewed (no signed-token round trip).
"""

from __future__ import annotations

from email.utils import formataddr
from typing import Any

from csp.decorators import csp
from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from accounts.models import Workspace
from core.errors import ApplicationError, NotFound
from sequences import services as sequence_services
from sequences.models import Template
from ui.access import request_workspace, workspace_view
from ui.forms import form_errors_add
from ui.views_outbox import TEST_SEND_HEADER, test_send_token

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
        "test_form": TestSendForm(initial={"to": getattr(request.user, "email", "")}),
        "nav": "templates",
    }
    return render(request, "ui/templates/edit.html", context, status=status)


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
