"""Merge tags: a locked-down Django template engine over a whitelisted context; compile once, render many.

The engine knows only a whitelist of the built-in tags and filters: no `{% load %}`, `{% include %}`,
`{% extends %}`, `{% url %}`, `{% debug %}` or `{% csrf_token %}`, and no loader that can read a file.
The context is built from plain dicts and strings (never model instances), so a template can reach
nothing but the fields listed in `merge_context`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import html2text
from django.template import Context, Engine, Library
from django.template import defaultfilters as django_filters
from django.template import defaulttags as django_tags
from django.template.base import Template as DjangoTemplate

from accounts.models import Workspace
from subscribers.models import Subscriber

ALLOWED_TAGS = frozenset({
    "autoescape", "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "now", "regroup",
    "resetcycle", "spaceless", "templatetag", "verbatim", "widthratio", "with",
})  # fmt: skip
# pprint shows Python reprs; the padding filters are re-registered below with a bounded width.
EXCLUDED_FILTERS = frozenset({"pprint", "ljust", "rjust", "center"})
MAX_PAD_WIDTH = 1000

# The fields each part of a template is stored in, in the order they are checked and reported.
CONTENT_FIELDS = ("subject", "preheader", "html", "text")
PLAIN_FIELDS = frozenset({"subject", "preheader", "text"})

SAMPLE_SUBSCRIBER: dict[str, Any] = {
    "email": "jane.doe@example.com",
    "first_name": "Jane",
    "last_name": "Doe",
    "locale": "en",
    "time_zone": "",
    "attributes": {},
}


def _bounded_padding(name: str):
    padding = django_filters.register.filters[name]

    def pad(value: Any, arg: Any) -> str:
        try:
            width = min(int(arg), MAX_PAD_WIDTH)
        except (TypeError, ValueError):
            return value
        return padding(value, width)

    return pad


merge_tag_library = Library()
for _name in ALLOWED_TAGS:
    merge_tag_library.tags[_name] = django_tags.register.tags[_name]
for _name, _filter in django_filters.register.filters.items():
    if _name not in EXCLUDED_FILTERS:
        merge_tag_library.filters[_name] = _filter
for _name in ("ljust", "rjust", "center"):
    merge_tag_library.filter(_name, _bounded_padding(_name), is_safe=True)


class MergeTagEngine(Engine):
    """An Engine whose only tags and filters are the whitelist above, with no libraries to load."""

    def get_template_builtins(self, builtins: list[str]) -> list[Library]:
        return [merge_tag_library]

    def get_template_libraries(self, libraries: dict[str, str]) -> dict[str, Library]:
        return {}


def _engine_options(*, autoescape: bool) -> dict[str, Any]:
    return {
        "dirs": [],
        "app_dirs": False,
        "context_processors": [],
        # debug only adds line information to syntax errors, which the editor shows.
        "debug": True,
        "loaders": [("django.template.loaders.locmem.Loader", {})],
        "string_if_invalid": "",
        "autoescape": autoescape,
        "libraries": {},
        "builtins": [],
    }


@cache
def html_engine() -> MergeTagEngine:
    return MergeTagEngine(**_engine_options(autoescape=True))


@cache
def plain_engine() -> MergeTagEngine:
    return MergeTagEngine(**_engine_options(autoescape=False))


class TemplateCompileError(Exception):
    """A part of a template that does not compile: which field, on which line, and why."""

    def __init__(self, *, field: str, line: int | None, message: str) -> None:
        self.field = field
        self.line = line
        self.message = message
        super().__init__(self.describe())

    def describe(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class TemplateRenderError(Exception):
    def __init__(self, *, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


_ON_LINE = re.compile(r" on line \d+")
_DJANGO_HINT = "Did you forget to register or load this tag?"
_HINT = "Merge tags offer only the built-in tags listed in docs/sequences.md."


def _compile(source: str, *, field: str) -> DjangoTemplate:
    engine = html_engine() if field not in PLAIN_FIELDS else plain_engine()
    try:
        return engine.from_string(source)
    except Exception as exc:  # noqa: BLE001 - mostly TemplateSyntaxError; any failure is the template's fault
        debug = getattr(exc, "template_debug", None) or {}
        message = _ON_LINE.sub("", str(exc)).replace(_DJANGO_HINT, _HINT) or type(exc).__name__
        raise TemplateCompileError(field=field, line=debug.get("line"), message=message)


def html_to_text(html: str) -> str:
    """The plain-text part of an email whose template has none: links kept, images dropped."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.unicode_snob = True
    return converter.handle(html).strip()


# A plain-text template made once from the HTML template (html_to_text on the source, merge tags kept)
# instead of html_to_text on every rendered message. Only for HTML whose merge tags are `{{ ... }}`
# variables with filters that make no markup: block tags ({% if %}, {% for %}) move text across the
# structure html2text sees, and markup-making filters (safe, urlize, linebreaks, ...) would leave raw HTML.
_VARIABLE_TAG = re.compile(r"\{\{.*?\}\}", re.DOTALL)
TEXT_SAFE_FILTERS = frozenset({
    "add", "capfirst", "cut", "date", "default", "default_if_none", "first", "floatformat", "last", "length",
    "lower", "pluralize", "stringformat", "time", "title", "truncatechars", "truncatewords", "upper", "wordcount",
    "yesno",
})  # fmt: skip
_PLACEHOLDER = "ESMERGETAG{}Q"


def _text_safe(tag: str) -> bool:
    # "{{ subscriber.first_name|default:'there' }}": every filter after the first "|" must be in the list.
    filters = tag[2:-2].split("|")[1:]
    return all(part.split(":", 1)[0].strip() in TEXT_SAFE_FILTERS for part in filters)


def text_source_from_html(html: str) -> str | None:
    """The source of a plain-text template equivalent to html_to_text of the rendered `html` (up to the
    whitespace html2text would collapse inside merged values), or None when the HTML does not qualify."""
    if "{%" in html or "{#" in html or _PLACEHOLDER.format("") in html:
        return None
    tags = _VARIABLE_TAG.findall(html)
    if not all(_text_safe(tag) for tag in tags):
        return None
    index = iter(range(len(tags)))
    text = html_to_text(_VARIABLE_TAG.sub(lambda _: _PLACEHOLDER.format(next(index)), html))
    for position, tag in enumerate(tags):
        placeholder = _PLACEHOLDER.format(position)
        if text.count(placeholder) > 1:
            return None
        # A tag html2text dropped (in an image, a <style>) is dropped from the text as it would be.
        text = text.replace(placeholder, tag)
    return text


def _one_line(value: str) -> str:
    # Subjects and preheaders end up in headers: no line breaks, no runs of spaces.
    return " ".join(value.split())


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    """The compiled parts of one template. Compile once (`compile_template`), render per subscriber."""

    subject: DjangoTemplate
    preheader: DjangoTemplate
    html: DjangoTemplate
    text: DjangoTemplate | None
    # Without a text part: the text template made from the HTML, when it qualifies (text_source_from_html).
    text_from_html: DjangoTemplate | None = None

    def render(self, context: Mapping[str, Any]) -> RenderedEmail:
        html = self._render("html", self.html, context, autoescape=True)
        if self.text is not None:
            text = self._render("text", self.text, context, autoescape=False)
        elif self.text_from_html is not None:
            text = self._render("text", self.text_from_html, context, autoescape=False)
        else:
            text = html_to_text(html)
        return RenderedEmail(
            subject=_one_line(self._render("subject", self.subject, context, autoescape=False)),
            preheader=_one_line(self._render("preheader", self.preheader, context, autoescape=False)),
            html=html,
            text=text.strip(),
        )

    @staticmethod
    def _render(field: str, template: DjangoTemplate, context: Mapping[str, Any], *, autoescape: bool) -> str:
        try:
            rendered = template.render(Context(dict(context), autoescape=autoescape))
            # A plain str, not Django's SafeString: whoever embeds it (an admin page, a wrapper
            # template) must escape it there rather than trust a mark made for another context.
            return str.__str__(rendered)
        except Exception as exc:  # noqa: BLE001 - a filter given odd data must not take a batch down
            raise TemplateRenderError(field=field, message=_ON_LINE.sub("", str(exc)) or type(exc).__name__)


def compile_template(*, subject: str, preheader: str = "", html: str, text: str = "") -> CompiledTemplate:
    """Compile every part; the first part that does not compile raises TemplateCompileError."""
    sources = {"subject": subject, "preheader": preheader, "html": html, "text": text}
    compiled = {field: _compile(sources[field], field=field) for field in CONTENT_FIELDS if field != "text"}
    text_from_html = None
    if not text.strip():
        source = text_source_from_html(html)
        if source is not None:
            try:
                text_from_html = _compile(source, field="text")
            except TemplateCompileError:  # the tags compiled in the HTML; anything odd keeps the slow path
                text_from_html = None
    return CompiledTemplate(
        subject=compiled["subject"],
        preheader=compiled["preheader"],
        html=compiled["html"],
        text=_compile(text, field="text") if text.strip() else None,
        text_from_html=text_from_html,
    )


def _workspace_context(workspace: Workspace) -> dict[str, str]:
    return {
        "name": workspace.name,
        "from_name": workspace.from_name,
        "from_email": workspace.from_email,
        "reply_to": workspace.reply_to,
        "postal_address": workspace.postal_address,
        "time_zone": workspace.time_zone,
    }


def _subscriber_context(values: Mapping[str, Any], *, workspace: Workspace) -> dict[str, Any]:
    first_name = str(values.get("first_name") or "")
    last_name = str(values.get("last_name") or "")
    attributes = values.get("attributes") or {}
    return {
        "email": str(values.get("email") or ""),
        "first_name": first_name,
        "last_name": last_name,
        "full_name": f"{first_name} {last_name}".strip(),
        "locale": str(values.get("locale") or ""),
        "time_zone": str(values.get("time_zone") or "") or workspace.time_zone,
        "attributes": dict(attributes) if isinstance(attributes, Mapping) else {},
    }


def merge_context(
    *, workspace: Workspace, subscriber: Subscriber | None = None, sample: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The whitelisted context: `subscriber` (a real one, or the sample merged over SAMPLE_SUBSCRIBER)
    and `workspace`. Nothing else is reachable from a template."""
    if subscriber is not None:
        values: Mapping[str, Any] = {
            "email": subscriber.email,
            "first_name": subscriber.first_name,
            "last_name": subscriber.last_name,
            "locale": subscriber.locale,
            "time_zone": subscriber.time_zone,
            "attributes": subscriber.attributes,
        }
    else:
        values = {**SAMPLE_SUBSCRIBER, **(sample or {})}
    return {
        "subscriber": _subscriber_context(values, workspace=workspace),
        "workspace": _workspace_context(workspace),
    }
