"""The admin validates with the services and its actions call them."""

import pytest
from django.test import Client

from subscribers.models import EventType, FieldType, MailingList, Segment, Subscriber, SubscriberStatus, Suppression
from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = UserFactory(username="root@example.com")
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_admin_add_subscriber_validates_attributes_and_saves_through_the_service(admin_client, workspace):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.CHOICE, choices=["free", "pro"])
    form = {"workspace": workspace.pk, "email": "Ada@Example.org", "attributes": '{"plan": "gold"}',
            "list_memberships-TOTAL_FORMS": 0, "list_memberships-INITIAL_FORMS": 0}  # fmt: skip
    response = admin_client.post("/admin/subscribers/subscriber/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "attributes.plan" in response.content.decode()
    assert not Subscriber.objects.exists()

    form["attributes"] = '{"plan": "pro"}'
    form["time_zone"] = "Mars/Olympus"
    response = admin_client.post("/admin/subscribers/subscriber/add/", form)
    assert response.status_code == 200 and not Subscriber.objects.exists()

    form["time_zone"] = "Europe/Paris"
    response = admin_client.post("/admin/subscribers/subscriber/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "ada@example.org" and subscriber.consent_source == "admin"
    assert subscriber.events.filter(type=EventType.SUBSCRIBED).exists()

    form["email"] = "ADA@example.org"
    response = admin_client.post("/admin/subscribers/subscriber/add/", form)
    assert response.status_code == 200 and Subscriber.objects.count() == 1


def test_admin_actions_unsubscribe_and_suppress_through_services(admin_client, workspace):
    ada = SubscriberFactory(workspace=workspace, email="ada@example.org")
    grace = SubscriberFactory(workspace=workspace, email="grace@example.org")
    response = admin_client.post(
        "/admin/subscribers/subscriber/", {"action": "unsubscribe_selected", "_selected_action": [ada.pk, grace.pk]}
    )
    assert response.status_code == 302
    ada.refresh_from_db()
    assert ada.status == SubscriberStatus.UNSUBSCRIBED and ada.status_changed_by.startswith("admin:")
    assert ada.events.filter(type=EventType.UNSUBSCRIBED).count() == 1

    admin_client.post("/admin/subscribers/subscriber/", {"action": "suppress_selected", "_selected_action": [ada.pk]})
    admin_client.post("/admin/subscribers/subscriber/", {"action": "suppress_selected", "_selected_action": [ada.pk]})
    assert list(Suppression.objects.values_list("value", "source")) == [("ada@example.org", "admin")]


def test_admin_suppression_and_list_forms_refuse_what_the_api_refuses(admin_client, workspace):
    response = admin_client.post(
        "/admin/subscribers/suppression/add/", {"workspace": workspace.pk, "kind": "domain", "value": "not a domain"}
    )
    assert response.status_code == 200 and not Suppression.objects.exists()
    response = admin_client.post(
        "/admin/subscribers/suppression/add/", {"workspace": workspace.pk, "kind": "email", "value": "X@Example.org"}
    )
    assert response.status_code == 302
    assert Suppression.objects.get().value == "x@example.org"

    MailingListFactory(workspace=workspace, name="News")
    response = admin_client.post(
        "/admin/subscribers/mailinglist/add/",
        {"workspace": workspace.pk, "name": "   ", "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0},
    )
    assert response.status_code == 200 and MailingList.objects.count() == 1


@pytest.mark.parametrize(
    "model", ["subscriber", "mailinglist", "tag", "fielddefinition", "suppression", "event", "importjob"]
)
def test_admin_changelists_render(admin_client, workspace, model):
    SubscriberFactory(workspace=workspace)
    assert admin_client.get(f"/admin/subscribers/{model}/").status_code == 200
    assert admin_client.get(f"/admin/subscribers/{model}/?q=example").status_code == 200


def test_admin_upload_is_checked_like_the_api_and_queued_by_the_service(
    admin_client, workspace, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from subscribers.imports import import_job_run
    from subscribers.models import ImportJob

    bad = admin_client.post(
        "/admin/subscribers/importjob/add/",
        {"workspace": workspace.pk, "file": SimpleUploadedFile("x.csv", b"name\nAda\n"), "update_existing": "on"},
    )
    assert bad.status_code == 200 and "email" in bad.content.decode()
    assert not ImportJob.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/subscribers/importjob/add/",
            {"workspace": workspace.pk, "file": SimpleUploadedFile("x.csv", b"E-mail\nada@example.org\n"),
             "column_mapping": '{"E-mail": "email"}', "tags": "admin, spring", "update_existing": "on"},
        )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.get()
    assert len(callbacks) == 1 and job.tag_names == ["admin", "spring"]
    import_job_run(import_job_id=job.pk)
    assert set(Subscriber.objects.get(email="ada@example.org").tags.values_list("name", flat=True)) == {
        "admin", "spring",
    }  # fmt: skip
    assert admin_client.get(f"/admin/subscribers/importjob/{job.pk}/change/").status_code == 200


def test_admin_segment_validates_rules_and_lists_a_count(admin_client, workspace):
    SubscriberFactory(workspace=workspace, email="a@x.org")
    form = {"workspace": workspace.pk, "name": "Everyone", "description": "", "rules": '{"status": "nope"}'}
    response = admin_client.post("/admin/subscribers/segment/add/", form)
    assert response.status_code == 200 and "rules.status" in response.content.decode()
    form["rules"] = '{"status": "active"}'
    assert admin_client.post("/admin/subscribers/segment/add/", form).status_code == 302
    assert Segment.objects.get().rules == {"status": "active"}
    page = admin_client.get("/admin/subscribers/segment/").content.decode()
    assert "Everyone" in page and '<td class="field-matching">1</td>' in page
