"""Templates API: create, validate (400 naming field and line), preview, delete, tenancy and roles."""

import pytest

from accounts.models import Role
from sequences.models import Template
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

VALID = {
    "name": "Welcome",
    "subject": "Welcome {{ subscriber.first_name|default:'there' }}",
    "preheader": "Glad you're here",
    "html": "<p>Hi {{ subscriber.first_name|default:'there' }}</p>",
}


def test_create_template_and_read_it_back(api):
    created = api.post("/api/v1/templates", VALID)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["name"] == "Welcome" and body["text"] == ""
    assert api.get(f"/api/v1/templates/{body['id']}").json()["subject"] == VALID["subject"]
    assert [t["name"] for t in api.get("/api/v1/templates").json()["results"]] == ["Welcome"]


def test_broken_html_answers_400_naming_the_field_and_the_line(api):
    html = "<p>Hi</p>\n<ul>\n{% for item in subscriber.attributes.items %}<li>{{ item }}</li>{% endfo %}\n</ul>"
    response = api.post("/api/v1/templates", {**VALID, "html": html})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("html: line 3: Invalid block tag")
    assert "endfo" in error["message"]
    assert list(error["details"]) == ["html"]
    assert not Template.objects.exists()


@pytest.mark.parametrize("field", ["subject", "preheader", "text"])
def test_broken_subject_preheader_or_text_is_refused_naming_that_field(api, field):
    response = api.post("/api/v1/templates", {**VALID, field: "Hi {% if %}"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(f"{field}: line 1: ")


def test_update_that_breaks_the_template_is_refused_and_changes_nothing(api, template):
    response = api.patch(f"/api/v1/templates/{template.pk}", {"subject": "{{ subscriber.first_name|nosuchfilter }}"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "subject: line 1: Invalid filter: 'nosuchfilter'"
    template.refresh_from_db()
    assert "nosuchfilter" not in template.subject


def test_include_and_load_are_refused_on_save(api):
    for html in ('{% include "/etc/passwd" %}', "{% load static %}"):
        response = api.post("/api/v1/templates", {**VALID, "html": html})
        assert response.status_code == 400
        assert response.json()["error"]["details"] == {"html": [response.json()["error"]["message"][6:]]}


def test_put_replaces_the_template(api, template):
    response = api.put(f"/api/v1/templates/{template.pk}", {**VALID, "name": "Renamed", "text": "Plain {{ x }}"})
    assert response.status_code == 200, response.content
    template.refresh_from_db()
    assert (template.name, template.text) == ("Renamed", "Plain {{ x }}")


def test_preview_for_a_subscriber(api, template):
    subscriber = SubscriberFactory(workspace=template.workspace, first_name="Grace", attributes={"plan": "pro"})
    template.html = "<p>Hi {{ subscriber.first_name }} on {{ subscriber.attributes.plan }}</p>"
    template.save()
    response = api.post(f"/api/v1/templates/{template.pk}/preview", {"subscriber_id": subscriber.pk})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "subject": "Hello Grace",
        "preheader": "",
        "html": "<p>Hi Grace on pro</p>",
        "text": "Hi Grace on pro",
    }


def test_preview_with_sample_data_and_with_the_built_in_sample(api, template):
    given = api.post(f"/api/v1/templates/{template.pk}/preview", {"sample": {"first_name": "Zoe"}}, format="json")
    assert given.json()["subject"] == "Hello Zoe"
    built_in = api.post(f"/api/v1/templates/{template.pk}/preview", {}, format="json")
    assert built_in.status_code == 200
    assert built_in.json()["subject"] == "Hello Jane"


def test_preview_for_a_subscriber_of_another_workspace_answers_404(api, template, other_workspace):
    stranger = SubscriberFactory(workspace=other_workspace)
    response = api.post(f"/api/v1/templates/{template.pk}/preview", {"subscriber_id": stranger.pk})
    assert response.status_code == 404


def test_delete_template_used_by_a_step_answers_409(api, active_sequence):
    template = active_sequence.steps.first().template
    response = api.delete(f"/api/v1/templates/{template.pk}")
    assert response.status_code == 409
    assert "Onboarding" in response.json()["error"]["message"]
    unused = Template.objects.create(workspace=template.workspace, name="x", subject="x", html="x")
    assert api.delete(f"/api/v1/templates/{unused.pk}").status_code == 204


def test_another_workspaces_template_is_invisible(api, other_template):
    assert api.get("/api/v1/templates").json()["results"] == []
    url = f"/api/v1/templates/{other_template.pk}"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"name": "mine"}).status_code == 404
    assert api.put(url, VALID).status_code == 404
    assert api.post(f"{url}/preview", {}).status_code == 404
    assert api.delete(url).status_code == 404
    other_template.refresh_from_db()
    assert other_template.name == "Theirs"


def test_viewer_reads_and_previews_but_cannot_write(client_for, workspace, template):
    viewer = client_for(workspace, Role.VIEWER)
    assert viewer.get("/api/v1/templates").status_code == 200
    assert viewer.post(f"/api/v1/templates/{template.pk}/preview", {}).status_code == 200
    assert viewer.post("/api/v1/templates", VALID).status_code == 403
    assert viewer.patch(f"/api/v1/templates/{template.pk}", {"name": "x"}).status_code == 403
    assert viewer.delete(f"/api/v1/templates/{template.pk}").status_code == 403
    marketer = client_for(workspace, Role.MARKETER)
    assert marketer.post("/api/v1/templates", VALID).status_code == 201


def test_idempotency_key_replays_the_first_create(api):
    first = api.post("/api/v1/templates", VALID, HTTP_IDEMPOTENCY_KEY="tpl-1")
    again = api.post("/api/v1/templates", VALID, HTTP_IDEMPOTENCY_KEY="tpl-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Template.objects.count() == 1


def test_odd_input_answers_400_not_500(api, template):
    for body in ({"name": "x"}, {**VALID, "from_email": "not-an-email"}, {**VALID, "html": "\x00"}):
        assert api.post("/api/v1/templates", body, format="json").status_code == 400
    huge = api.post(f"/api/v1/templates/{template.pk}/preview", {"subscriber_id": 10**30}, format="json")
    assert huge.status_code == 400
    assert api.get("/api/v1/templates/99999999999999999999999").status_code == 404


def test_the_api_takes_json_only(api, template):
    form = api.post("/api/v1/templates", "name=x&subject=y", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    assert not Template.objects.exclude(pk=template.pk).exists()
