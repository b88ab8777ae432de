"""Merge tags: the whitelisted context, defaults, escaping, and an engine that cannot reach files or settings."""

import pytest

from sequences.rendering import (
    TemplateCompileError,
    compile_template,
    html_engine,
    html_to_text,
    merge_context,
    plain_engine,
)
from tests.factories import SubscriberFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def render(html: str, *, subject: str = "s", text: str = "", **context_kwargs):
    workspace = context_kwargs.pop("workspace", None) or WorkspaceFactory(name="Acme", postal_address="1 Main St")
    compiled = compile_template(subject=subject, html=html, text=text)
    return compiled.render(merge_context(workspace=workspace, **context_kwargs))


def test_merge_tags_use_defaults_when_a_field_is_empty():
    subscriber = SubscriberFactory(first_name="", last_name="")
    rendered = render(
        "<p>Hi {{ subscriber.first_name|default:'there' }}</p>",
        subject='Hello {{ subscriber.first_name|default:"friend" }}',
        subscriber=subscriber,
        workspace=subscriber.workspace,
    )
    assert rendered.subject == "Hello friend"
    assert rendered.html == "<p>Hi there</p>"


def test_merge_tags_reach_subscriber_fields_attributes_and_workspace():
    subscriber = SubscriberFactory(
        email="ada@example.org", first_name="Ada", last_name="Lovelace", locale="en-GB", time_zone="Europe/London",
        attributes={"plan": "pro", "seats": 5},
    )  # fmt: skip
    html = (
        "{{ subscriber.full_name }}|{{ subscriber.email }}|{{ subscriber.locale }}|{{ subscriber.time_zone }}|"
        "{{ subscriber.attributes.plan }}|{{ subscriber.attributes.seats|add:1 }}|{{ workspace.name }}|"
        "{{ workspace.postal_address }}"
    )
    rendered = render(html, subscriber=subscriber, workspace=subscriber.workspace)
    assert rendered.html == (
        f"Ada Lovelace|ada@example.org|en-GB|Europe/London|pro|6|{subscriber.workspace.name}|1 Main Street, Springfield"
    )


def test_subscriber_without_time_zone_gets_the_workspaces():
    workspace = WorkspaceFactory(time_zone="America/New_York")
    subscriber = SubscriberFactory(workspace=workspace, time_zone="")
    assert render("{{ subscriber.time_zone }}", subscriber=subscriber, workspace=workspace).html == "America/New_York"


def test_unknown_variables_render_empty():
    assert render("[{{ subscriber.nope }}{{ nothing.at.all }}]").html == "[]"


def test_html_is_autoescaped_but_subject_and_text_are_not():
    rendered = render(
        "<p>{{ subscriber.first_name }}</p>",
        subject="{{ subscriber.first_name }}",
        text="{{ subscriber.first_name }}",
        sample={"first_name": "<b>Tom & Jerry</b>"},
    )
    assert rendered.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert rendered.subject == "<b>Tom & Jerry</b>"
    assert rendered.text == "<b>Tom & Jerry</b>"


def test_rendered_parts_are_plain_strings_not_marked_safe():
    rendered = render("<p>{{ subscriber.first_name }}</p>", text="{{ subscriber.first_name }}")
    assert {type(part) for part in (rendered.subject, rendered.preheader, rendered.html, rendered.text)} == {str}


def test_text_part_is_generated_from_the_rendered_html_when_absent():
    rendered = render('<h1>Hi {{ subscriber.first_name }}</h1><p>Read <a href="https://example.com/x">this</a></p>')
    assert "Hi Jane" in rendered.text
    assert "https://example.com/x" in rendered.text
    assert "<" not in rendered.text


def test_subject_is_one_line_whatever_the_template_produces():
    rendered = render("x", subject="Hello\n{{ subscriber.first_name }}\r\n  !")
    assert rendered.subject == "Hello Jane !"


def test_one_compiled_template_renders_many_subscribers():
    workspace = WorkspaceFactory()
    compiled = compile_template(subject="Hi {{ subscriber.first_name }}", html="{{ subscriber.email }}")
    people = [SubscriberFactory(workspace=workspace, first_name=name) for name in ("Ada", "Grace", "Linus")]
    subjects = [compiled.render(merge_context(workspace=workspace, subscriber=p)).subject for p in people]
    assert subjects == ["Hi Ada", "Hi Grace", "Hi Linus"]


def test_compile_error_names_the_field_and_the_line():
    with pytest.raises(TemplateCompileError) as caught:
        compile_template(subject="ok", html="<p>\n</p>\n{% for x in y %}{% endfo %}")
    assert caught.value.field == "html"
    assert caught.value.line == 3
    assert "Invalid block tag" in caught.value.message and "endfo" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        '{% include "/etc/passwd" %}',
        "{% extends '/etc/passwd' %}",
        "{% load static %}{% static 'x' %}",
        "{% load i18n %}",
        "{% debug %}",
        "{% url 'admin:index' %}",
        "{% csrf_token %}",
        "{% lorem 99999 p %}",
        "{{ subscriber.email.__class__ }}",
        "{{ subscriber|pprint }}",
    ],
)
def test_engine_refuses_tags_that_could_reach_files_code_or_settings(source):
    with pytest.raises(TemplateCompileError):
        compile_template(subject="s", html=source)


def test_settings_and_secrets_are_not_in_the_context(settings):
    settings.SECRET_KEY = "super-secret-value-1234567890"
    rendered = render(
        "[{{ settings.SECRET_KEY }}{{ SECRET_KEY }}{{ request }}{{ user }}{{ perms }}]",
        subject="{{ settings.SECRET_KEY }}",
    )
    assert rendered.html == "[]"
    assert "super-secret" not in rendered.subject


def test_engines_load_no_library_and_no_template_file():
    for engine in (html_engine(), plain_engine()):
        assert engine.libraries == {}
        assert engine.dirs == [] and engine.app_dirs is False
        with pytest.raises(Exception, match="passwd"):
            engine.get_template("/etc/passwd")


def test_padding_filters_are_bounded():
    rendered = render("{{ subscriber.first_name|ljust:'100000000'|length }}")
    assert rendered.html == "1000"


# The text part of a template without one: made once per template from the HTML (merge tags kept) when
# the HTML qualifies, and the same as converting each rendered HTML.
TEXT_FROM_HTML_CASES = [
    "<h1>Welcome, {{ subscriber.first_name|default:'there' }}</h1><p>Thanks for signing up.</p>",
    '<p>Hi {{ subscriber.full_name }},</p><p><a href="https://example.com/{{ subscriber.attributes.plan }}">'
    "See your plan</a> or <a href='https://example.com/docs'>the docs</a>.</p>",
    "<ul><li>{{ workspace.name|upper }}</li><li>{{ subscriber.email }}</li></ul><p>&copy; {{ workspace.name }}</p>",
    "<table><tr><td>Seats: {{ subscriber.attributes.seats|add:1 }}</td></tr></table><img src='x.png' alt='{{ x }}'>",
]


@pytest.mark.parametrize("html", TEXT_FROM_HTML_CASES)
def test_the_text_part_made_once_per_template_matches_converting_each_rendered_message(html):
    subscriber = SubscriberFactory(
        first_name="Tom & <Jerry>", last_name="O'Neil", email="tom@example.org", attributes={"plan": "pro", "seats": 4}
    )
    compiled = compile_template(subject="s", html=html)
    assert compiled.text is None and compiled.text_from_html is not None
    rendered = compiled.render(merge_context(workspace=subscriber.workspace, subscriber=subscriber))
    assert rendered.text == html_to_text(rendered.html)
    assert rendered.text  # something was converted at all


@pytest.mark.parametrize(
    "html",
    [
        "{% if subscriber.first_name %}<p>Hi {{ subscriber.first_name }}</p>{% endif %}<ul>{% for x in 'ab' %}"
        "<li>{{ x }}</li>{% endfor %}</ul>",
        "<p>{{ subscriber.attributes.bio|safe }}</p>",
        "<p>{{ subscriber.attributes.bio|linebreaks }}</p>",
        "<p>{# a comment #}Hi</p>",
    ],
)
def test_block_tags_and_markup_making_filters_keep_converting_each_message(html):
    subscriber = SubscriberFactory(first_name="Ada", attributes={"bio": "<b>Bold</b>\n\nline"})
    compiled = compile_template(subject="s", html=html)
    assert compiled.text_from_html is None
    rendered = compiled.render(merge_context(workspace=subscriber.workspace, subscriber=subscriber))
    assert rendered.text == html_to_text(rendered.html)


def test_a_template_with_its_own_text_part_keeps_it():
    compiled = compile_template(subject="s", html="<p>Hi {{ subscriber.first_name }}</p>", text="Plain {{ x }}")
    assert compiled.text is not None and compiled.text_from_html is None
