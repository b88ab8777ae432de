"""Lists, tags, custom fields and profile editing in the marketer UI: every write goes through the
subscribers services with the API's roles, errors land on the field with a 400, other workspaces 404."""

from __future__ import annotations

import pytest

from accounts.models import Role
from subscribers.models import (
    Event,
    EventType,
    FieldDefinition,
    FieldType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Tag,
)
from tests.factories import (
    FieldDefinitionFactory,
    MailingListFactory,
    SequenceFactory,
    SubscriberFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscriber(workspace):
    return SubscriberFactory(workspace=workspace, email="ada@example.org")


def field_errors(response, field: str, form: str = "form") -> str:
    return " ".join(response.context[form].errors.get(field, []))


# Pages render -----------------------------------------------------------------------------------


def test_every_audience_page_renders_for_a_marketer(ui_client, workspace, subscriber):
    mailing_list = MailingListFactory(workspace=workspace, name="Weekly")
    definition = FieldDefinitionFactory(workspace=workspace, key="plan")
    client = ui_client()
    paths = [
        "/app/lists/", f"/app/lists/{mailing_list.pk}/", "/app/tags/", "/app/fields/",
        f"/app/fields/{definition.pk}/", "/app/subscribers/new/", f"/app/subscribers/{subscriber.pk}/",
        f"/app/subscribers/{subscriber.pk}/edit/", f"/app/subscribers/{subscriber.pk}/delete/",
    ]  # fmt: skip
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"audience.css" in response.content and b"<script>" not in response.content, path
        assert b' style="' not in response.content, path


def test_subscribers_page_links_lists_tags_fields_and_add(ui_client):
    page = ui_client().get("/app/subscribers/").content.decode()
    for href in ['href="/app/lists/"', 'href="/app/tags/"', 'href="/app/fields/"', 'href="/app/subscribers/new/"']:
        assert href in page, href
    viewer_page = ui_client(Role.VIEWER).get("/app/subscribers/").content.decode()
    assert 'href="/app/lists/"' in viewer_page and 'href="/app/subscribers/new/"' not in viewer_page


def test_login_is_required(client, subscriber):
    for path in ["/app/lists/", "/app/tags/", "/app/fields/", f"/app/subscribers/{subscriber.pk}/edit/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/app/login/"), path


# Lists -----------------------------------------------------------------------------------------


def test_lists_show_member_counts_and_link_to_the_filtered_subscribers(ui_client, workspace):
    weekly = MailingListFactory(workspace=workspace, name="Weekly")
    for status in ["subscribed", "subscribed", "pending", "unsubscribed"]:
        ListMembership.objects.create(
            mailing_list=weekly, subscriber=SubscriberFactory(workspace=workspace), status=status
        )
    response = ui_client(Role.VIEWER).get("/app/lists/")
    row = next(row for row in response.context["lists"] if row.pk == weekly.pk)
    assert (row.subscribed_count, row.pending_count, row.unsubscribed_count) == (2, 1, 1)
    assert f'href="/app/subscribers/?list={weekly.pk}&amp;list_status=subscribed"'.encode() in response.content
    assert b"New list" not in response.content  # viewers are not offered the form


def test_create_edit_and_delete_a_list(ui_client, workspace):
    client = ui_client()
    response = client.post("/app/lists/", {"name": "Weekly", "description": "News", "double_opt_in": "on"})
    assert response.status_code == 302 and response["Location"] == "/app/lists/"
    weekly = MailingList.objects.get(workspace=workspace, name="Weekly")
    assert weekly.double_opt_in and weekly.description == "News"

    response = client.post(f"/app/lists/{weekly.pk}/", {"name": "Weekly digest", "description": ""})
    assert response.status_code == 302
    weekly.refresh_from_db()
    assert (weekly.name, weekly.double_opt_in, weekly.description) == ("Weekly digest", False, "")

    assert client.post(f"/app/lists/{weekly.pk}/delete").status_code == 302
    assert not MailingList.objects.filter(pk=weekly.pk).exists()


def test_list_errors_are_shown_on_the_field_with_the_input_kept(ui_client, workspace):
    MailingListFactory(workspace=workspace, name="Weekly")
    client = ui_client()
    response = client.post("/app/lists/", {"name": "Weekly", "description": "kept text"})
    assert response.status_code == 400
    assert "exists" in field_errors(response, "name") and b"kept text" in response.content
    response = client.post("/app/lists/", {"name": "   "})
    assert response.status_code == 400 and field_errors(response, "name")
    other = MailingListFactory(workspace=workspace, name="Other")
    response = client.post(f"/app/lists/{other.pk}/", {"name": "Weekly"})
    assert response.status_code == 400 and "exists" in field_errors(response, "name")
    assert MailingList.objects.filter(workspace=workspace).count() == 2


def test_deleting_a_sequences_audience_shows_the_conflict(ui_client, workspace):
    weekly = MailingListFactory(workspace=workspace, name="Weekly")
    SequenceFactory(workspace=workspace, name="Onboarding", mailing_list=weekly)
    client = ui_client()
    response = client.post(f"/app/lists/{weekly.pk}/delete", follow=True)
    assert response.status_code == 200 and b"Onboarding" in response.content
    assert MailingList.objects.filter(pk=weekly.pk).exists()


# Tags ------------------------------------------------------------------------------------------


def test_create_rename_and_delete_a_tag_with_counts(ui_client, workspace, subscriber):
    client = ui_client()
    assert client.post("/app/tags/", {"name": "vip"}).status_code == 302
    vip = Tag.objects.get(workspace=workspace, name="vip")
    subscriber.tags.add(vip)
    page = client.get("/app/tags/")
    assert b"1 subscriber" in page.content and f'href="/app/subscribers/?tag={vip.pk}"'.encode() in page.content
    assert client.post(f"/app/tags/{vip.pk}/", {f"t{vip.pk}-name": "gold"}).status_code == 302
    vip.refresh_from_db()
    assert vip.name == "gold"
    assert client.post(f"/app/tags/{vip.pk}/delete").status_code == 302
    assert not Tag.objects.filter(pk=vip.pk).exists() and Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_tag_errors_are_shown_on_the_field(ui_client, workspace):
    TagFactory(workspace=workspace, name="vip")
    gold = TagFactory(workspace=workspace, name="gold")
    client = ui_client()
    response = client.post("/app/tags/", {"name": "vip"})
    assert response.status_code == 400 and "exists" in field_errors(response, "name")
    response = client.post(f"/app/tags/{gold.pk}/", {f"t{gold.pk}-name": "vip"})
    assert response.status_code == 400
    row = next(row for row in response.context["rows"] if row["tag"].pk == gold.pk)
    assert "exists" in " ".join(row["form"].errors["name"])
    gold.refresh_from_db()
    assert gold.name == "gold"


# Fields ----------------------------------------------------------------------------------------


def test_create_edit_and_delete_a_field(ui_client, workspace):
    client = ui_client()
    data = {"key": "plan", "label": "Plan", "type": "choice", "choices": "free\npro\n"}
    assert client.post("/app/fields/", data).status_code == 302
    plan = FieldDefinition.objects.get(workspace=workspace, key="plan")
    assert (plan.type, plan.choices) == (FieldType.CHOICE, ["free", "pro"])
    edit = client.get(f"/app/fields/{plan.pk}/")
    assert b'name="choices"' in edit.content and b'name="key"' not in edit.content  # the key is fixed
    edited = client.post(f"/app/fields/{plan.pk}/", {"label": "Plan name", "choices": "free\npro\nteam"})
    assert edited.status_code == 302
    plan.refresh_from_db()
    assert (plan.label, plan.choices) == ("Plan name", ["free", "pro", "team"])
    assert client.post(f"/app/fields/{plan.pk}/delete").status_code == 302
    assert not FieldDefinition.objects.filter(pk=plan.pk).exists()


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"key": "Plan"}, "key", "lower-case letter"),
        ({"key": "email"}, "key", "built-in"),
        ({"key": "plan", "type": "choice", "choices": ""}, "choices", "non-empty list"),
        ({"key": "plan", "type": "text", "choices": "a"}, "choices", "Only choice fields"),
        ({"key": "plan", "type": "choice", "choices": "a\na"}, "choices", "listed twice"),
        ({"key": "plan", "type": "colour"}, "type", "valid choice"),
    ],
)
def test_field_errors_are_shown_on_the_field(ui_client, workspace, data, field, text):
    response = ui_client().post("/app/fields/", {"label": "kept label", "type": "text", **data})
    assert response.status_code == 400
    assert text in field_errors(response, field) and b"kept label" in response.content
    assert not FieldDefinition.objects.filter(workspace=workspace).exists()


def test_field_label_may_not_be_emptied(ui_client, workspace):
    plan = FieldDefinitionFactory(workspace=workspace, key="plan", label="Plan")
    response = ui_client().post(f"/app/fields/{plan.pk}/", {"label": "  "})
    assert response.status_code == 400 and field_errors(response, "label")


# Adding a subscriber by hand ---------------------------------------------------------------------


def test_add_a_subscriber_with_fields_lists_and_tags(ui_client, workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.CHOICE, choices=["free", "pro"])
    FieldDefinitionFactory(workspace=workspace, key="seats", type=FieldType.NUMBER)
    weekly = MailingListFactory(workspace=workspace, name="Weekly")
    confirmed = MailingListFactory(workspace=workspace, name="Confirmed", double_opt_in=True)
    client = ui_client()
    page = client.get("/app/subscribers/new/")
    assert b'type="number"' in page.content and b'<option value="pro">' in page.content
    assert b"Confirmed (double opt-in)" in page.content
    response = client.post(
        "/app/subscribers/new/",
        {"email": " Grace@Example.org ", "first_name": "Grace", "attr_plan": "pro", "attr_seats": "3",
         "lists": [weekly.pk, confirmed.pk], "tags": "vip, beta"},
    )  # fmt: skip
    grace = Subscriber.objects.get(workspace=workspace, email="grace@example.org")
    assert response.status_code == 302 and response["Location"] == f"/app/subscribers/{grace.pk}/"
    assert grace.attributes == {"plan": "pro", "seats": 3} and grace.consent_source == "ui"
    statuses = dict(grace.list_memberships.values_list("mailing_list__name", "status"))
    assert statuses == {"Weekly": MembershipStatus.SUBSCRIBED, "Confirmed": MembershipStatus.PENDING}  # opt-in rule
    assert sorted(grace.tags.values_list("name", flat=True)) == ["beta", "vip"]


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"email": "not-an-email"}, "email", ""),
        ({"email": "ada@example.org"}, "email", "already a subscriber"),
        ({"attr_seats": "many"}, "attr_seats", "number"),
        ({"tags": "ok, " + "x" * 101}, "tags", "100 characters"),
    ],
)
def test_add_subscriber_errors_are_shown_on_the_field_and_nothing_is_created(
    ui_client, workspace, subscriber, data, field, text
):
    FieldDefinitionFactory(workspace=workspace, key="seats", type=FieldType.NUMBER)
    response = ui_client().post("/app/subscribers/new/", {"email": "new@example.org", "first_name": "Kept", **data})
    assert response.status_code == 400
    assert text in field_errors(response, field) and field_errors(response, field)
    assert b'value="Kept"' in response.content
    assert list(Subscriber.objects.filter(workspace=workspace)) == [subscriber]
    assert not Tag.objects.filter(workspace=workspace).exists()


def test_another_workspaces_list_is_an_invalid_choice_when_adding(ui_client, other_workspace):
    foreign = MailingListFactory(workspace=other_workspace)
    response = ui_client().post("/app/subscribers/new/", {"email": "new@example.org", "lists": [foreign.pk]})
    assert response.status_code == 400 and field_errors(response, "lists")


# Profile editing -------------------------------------------------------------------------------


def test_edit_profile_with_typed_fields_records_field_changed_events(ui_client, workspace, subscriber):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.CHOICE, choices=["free", "pro"])
    FieldDefinitionFactory(workspace=workspace, key="vip", type=FieldType.BOOLEAN)
    FieldDefinitionFactory(workspace=workspace, key="renews", type=FieldType.DATE)
    FieldDefinitionFactory(workspace=workspace, key="seen", type=FieldType.DATETIME)
    subscriber.attributes = {"plan": "free", "vip": True}
    subscriber.save()
    client = ui_client()
    page = client.get(f"/app/subscribers/{subscriber.pk}/edit/").content.decode()
    assert 'type="date"' in page and 'type="datetime-local"' in page
    assert '<option value="true" selected>' in page
    data = {
        "email": subscriber.email, "first_name": "Augusta", "last_name": "King", "time_zone": "Europe/London",
        "locale": "en", "attr_plan": "pro", "attr_vip": "", "attr_renews": "2027-01-31",
        "attr_seen": "2026-11-29T10:30",
    }  # fmt: skip
    response = client.post(f"/app/subscribers/{subscriber.pk}/edit/", data)
    assert response.status_code == 302 and response["Location"] == f"/app/subscribers/{subscriber.pk}/"
    subscriber.refresh_from_db()
    assert (subscriber.first_name, subscriber.time_zone) == ("Augusta", "Europe/London")
    assert subscriber.attributes == {"plan": "pro", "renews": "2027-01-31", "seen": "2026-11-29T10:30:00+00:00"}
    changed = Event.objects.filter(subscriber=subscriber, type=EventType.FIELD_CHANGED)
    assert {e.properties["field"] for e in changed} >= {"first_name", "plan", "vip", "renews", "seen"}
    profile = client.get(f"/app/subscribers/{subscriber.pk}/").content.decode()
    assert "Augusta" in profile and "plan: free → pro" in profile


def test_saving_an_unchanged_profile_changes_nothing(ui_client, workspace, subscriber):
    FieldDefinitionFactory(workspace=workspace, key="seen", type=FieldType.DATETIME)
    subscriber.attributes = {"seen": "2026-11-29T10:30:00+00:00"}
    subscriber.save()
    client = ui_client()
    form = client.get(f"/app/subscribers/{subscriber.pk}/edit/").context["form"]
    data = {name: form[name].value() or "" for name in form.fields}
    assert client.post(f"/app/subscribers/{subscriber.pk}/edit/", data).status_code == 302
    assert not Event.objects.filter(subscriber=subscriber, type=EventType.FIELD_CHANGED).exists()


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"attr_seats": "lots"}, "attr_seats", "number"),
        ({"time_zone": "Mars/Base"}, "time_zone", ""),
        ({"email": "grace@example.org"}, "email", "already a subscriber"),
        ({"email": ""}, "email", "required"),
    ],
)
def test_profile_errors_are_shown_on_the_field(ui_client, workspace, subscriber, change, field, text):
    SubscriberFactory(workspace=workspace, email="grace@example.org")
    FieldDefinitionFactory(workspace=workspace, key="seats", type=FieldType.NUMBER)
    data = {"email": subscriber.email, "first_name": "Kept", "attr_seats": "", **change}
    response = ui_client().post(f"/app/subscribers/{subscriber.pk}/edit/", data)
    assert response.status_code == 400 and text in field_errors(response, field) and field_errors(response, field)
    assert b'value="Kept"' in response.content
    subscriber.refresh_from_db()
    assert subscriber.first_name == "Ada" and subscriber.email == "ada@example.org"


def test_add_and_remove_a_list_and_a_tag_on_the_profile(ui_client, workspace, subscriber):
    weekly = MailingListFactory(workspace=workspace, name="Weekly")
    client = ui_client()
    base = f"/app/subscribers/{subscriber.pk}"
    assert client.post(f"{base}/lists/", {"mailing_list": weekly.pk}).status_code == 302
    membership = ListMembership.objects.get(subscriber=subscriber, mailing_list=weekly)
    assert membership.status == MembershipStatus.SUBSCRIBED
    assert client.post(f"{base}/lists/{weekly.pk}/remove").status_code == 302
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.UNSUBSCRIBED  # kept as history

    assert client.post(f"{base}/tags/", {"tags": "vip, beta"}).status_code == 302
    assert sorted(subscriber.tags.values_list("name", flat=True)) == ["beta", "vip"]
    vip = Tag.objects.get(workspace=workspace, name="vip")
    assert client.post(f"{base}/tags/{vip.pk}/remove").status_code == 302
    assert list(subscriber.tags.values_list("name", flat=True)) == ["beta"]
    types = set(Event.objects.filter(subscriber=subscriber).values_list("type", flat=True))
    assert {EventType.TAG_ADDED, EventType.TAG_REMOVED, EventType.SUBSCRIBED, EventType.UNSUBSCRIBED} <= types


def test_profile_form_errors_answer_400_on_the_field(ui_client, workspace, other_workspace, subscriber):
    client = ui_client()
    base = f"/app/subscribers/{subscriber.pk}"
    foreign = MailingListFactory(workspace=other_workspace)
    response = client.post(f"{base}/lists/", {"mailing_list": foreign.pk})
    assert response.status_code == 400 and field_errors(response, "mailing_list", "list_form")
    response = client.post(f"{base}/tags/", {"tags": " , "})
    assert response.status_code == 400 and "at least one" in field_errors(response, "tags", "tag_form")
    response = client.post(f"{base}/tags/", {"tags": "y" * 101})
    assert response.status_code == 400 and "100 characters" in field_errors(response, "tags", "tag_form")
    response = client.post(f"{base}/unsubscribe", {"reason": "r" * 300})
    assert response.status_code == 400 and field_errors(response, "reason", "unsubscribe_form")
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.ACTIVE and not subscriber.tags.exists()


def test_unsubscribe_records_the_reason_and_who(ui_client, subscriber):
    client = ui_client()
    response = client.post(f"/app/subscribers/{subscriber.pk}/unsubscribe", {"reason": "Asked by phone"})
    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED and subscriber.status_reason == "Asked by phone"
    assert subscriber.status_changed_by == f"user:{client.user.pk} {client.user.email}"
    event = Event.objects.get(subscriber=subscriber, type=EventType.UNSUBSCRIBED)
    assert event.properties["source"] == "ui"


def test_delete_asks_first_then_erases_the_subscriber(ui_client, subscriber):
    client = ui_client()
    page = client.get(f"/app/subscribers/{subscriber.pk}/delete/")
    assert page.status_code == 200 and b"cannot be undone" in page.content
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()
    response = client.post(f"/app/subscribers/{subscriber.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/app/subscribers/"
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()


# Roles, tenancy, CSRF ----------------------------------------------------------------------------


def test_viewers_read_but_every_write_is_refused(ui_client, workspace, subscriber):
    weekly = MailingListFactory(workspace=workspace)
    vip = TagFactory(workspace=workspace)
    plan = FieldDefinitionFactory(workspace=workspace)
    client = ui_client(Role.VIEWER)
    for path in ["/app/lists/", "/app/tags/", "/app/fields/", f"/app/subscribers/{subscriber.pk}/"]:
        response = client.get(path)
        assert response.status_code == 200 and b'method="post" action="/app/' not in response.content.replace(
            b'action="/app/logout/"', b""
        ).replace(b'action="/app/workspace/"', b""), path
    for path in [f"/app/lists/{weekly.pk}/", f"/app/fields/{plan.pk}/", "/app/subscribers/new/",
                 f"/app/subscribers/{subscriber.pk}/edit/", f"/app/subscribers/{subscriber.pk}/delete/"]:  # fmt: skip
        assert client.get(path).status_code == 403, path
    base = f"/app/subscribers/{subscriber.pk}"
    writes = {
        "/app/lists/": {"name": "x"}, f"/app/lists/{weekly.pk}/": {"name": "x"},
        f"/app/lists/{weekly.pk}/delete": {}, "/app/tags/": {"name": "x"}, f"/app/tags/{vip.pk}/": {},
        f"/app/tags/{vip.pk}/delete": {}, "/app/fields/": {"key": "x"}, f"/app/fields/{plan.pk}/": {"label": "x"},
        f"/app/fields/{plan.pk}/delete": {}, "/app/subscribers/new/": {"email": "x@example.org"},
        f"{base}/edit/": {"email": "x@example.org"}, f"{base}/lists/": {"mailing_list": weekly.pk},
        f"{base}/lists/{weekly.pk}/remove": {}, f"{base}/tags/": {"tags": "x"},
        f"{base}/tags/{vip.pk}/remove": {}, f"{base}/unsubscribe": {}, f"{base}/delete/": {},
    }  # fmt: skip
    for path, data in writes.items():
        assert client.post(path, data).status_code == 403, path
    assert MailingList.objects.filter(workspace=workspace).count() == 1
    assert Subscriber.objects.filter(pk=subscriber.pk, status=SubscriberStatus.ACTIVE).exists()


def test_another_workspaces_objects_answer_404(ui_client, workspace, other_workspace):
    theirs = SubscriberFactory(workspace=other_workspace)
    their_list = MailingListFactory(workspace=other_workspace)
    their_tag = TagFactory(workspace=other_workspace)
    their_field = FieldDefinitionFactory(workspace=other_workspace)
    mine = SubscriberFactory(workspace=workspace)
    client = ui_client()
    for path in [f"/app/lists/{their_list.pk}/", f"/app/fields/{their_field.pk}/",
                 f"/app/subscribers/{theirs.pk}/edit/", f"/app/subscribers/{theirs.pk}/delete/"]:  # fmt: skip
        assert client.get(path).status_code == 404, path
    posts = [
        f"/app/lists/{their_list.pk}/", f"/app/lists/{their_list.pk}/delete", f"/app/tags/{their_tag.pk}/",
        f"/app/tags/{their_tag.pk}/delete", f"/app/fields/{their_field.pk}/", f"/app/fields/{their_field.pk}/delete",
        f"/app/subscribers/{theirs.pk}/edit/", f"/app/subscribers/{theirs.pk}/lists/",
        f"/app/subscribers/{theirs.pk}/tags/", f"/app/subscribers/{theirs.pk}/unsubscribe",
        f"/app/subscribers/{theirs.pk}/delete/", f"/app/subscribers/{mine.pk}/lists/{their_list.pk}/remove",
        f"/app/subscribers/{mine.pk}/tags/{their_tag.pk}/remove",
    ]  # fmt: skip
    for path in posts:
        assert client.post(path, {"name": "x", "label": "x", "tags": "x"}).status_code == 404, path
    assert Subscriber.objects.filter(pk=theirs.pk).exists() and MailingList.objects.filter(pk=their_list.pk).exists()
    assert Tag.objects.filter(pk=their_tag.pk, name=their_tag.name).exists()
    assert FieldDefinition.objects.filter(pk=their_field.pk).exists()


def test_csrf_is_enforced_on_the_forms(ui_client, workspace, subscriber):
    client = ui_client(enforce_csrf_checks=True)
    assert client.post("/app/lists/", {"name": "Weekly"}).status_code == 403
    assert client.post("/app/tags/", {"name": "vip"}).status_code == 403
    assert client.post(f"/app/subscribers/{subscriber.pk}/delete/").status_code == 403
    assert not MailingList.objects.filter(workspace=workspace).exists()
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()
    MailingListFactory(workspace=workspace)
    page = client.get(f"/app/subscribers/{subscriber.pk}/").content.decode()
    # switcher, log out, add to list, tag, unsubscribe: every form carries the token
    assert page.count('name="csrfmiddlewaretoken"') == page.count('method="post"') == 5


def test_ids_beyond_the_database_range_answer_404_or_400_never_500(ui_client, subscriber):
    big = "9" * 25
    client = ui_client()
    base = f"/app/subscribers/{subscriber.pk}"
    for path in [f"/app/lists/{big}/", f"/app/fields/{big}/", f"/app/subscribers/{big}/edit/"]:
        assert client.get(path).status_code == 404, path
    for path in [f"{base}/lists/{big}/remove", f"{base}/tags/{big}/remove", f"/app/tags/{big}/delete"]:
        assert client.post(path).status_code == 404, path
    assert client.post(f"{base}/lists/", {"mailing_list": big}).status_code == 400
    assert client.post("/app/subscribers/new/", {"email": "new@example.org", "lists": [big]}).status_code == 400


def test_a_value_no_longer_allowed_stays_offered_and_survives_saving_other_fields(ui_client, workspace, subscriber):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.CHOICE, choices=["free", "pro"])
    subscriber.attributes = {"plan": "legacy"}  # allowed before the choices changed
    subscriber.save()
    client = ui_client()
    page = client.get(f"/app/subscribers/{subscriber.pk}/edit/").content.decode()
    assert '<option value="legacy" selected>legacy (no longer allowed)</option>' in page
    data = {"email": subscriber.email, "first_name": "Augusta", "attr_plan": "legacy"}
    assert client.post(f"/app/subscribers/{subscriber.pk}/edit/", data).status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.first_name == "Augusta" and subscriber.attributes == {"plan": "legacy"}
    response = client.post(f"/app/subscribers/{subscriber.pk}/edit/", {**data, "attr_plan": "team"})
    assert response.status_code == 400 and "free, pro" in field_errors(response, "attr_plan")
