"""Every subscribers endpoint is scoped to the caller's workspace, and viewers only read."""

from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from subscribers.imports import import_job_create, import_job_run
from subscribers.models import ImportJob, ListMembership, Subscriber
from subscribers.services import event_record, suppression_create
from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory, TagFactory

pytestmark = pytest.mark.django_db


@dataclass
class Rows:
    subscriber: Subscriber
    mailing_list: object
    tag: object
    field: object
    suppression: object
    event: object
    import_job: ImportJob


def make_rows(workspace, email: str) -> Rows:
    subscriber = SubscriberFactory(workspace=workspace, email=email)
    mailing_list = MailingListFactory(workspace=workspace, name=f"List of {workspace.slug}")
    ListMembership.objects.create(mailing_list=mailing_list, subscriber=subscriber)
    tag = TagFactory(workspace=workspace, name=f"tag-{workspace.slug}")
    subscriber.tags.add(tag)
    field = FieldDefinitionFactory(workspace=workspace, key=f"field_{workspace.slug}")
    suppression = suppression_create(workspace=workspace, value=f"blocked-{workspace.slug}@example.org")
    event, _ = event_record(workspace=workspace, subscriber=subscriber, name=f"event-{workspace.slug}")
    job = import_job_create(
        workspace=workspace, file=SimpleUploadedFile("x.csv", b"email\nbad\n"), column_mapping={"email": "email"}
    )
    import_job_run(import_job_id=job.pk)
    return Rows(subscriber, mailing_list, tag, field, suppression, event, job)


@pytest.fixture
def mine(workspace):
    return make_rows(workspace, "mine@example.org")


@pytest.fixture
def theirs(other_workspace):
    return make_rows(other_workspace, "theirs@example.org")


COLLECTIONS = [
    ("/api/v1/subscribers", "subscriber"),
    ("/api/v1/lists", "mailing_list"),
    ("/api/v1/tags", "tag"),
    ("/api/v1/fields", "field"),
    ("/api/v1/suppressions", "suppression"),
    ("/api/v1/events", "event"),
    ("/api/v1/imports", "import_job"),
]


@pytest.mark.parametrize(("path", "attr"), COLLECTIONS)
def test_rows_of_another_workspace_are_absent_from_lists(api, mine, theirs, path, attr):
    response = api.get(path)
    assert response.status_code == 200, response.content
    ids = [row["id"] for row in response.json()["results"]]
    assert getattr(mine, attr).pk in ids
    assert getattr(theirs, attr).pk not in ids


@pytest.mark.parametrize(("path", "attr"), COLLECTIONS)
def test_rows_of_another_workspace_answer_404_on_detail_update_and_delete(api, mine, theirs, path, attr):
    foreign = getattr(theirs, attr).pk
    assert api.get(f"{path}/{foreign}").status_code == 404
    if path not in ("/api/v1/events", "/api/v1/imports"):  # the log and imports are not edited
        assert api.patch(f"{path}/{foreign}", {"name": "x", "label": "x", "reason": "x"}).status_code == 404
        assert api.delete(f"{path}/{foreign}").status_code == 404
    assert type(getattr(theirs, attr)).objects.filter(pk=foreign).exists()


def test_subscriber_actions_on_another_workspaces_subscriber_answer_404(api, mine, theirs):
    foreign = theirs.subscriber.pk
    assert api.post(f"/api/v1/subscribers/{foreign}/unsubscribe", {}).status_code == 404
    assert api.post(f"/api/v1/subscribers/{foreign}/confirm").status_code == 404
    assert api.get(f"/api/v1/subscribers/{foreign}/events").status_code == 404
    assert api.get(f"/api/v1/subscribers/{foreign}/lists").status_code == 404
    assert api.post(f"/api/v1/subscribers/{foreign}/lists", {"list_ids": [mine.mailing_list.pk]}).status_code == 404
    assert api.delete(f"/api/v1/subscribers/{foreign}/lists/{theirs.mailing_list.pk}").status_code == 404
    assert api.post(f"/api/v1/subscribers/{foreign}/tags", {"tags": ["x"]}, format="json").status_code == 404
    assert api.delete(f"/api/v1/subscribers/{foreign}/tags/{theirs.tag.pk}").status_code == 404
    theirs.subscriber.refresh_from_db()
    assert theirs.subscriber.status == "active"
    assert theirs.subscriber.tags.count() == 1


def test_own_subscriber_cannot_be_linked_to_another_workspaces_list_or_tag(api, mine, theirs):
    own = mine.subscriber.pk
    response = api.post(f"/api/v1/subscribers/{own}/lists", {"list_ids": [theirs.mailing_list.pk]}, format="json")
    assert response.status_code == 400 and "list_ids[0]" in response.json()["error"]["details"]
    assert api.delete(f"/api/v1/subscribers/{own}/lists/{theirs.mailing_list.pk}").status_code == 404
    assert api.delete(f"/api/v1/subscribers/{own}/tags/{theirs.tag.pk}").status_code == 404
    response = api.post("/api/v1/subscribers", {"email": "n@example.org", "list_ids": [theirs.mailing_list.pk]})
    assert response.status_code == 400
    assert api.get(f"/api/v1/subscribers?list={theirs.mailing_list.pk}").json()["results"] == []
    assert api.get(f"/api/v1/subscribers?tag={theirs.tag.pk}").json()["results"] == []


def test_list_members_of_another_workspace_are_unreachable(api, mine, theirs):
    foreign_list = theirs.mailing_list.pk
    assert api.get(f"/api/v1/lists/{foreign_list}/members").status_code == 404
    payload = {"subscriber_ids": [mine.subscriber.pk]}
    assert api.post(f"/api/v1/lists/{foreign_list}/members", payload, format="json").status_code == 404
    assert api.delete(f"/api/v1/lists/{foreign_list}/members?subscriber_id={theirs.subscriber.pk}").status_code == 404
    # Another workspace's subscriber cannot be put on (or taken off) my list, by id or by address.
    response = api.post(
        f"/api/v1/lists/{mine.mailing_list.pk}/members",
        {"subscriber_ids": [theirs.subscriber.pk], "emails": ["theirs@example.org"]},
        format="json",
    )
    assert [r["error"]["code"] for r in response.json()["results"]] == ["not_found", "not_found"]
    assert not ListMembership.objects.filter(mailing_list=mine.mailing_list, subscriber=theirs.subscriber).exists()
    assert ListMembership.objects.get(subscriber=theirs.subscriber).status == "subscribed"


def test_events_cannot_be_recorded_for_or_read_from_another_workspace(api, mine, theirs):
    response = api.post("/api/v1/events", {"subscriber_id": theirs.subscriber.pk, "name": "x"}, format="json")
    assert response.status_code == 404
    response = api.post("/api/v1/events", {"email": "theirs@example.org", "name": "x"}, format="json")
    assert response.status_code == 404
    assert api.get(f"/api/v1/events?subscriber={theirs.subscriber.pk}").json()["results"] == []
    assert theirs.subscriber.events.count() == 1


def test_the_same_dedupe_key_in_two_workspaces_is_two_events(api, other_api, mine, theirs):
    first = api.post(
        "/api/v1/events", {"subscriber_id": mine.subscriber.pk, "name": "x", "dedupe_key": "k"}, format="json"
    )
    second = other_api.post(
        "/api/v1/events", {"subscriber_id": theirs.subscriber.pk, "name": "x", "dedupe_key": "k"}, format="json"
    )
    assert first.status_code == second.status_code == 201


def test_bulk_and_export_never_touch_another_workspace(api, mine, theirs):
    response = api.post(
        "/api/v1/subscribers/bulk",
        {"subscribers": [{"email": "theirs@example.org", "first_name": "Mine"}]},
        format="json",
    )
    assert response.json()["results"][0]["status"] == "created"
    theirs.subscriber.refresh_from_db()
    assert theirs.subscriber.first_name != "Mine"
    lines = b"".join(api.get("/api/v1/subscribers/export").streaming_content).decode().splitlines()
    assert len(lines) == 3  # header, mine@, and my own theirs@ row
    assert str(theirs.subscriber.pk) not in [line.split(",")[0] for line in lines]


def test_imports_of_another_workspace_and_their_reports_answer_404(api, mine, theirs):
    assert api.get(f"/api/v1/imports/{theirs.import_job.pk}/errors").status_code == 404
    assert api.get(f"/api/v1/imports/{mine.import_job.pk}/errors").status_code == 200
    response = api.post(
        "/api/v1/imports",
        {"file": SimpleUploadedFile("x.csv", b"email\na@example.org\n"), "list_id": theirs.mailing_list.pk},
        format="multipart",
    )
    assert response.status_code == 400 and "list_id" in response.json()["error"]["details"]


WRITES = [
    ("post", "/api/v1/subscribers", {"email": "v@example.org"}),
    ("patch", "/api/v1/subscribers/{subscriber}", {"first_name": "V"}),
    ("delete", "/api/v1/subscribers/{subscriber}", None),
    ("post", "/api/v1/subscribers/bulk", {"subscribers": [{"email": "v@example.org"}]}),
    ("post", "/api/v1/subscribers/{subscriber}/unsubscribe", {}),
    ("post", "/api/v1/subscribers/{subscriber}/confirm", None),
    ("post", "/api/v1/subscribers/{subscriber}/lists", {"list_ids": ["{mailing_list}"]}),
    ("delete", "/api/v1/subscribers/{subscriber}/lists/{mailing_list}", None),
    ("post", "/api/v1/subscribers/{subscriber}/tags", {"tags": ["v"]}),
    ("delete", "/api/v1/subscribers/{subscriber}/tags/{tag}", None),
    ("post", "/api/v1/lists", {"name": "V"}),
    ("patch", "/api/v1/lists/{mailing_list}", {"name": "V"}),
    ("delete", "/api/v1/lists/{mailing_list}", None),
    ("post", "/api/v1/lists/{mailing_list}/members", {"subscriber_ids": ["{subscriber}"]}),
    ("delete", "/api/v1/lists/{mailing_list}/members?subscriber_id={subscriber}", None),
    ("post", "/api/v1/tags", {"name": "v"}),
    ("patch", "/api/v1/tags/{tag}", {"name": "v"}),
    ("delete", "/api/v1/tags/{tag}", None),
    ("post", "/api/v1/fields", {"key": "v"}),
    ("patch", "/api/v1/fields/{field}", {"label": "V"}),
    ("delete", "/api/v1/fields/{field}", None),
    ("post", "/api/v1/suppressions", {"value": "v@example.org"}),
    ("patch", "/api/v1/suppressions/{suppression}", {"reason": "v"}),
    ("delete", "/api/v1/suppressions/{suppression}", None),
    ("post", "/api/v1/events", {"subscriber_id": "{subscriber}", "name": "v"}),
    ("post", "/api/v1/imports", None),
]


def _fill(value, rows: Rows):
    ids = {name: getattr(rows, name).pk for name in ("subscriber", "mailing_list", "tag", "field", "suppression")}
    if isinstance(value, str):
        for name, pk in ids.items():
            if value == "{" + name + "}":
                return pk
            value = value.replace("{" + name + "}", str(pk))
        return value
    if isinstance(value, list):
        return [_fill(item, rows) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, rows) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_viewer_cannot_write(client_for, workspace, mine, method, path, body):
    viewer = client_for(workspace, Role.VIEWER)
    if path == "/api/v1/imports":
        response = viewer.post(
            path, {"file": SimpleUploadedFile("x.csv", b"email\na@example.org\n")}, format="multipart"
        )
    else:
        response = getattr(viewer, method)(_fill(path, mine), _fill(body, mine), format="json")
    assert response.status_code == 403, response.content
    assert Subscriber.objects.filter(workspace=workspace).count() == 1


READS = [
    "/api/v1/subscribers", "/api/v1/lists", "/api/v1/tags", "/api/v1/fields", "/api/v1/suppressions", "/api/v1/events",
    "/api/v1/imports", "/api/v1/subscribers/export", "/api/v1/subscribers/{subscriber}/events",
    "/api/v1/subscribers/{subscriber}/lists", "/api/v1/lists/{mailing_list}/members",
]  # fmt: skip


@pytest.mark.parametrize("path", READS)
def test_a_viewer_can_read(client_for, workspace, mine, path):
    viewer = client_for(workspace, Role.VIEWER)
    assert viewer.get(_fill(path, mine)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), WRITES[:3] + WRITES[10:11])
def test_a_marketer_can_write(client_for, workspace, mine, method, path, body):
    marketer = client_for(workspace, Role.MARKETER)
    response = getattr(marketer, method)(_fill(path, mine), _fill(body, mine), format="json")
    assert response.status_code in (200, 201, 204), response.content
