"""CSV import: validation of the upload, good rows kept, bad rows reported, streaming, the real worker."""

import csv
import io
import time
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from accounts.models import Role
from subscribers.imports import IMPORT_CHUNK_SIZE, import_job_create, import_job_run
from subscribers.models import (
    Event,
    EventType,
    FieldType,
    ImportJob,
    ImportStatus,
    ListMembership,
    MembershipStatus,
    Subscriber,
)
from subscribers.services import events as events_module
from tests.factories import FieldDefinitionFactory, MailingListFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def upload(name: str, content: str | bytes) -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="text/csv")


def post_import(api, content, django_capture_on_commit_callbacks, **fields):
    """Upload through the API; the import is queued on commit, then run here as the worker would."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post("/api/v1/imports", {"file": upload("people.csv", content), **fields}, format="multipart")
    if response.status_code == 202:
        assert len(callbacks) == 1  # queued once, and only after the transaction commits
        assert ImportJob.objects.get(pk=response.json()["id"]).status == ImportStatus.PENDING
        import_job_run(import_job_id=response.json()["id"])
    return response


def report_rows(api, import_id) -> list[dict[str, str]]:
    response = api.get(f"/api/v1/imports/{import_id}/errors")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_import_keeps_good_rows_and_reports_bad_ones_with_row_number_and_reason(
    api, workspace, django_capture_on_commit_callbacks
):
    FieldDefinitionFactory(workspace=workspace, key="plan", type=FieldType.CHOICE, choices=["free", "pro"])
    SubscriberFactory(workspace=workspace, email="known@example.org", first_name="Known")
    newsletter = MailingListFactory(workspace=workspace)
    content = (
        "E-mail,Given,Plan,Zone\n"
        "ada@example.org,Ada,pro,Europe/London\n"  # row 2: created
        "not-an-email,Bad,free,\n"  # row 3: bad address
        "grace@example.org,Grace,platinum,\n"  # row 4: bad attribute
        "ADA@example.org,Ada again,free,\n"  # row 5: duplicate in file
        "KNOWN@example.org,Renamed,,\n"  # row 6: updates the existing subscriber
        "tz@example.org,Tim,,Mars/Base\n"  # row 7: bad time zone
        "short@example.org,Short\n"  # row 8: missing columns
        "\n"  # blank line: ignored
        "linus@example.org,Linus,free,\n"  # row 10: created
    )
    mapping = '{"E-mail": "email", "Given": "first_name", "Plan": "attributes.plan", "Zone": "time_zone"}'
    response = post_import(
        api, content, django_capture_on_commit_callbacks, column_mapping=mapping, list_id=newsletter.pk,
        tags=["imported", "2026"],
    )  # fmt: skip
    assert response.status_code == 202, response.content
    job = api.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "completed"
    assert (job["processed_rows"], job["created_count"], job["updated_count"], job["skipped_count"]) == (8, 2, 1, 1)
    assert job["error_count"] == 4
    assert job["processed_bytes"] == job["total_bytes"] == len(content.encode())
    assert job["has_error_report"] is True

    ada = Subscriber.objects.get(workspace=workspace, email="ada@example.org")
    assert (ada.first_name, ada.attributes, ada.time_zone, ada.consent_source) == (
        "Ada",
        {"plan": "pro"},
        "Europe/London",
        "import",
    )
    assert Subscriber.objects.get(workspace=workspace, email="known@example.org").first_name == "Renamed"
    assert not Subscriber.objects.filter(
        email__in=["grace@example.org", "tz@example.org", "short@example.org"]
    ).exists()
    assert ListMembership.objects.filter(mailing_list=newsletter).count() == 3
    assert set(ada.tags.values_list("name", flat=True)) == {"imported", "2026"}

    rows = report_rows(api, job["id"])
    assert [(row["row"], row["field"]) for row in rows] == [
        ("3", "email"), ("4", "attributes.plan"), ("5", "email"), ("7", "time_zone"), ("8", ""),
    ]  # fmt: skip
    assert "Duplicate" in rows[2]["reason"] and rows[2]["email"] == "ADA@example.org"
    assert "Expected 4 columns" in rows[4]["reason"]


def test_import_without_a_mapping_matches_columns_by_name(api, workspace, django_capture_on_commit_callbacks):
    FieldDefinitionFactory(workspace=workspace, key="company")
    content = "\ufeffEmail Address,First Name,Last Name,company,Ignored\nada@example.org,Ada,Lovelace,Acme,x\n"
    response = post_import(api, content, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    assert response.json()["column_mapping"] == {
        "Email Address": "email", "First Name": "first_name", "Last Name": "last_name", "company": "attributes.company",
    }  # fmt: skip
    ada = Subscriber.objects.get(workspace=workspace, email="ada@example.org")
    assert (ada.first_name, ada.last_name, ada.attributes) == ("Ada", "Lovelace", {"company": "Acme"})


def test_import_without_update_existing_skips_known_subscribers(api, workspace, django_capture_on_commit_callbacks):
    SubscriberFactory(workspace=workspace, email="known@example.org", first_name="Known")
    response = post_import(
        api, "email,first_name\nknown@example.org,Changed\n", django_capture_on_commit_callbacks,
        update_existing="false",
    )  # fmt: skip
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert (job.skipped_count, job.updated_count) == (1, 0)
    assert Subscriber.objects.get(email="known@example.org").first_name == "Known"


def test_import_into_a_double_opt_in_list_makes_new_members_pending(api, workspace, django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory(workspace=workspace, double_opt_in=True)
    post_import(api, "email\nada@example.org\n", django_capture_on_commit_callbacks, list_id=mailing_list.pk)
    assert ListMembership.objects.get(mailing_list=mailing_list).status == MembershipStatus.PENDING


def test_rows_that_are_not_utf8_are_reported_and_the_others_kept(api, workspace, django_capture_on_commit_callbacks):
    content = b"email,first_name\nada@example.org,Ada\nbad@example.org,Fran\xe7ois\nlin@example.org,Lin\xc3\xa9\n"
    response = post_import(api, content, django_capture_on_commit_callbacks)
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert (job.created_count, job.error_count) == (2, 1)
    assert Subscriber.objects.get(email="lin@example.org").first_name == "Liné"
    rows = report_rows(api, job.pk)
    assert rows[0]["row"] == "3" and "UTF-8" in rows[0]["reason"]


@pytest.mark.parametrize(
    ("content", "fields", "field"),
    [
        (b"", {}, "file"),
        (b"\n\n", {}, "file"),
        (b"\xff\xfee\x00m\x00a\x00i\x00l\x00\n", {}, "file"),
        (b"email,email\na@example.org,b@example.org\n", {}, "file"),
        (b"name,phone\nAda,123\n", {}, "column_mapping"),
        (b"email\na@example.org\n", {"column_mapping": '{"Mail": "email"}'}, "column_mapping.Mail"),
        (b"email,x\na@example.org,1\n", {"column_mapping": '{"email": "email", "x": "attributes.nope"}'},
         "column_mapping.x"),
        (b"email,x\na@example.org,1\n", {"column_mapping": '{"email": "email", "x": "phone"}'}, "column_mapping.x"),
        (b"email\na@example.org\n", {"column_mapping": '{"email": "first_name"}'}, "column_mapping"),
        (b"email\na@example.org\n", {"column_mapping": "[1, 2"}, "column_mapping"),
        (b"email\na@example.org\n", {"list_id": "99999"}, "list_id"),
    ],
)  # fmt: skip
def test_bad_uploads_answer_400_naming_the_field(api, content, fields, field):
    response = api.post("/api/v1/imports", {"file": upload("x.csv", content), **fields}, format="multipart")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"], response.json()
    assert not ImportJob.objects.exists()


def test_upload_without_a_file_answers_400(api):
    response = api.post("/api/v1/imports", {"tags": "x"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["details"]


@pytest.mark.parametrize("rows", [20, 5000])  # a little over (checked on the file), far over (on Content-Length)
def test_a_file_over_the_size_limit_answers_413(api, settings, rows):
    settings.IMPORT_MAX_FILE_SIZE = 100
    content = "email\n" + "".join(f"user{i}@example.org\n" for i in range(rows))
    response = api.post("/api/v1/imports", {"file": upload("big.csv", content)}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not ImportJob.objects.exists()


def test_the_upload_is_deleted_once_imported_and_the_report_kept(api, workspace, django_capture_on_commit_callbacks):
    response = post_import(api, "email\nada@example.org\nbad\n", django_capture_on_commit_callbacks)
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert not job.file
    assert job.error_report and job.error_report.storage.exists(job.error_report.name)
    assert [row["email"] for row in report_rows(api, job.pk)] == ["bad"]


def test_error_report_of_an_unfinished_import_answers_409(api, workspace):
    job = import_job_create(workspace=workspace, file=upload("x.csv", "email\na@example.org\n"))
    response = api.get(f"/api/v1/imports/{job.pk}/errors")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "import_not_finished"


def test_running_a_finished_import_again_changes_nothing(workspace):
    job = import_job_create(workspace=workspace, file=upload("x.csv", "email\na@example.org\n"))
    import_job_run(import_job_id=job.pk)
    Subscriber.objects.all().delete()
    import_job_run(import_job_id=job.pk)
    assert not Subscriber.objects.exists()
    assert import_job_run(import_job_id=987654) is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # chunks really commit, as in a worker
def test_large_import_streams_in_chunks_with_bounded_memory_and_queries(workspace, monkeypatch):
    # Measure the import's own work: handlers of other apps (run per event after each chunk commits)
    # have their own costs and tests.
    monkeypatch.setattr(events_module, "_event_handlers", [])
    # This test runs the import itself: leave no message on the shared broker for a job about to be flushed.
    monkeypatch.setattr("subscribers.imports.import_job_enqueue", lambda **_: None)
    FieldDefinitionFactory(workspace=workspace, key="notes")
    rows = 20_000
    lines = ["email,first_name,notes"]
    lines += [f"user{i}@example.org,User {i},{'n' * 500}" for i in range(rows)]
    lines.append("user7@EXAMPLE.org,Duplicate,x")
    content = ("\n".join(lines) + "\n").encode()
    job = import_job_create(workspace=workspace, file=upload("big.csv", content))
    # What holding the whole file as parsed rows would cost: the bound the import must stay well under.
    tracemalloc.start()
    whole = list(csv.reader(io.StringIO(content.decode())))
    whole_file_rows = tracemalloc.get_traced_memory()[0]
    del whole
    tracemalloc.stop()

    queries = []

    def count_queries(execute, sql, params, many, context):
        queries.append(1)  # counted, not kept: the SQL of bulk inserts would distort the memory measure
        return execute(sql, params, many, context)

    tracemalloc.start()
    with connection.execute_wrapper(count_queries):
        import_job_run(import_job_id=job.pk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    job.refresh_from_db()
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.processed_rows, job.created_count, job.skipped_count) == (rows + 1, rows, 1)
    assert Subscriber.objects.filter(workspace=workspace).count() == rows
    assert Event.objects.filter(workspace=workspace, type=EventType.SUBSCRIBED).count() == rows
    # Row-by-row work needs at least one query per row; chunks of IMPORT_CHUNK_SIZE need a handful each.
    assert IMPORT_CHUNK_SIZE >= 100
    assert len(queries) < rows / 20
    assert peak < whole_file_rows / 3, (peak, whole_file_rows)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_import_runs_to_completion_on_a_real_celery_worker(client_for, workspace):
    from celery.contrib.testing.worker import start_worker

    from config.celery_app import app

    marketer = client_for(workspace, Role.MARKETER)
    content = "email,first_name\n" + "".join(f"worker{i}@example.org,W{i}\n" for i in range(1200)) + "bad,row\n"
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=30):
        response = marketer.post("/api/v1/imports", {"file": upload("w.csv", content)}, format="multipart")
        assert response.status_code == 202, response.content
        deadline = time.monotonic() + 120
        job = ImportJob.objects.get(pk=response.json()["id"])
        while job.status not in (ImportStatus.COMPLETED, ImportStatus.FAILED) and time.monotonic() < deadline:
            time.sleep(0.2)
            job.refresh_from_db()
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert (job.created_count, job.error_count, job.processed_rows) == (1200, 1, 1201)
    assert Subscriber.objects.filter(workspace=workspace).count() == 1200


def test_an_upload_with_too_many_form_fields_answers_400_not_500(api):
    fields = {"file": upload("x.csv", "email\na@example.org\n"), "tags": [f"t{i}" for i in range(1100)]}
    response = api.post("/api/v1/imports", fields, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_json_endpoints_refuse_form_bodies_with_415(api):
    response = api.post("/api/v1/events", {"events": ["x"] * 5}, format="multipart")
    assert response.status_code == 415


def test_progress_is_saved_after_every_chunk(workspace, monkeypatch):
    from subscribers import imports

    monkeypatch.setattr(imports, "IMPORT_CHUNK_SIZE", 3)
    content = "email\n" + "".join(f"p{i}@example.org\n" for i in range(7))
    job = import_job_create(workspace=workspace, file=upload("p.csv", content))
    seen = []
    flush = imports._flush

    def flush_and_look(*args, **kwargs):
        flush(*args, **kwargs)
        stored = ImportJob.objects.get(pk=job.pk)
        seen.append((stored.status, stored.processed_rows, stored.created_count, stored.processed_bytes > 0))

    monkeypatch.setattr(imports, "_flush", flush_and_look)
    import_job_run(import_job_id=job.pk)
    assert seen == [("running", 3, 3, True), ("running", 6, 6, True), ("running", 7, 7, True)]
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.COMPLETED
