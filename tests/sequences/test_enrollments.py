"""Enrolling: per-item results, re-entry rules, the first step's due time, events, exit, tenancy and roles."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Role
from sequences import services
from sequences.models import Enrollment, EnrollmentStatus, ReEntry, SequenceStatus
from subscribers.models import Event, EventType
from subscribers.services import event_record, events_record_many
from tests.factories import EnrollmentFactory, SequenceFactory, StepFactory, SubscriberFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


def enroll(api, sequence, **body):
    return api.post(f"/api/v1/email-sequences/{sequence.pk}/enroll", body, format="json")


def statuses(response):
    assert response.status_code == 200, response.content
    return [row["status"] for row in response.json()["results"]]


def test_enroll_sets_the_first_step_and_its_due_time_and_records_an_event(api, active_sequence, subscriber):
    before = timezone.now()
    response = enroll(api, active_sequence, subscriber_ids=[subscriber.pk])
    assert statuses(response) == ["enrolled"]
    enrollment = Enrollment.objects.get(pk=response.json()["results"][0]["enrollment_id"])
    first = active_sequence.steps.order_by("position").first()
    assert enrollment.current_step_id == first.pk and enrollment.status == "active" and enrollment.source == "api"
    assert before + timedelta(hours=2) <= enrollment.next_run_at <= timezone.now() + timedelta(hours=2)
    event = Event.objects.get(type=EventType.ENROLLED)
    assert (event.subscriber_id, event.sequence_id, event.step_id) == (subscriber.pk, active_sequence.pk, first.pk)


def test_enroll_answers_one_result_per_item(api, workspace, other_workspace, active_sequence):
    fresh = SubscriberFactory(workspace=workspace, email="Fresh@Example.org")
    enrolled = SubscriberFactory(workspace=workspace)
    EnrollmentFactory(sequence=active_sequence, subscriber=enrolled)
    unsubscribed = SubscriberFactory(workspace=workspace, status="unsubscribed")
    bounced = SubscriberFactory(workspace=workspace, status="bounced")
    suppressed = SubscriberFactory(workspace=workspace, email="blocked@example.org")
    SuppressionFactory(workspace=workspace, value="blocked@example.org")
    by_domain = SubscriberFactory(workspace=workspace, email="someone@spam.test")
    SuppressionFactory(workspace=workspace, kind="domain", value="spam.test")
    stranger = SubscriberFactory(workspace=other_workspace)

    response = enroll(
        api, active_sequence,
        subscriber_ids=[enrolled.pk, unsubscribed.pk, bounced.pk, suppressed.pk, stranger.pk, 987654],
        emails=["fresh@example.org", by_domain.email, "nobody@example.org"],
    )  # fmt: skip
    assert statuses(response) == [
        "already_enrolled", "unsubscribed", "bounced", "suppressed", "not_found", "not_found",
        "enrolled", "suppressed", "not_found",
    ]  # fmt: skip
    rows = response.json()["results"]
    assert rows[4] == {"subscriber_id": stranger.pk, "email": None, "status": "not_found", "enrollment_id": None}
    assert rows[6]["subscriber_id"] == fresh.pk and rows[6]["email"] == "fresh@example.org"
    assert response.json()["counts"] == {
        "already_enrolled": 1, "unsubscribed": 1, "bounced": 1, "suppressed": 2, "not_found": 3, "enrolled": 1,
    }  # fmt: skip
    assert not Enrollment.objects.filter(subscriber=stranger).exists()
    assert Enrollment.objects.filter(sequence=active_sequence).count() == 2


def test_the_same_subscriber_twice_in_one_request_is_enrolled_once(api, active_sequence, subscriber):
    response = enroll(api, active_sequence, subscriber_ids=[subscriber.pk], emails=[subscriber.email])
    assert statuses(response) == ["enrolled", "already_enrolled"]


@pytest.mark.parametrize(
    ("rule", "previous", "expected"),
    [
        (ReEntry.NEVER, EnrollmentStatus.COMPLETED, "re_entry_blocked"),
        (ReEntry.NEVER, EnrollmentStatus.EXITED, "re_entry_blocked"),
        (ReEntry.AFTER_COMPLETION, EnrollmentStatus.COMPLETED, "enrolled"),
        (ReEntry.AFTER_COMPLETION, EnrollmentStatus.EXITED, "enrolled"),
        (ReEntry.AFTER_COMPLETION, EnrollmentStatus.FAILED, "re_entry_blocked"),
        (ReEntry.ALWAYS, EnrollmentStatus.FAILED, "enrolled"),
        (ReEntry.ALWAYS, EnrollmentStatus.ACTIVE, "already_enrolled"),
        (ReEntry.AFTER_COMPLETION, EnrollmentStatus.ACTIVE, "already_enrolled"),
    ],
)
def test_re_entry_rules(api, active_sequence, subscriber, rule, previous, expected):
    active_sequence.re_entry = rule
    active_sequence.save()
    EnrollmentFactory(sequence=active_sequence, subscriber=subscriber, status=previous)
    assert statuses(enroll(api, active_sequence, subscriber_ids=[subscriber.pk])) == [expected]
    assert Enrollment.objects.filter(subscriber=subscriber, status="active").count() == (
        1 if expected in ("enrolled", "already_enrolled") else 0
    )


def test_first_enrollment_is_allowed_under_every_rule(api, workspace, template):
    for rule in ReEntry.values:
        sequence = SequenceFactory(workspace=workspace, status="active", re_entry=rule)
        StepFactory(sequence=sequence, template=template)
        assert statuses(enroll(api, sequence, subscriber_ids=[SubscriberFactory(workspace=workspace).pk])) == [
            "enrolled"
        ]


def test_a_concurrent_enrollment_is_caught_by_the_unique_constraint(active_sequence, subscriber, workspace):
    # As if another request committed between our read of the history and our insert.
    EnrollmentFactory(sequence=active_sequence, subscriber=subscriber)
    outcome, enrollment = services._enroll_one(
        workspace=workspace, sequence=active_sequence, subscriber=subscriber,
        first_step=active_sequence.steps.first(), now=timezone.now(), source="api", suppressed=False, latest=None,
    )  # fmt: skip
    assert (outcome, enrollment) == ("already_enrolled", None)
    assert Enrollment.objects.filter(subscriber=subscriber).count() == 1


@pytest.mark.parametrize("status", [SequenceStatus.DRAFT, SequenceStatus.PAUSED, SequenceStatus.ARCHIVED])
def test_enrolling_into_a_sequence_that_is_not_active_answers_409(api, active_sequence, subscriber, status):
    active_sequence.status = status
    active_sequence.save()
    response = enroll(api, active_sequence, subscriber_ids=[subscriber.pk])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "sequence_not_active"
    assert not Enrollment.objects.exists()


def test_enroll_takes_at_most_1000_items(api, active_sequence):
    emails = [f"{n}@x.test" for n in range(401)]
    too_many = enroll(api, active_sequence, subscriber_ids=list(range(1, 601)), emails=emails)
    assert too_many.status_code == 400
    assert enroll(api, active_sequence).status_code == 400
    assert enroll(api, active_sequence, subscriber_ids=list(range(1, 1001))).status_code == 200


def test_enroll_with_an_idempotency_key_enrolls_once_and_replays(api, active_sequence, subscriber):
    first = api.post(
        f"/api/v1/email-sequences/{active_sequence.pk}/enroll", {"subscriber_ids": [subscriber.pk]}, format="json",
        HTTP_IDEMPOTENCY_KEY="enroll-1",
    )  # fmt: skip
    again = api.post(
        f"/api/v1/email-sequences/{active_sequence.pk}/enroll", {"subscriber_ids": [subscriber.pk]}, format="json",
        HTTP_IDEMPOTENCY_KEY="enroll-1",
    )  # fmt: skip
    assert statuses(first) == statuses(again) == ["enrolled"]
    assert Enrollment.objects.count() == 1


def test_list_enrollments_of_a_sequence_with_cursor_pagination_and_status_filter(api, active_sequence, workspace):
    for _ in range(3):
        EnrollmentFactory(sequence=active_sequence)
    EnrollmentFactory(sequence=active_sequence, status="exited")
    EnrollmentFactory(sequence=SequenceFactory(workspace=workspace))  # another sequence
    url = f"/api/v1/email-sequences/{active_sequence.pk}/enrollments"
    page = api.get(f"{url}?page_size=2")
    assert page.status_code == 200
    assert len(page.json()["results"]) == 2 and page.json()["next"]
    rest = api.get(page.json()["next"])
    assert len(rest.json()["results"]) == 2 and rest.json()["next"] is None
    assert [row["status"] for row in api.get(f"{url}?status=exited").json()["results"]] == ["exited"]
    assert api.get(f"{url}?status=bogus").status_code == 400


def test_get_and_exit_an_enrollment(api, active_sequence):
    enrollment = EnrollmentFactory(sequence=active_sequence, current_step=active_sequence.steps.first())
    got = api.get(f"/api/v1/enrollments/{enrollment.pk}")
    assert got.status_code == 200 and got.json()["subscriber_email"] == enrollment.subscriber.email
    exited = api.post(f"/api/v1/enrollments/{enrollment.pk}/exit", {"reason": "asked by support"})
    assert exited.status_code == 200
    assert (exited.json()["status"], exited.json()["exit_reason"]) == ("exited", "asked by support")
    assert exited.json()["next_run_at"] is None
    event = Event.objects.get(type=EventType.EXITED)
    assert (event.sequence_id, event.properties["reason"]) == (active_sequence.pk, "asked by support")
    assert api.post(f"/api/v1/enrollments/{enrollment.pk}/exit", {}).status_code == 409


def test_workspace_enrollment_list_filters(api, active_sequence, subscriber):
    mine = EnrollmentFactory(sequence=active_sequence, subscriber=subscriber)
    EnrollmentFactory(sequence=active_sequence)
    rows = api.get(f"/api/v1/enrollments?subscriber={subscriber.pk}").json()["results"]
    assert [row["id"] for row in rows] == [mine.pk]
    by_sequence = api.get(f"/api/v1/enrollments?sequence={active_sequence.pk}&status=active").json()["results"]
    assert len(by_sequence) == 2


def test_another_workspaces_enrollments_are_invisible(api, other_sequence, subscriber):
    theirs = EnrollmentFactory(sequence=other_sequence)
    assert api.get("/api/v1/enrollments").json()["results"] == []
    # Filtering by another workspace's sequence answers like filtering by one that does not exist.
    theirs_filtered = api.get(f"/api/v1/enrollments?sequence={other_sequence.pk}")
    missing_filtered = api.get("/api/v1/enrollments?sequence=987654321")
    assert theirs_filtered.status_code == missing_filtered.status_code == 200
    assert theirs_filtered.json()["results"] == missing_filtered.json()["results"] == []
    assert api.get(f"/api/v1/enrollments/{theirs.pk}").status_code == 404
    assert api.post(f"/api/v1/enrollments/{theirs.pk}/exit", {}).status_code == 404
    assert api.get(f"/api/v1/email-sequences/{other_sequence.pk}/enrollments").status_code == 404
    assert enroll(api, other_sequence, subscriber_ids=[subscriber.pk]).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "active"


def test_viewer_reads_enrollments_but_cannot_enroll_or_exit(client_for, workspace, active_sequence, subscriber):
    viewer = client_for(workspace, Role.VIEWER)
    enrollment = EnrollmentFactory(sequence=active_sequence)
    assert viewer.get(f"/api/v1/email-sequences/{active_sequence.pk}/enrollments").status_code == 200
    assert viewer.get(f"/api/v1/enrollments/{enrollment.pk}").status_code == 200
    assert enroll(viewer, active_sequence, subscriber_ids=[subscriber.pk]).status_code == 403
    assert viewer.post(f"/api/v1/enrollments/{enrollment.pk}/exit", {}).status_code == 403
    assert Enrollment.objects.filter(status="active").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_enroll_a_subscriber_once(workspace, template):
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent transactions (PostgreSQL)")
    sequence = SequenceFactory(workspace=workspace, status="active", re_entry=ReEntry.ALWAYS)
    StepFactory(sequence=sequence, template=template)
    subscriber = SubscriberFactory(workspace=workspace)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def enroll_once() -> None:
        try:
            barrier.wait(timeout=10)
            results = services.sequence_enroll(workspace=workspace, sequence=sequence, subscriber_ids=[subscriber.pk])
            outcomes.extend(result.status for result in results)
        finally:
            connection.close()

    threads = [threading.Thread(target=enroll_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["already_enrolled", "enrolled"]
    assert Enrollment.objects.filter(subscriber=subscriber).count() == 1


def test_reaching_the_goal_event_completes_the_enrollment(
    active_sequence, subscriber, django_capture_on_commit_callbacks
):
    active_sequence.goal_event = "purchased"
    active_sequence.save()
    enrollment = EnrollmentFactory(sequence=active_sequence, subscriber=subscriber)
    untouched = EnrollmentFactory(sequence=SequenceFactory(workspace=subscriber.workspace, goal_event="other"))
    with django_capture_on_commit_callbacks(execute=True):
        event_record(workspace=subscriber.workspace, subscriber=subscriber, name="purchased")
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("completed", "goal reached: purchased")
    goal = Event.objects.get(type=EventType.GOAL)
    assert (goal.subscriber_id, goal.sequence_id, goal.name) == (subscriber.pk, active_sequence.pk, "purchased")
    untouched.refresh_from_db()
    assert untouched.status == "active"


def test_other_events_and_other_subscribers_leave_enrollments_alone(
    active_sequence, subscriber, workspace, django_capture_on_commit_callbacks
):
    active_sequence.goal_event = "purchased"
    active_sequence.save()
    enrollment = EnrollmentFactory(sequence=active_sequence, subscriber=subscriber)
    someone_else = SubscriberFactory(workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        event_record(workspace=workspace, subscriber=subscriber, name="browsed")
        event_record(workspace=workspace, subscriber=someone_else, name="purchased")
        # An event from before the enrollment is not a goal reached during it.
        event_record(
            workspace=workspace, subscriber=subscriber, name="purchased",
            occurred_at=enrollment.enrolled_at - timedelta(days=1),
        )  # fmt: skip
    enrollment.refresh_from_db()
    assert enrollment.status == "active"
    assert not Event.objects.filter(type=EventType.GOAL).exists()


def test_a_batch_of_events_is_checked_for_goals_in_one_query(
    active_sequence, workspace, django_capture_on_commit_callbacks, django_assert_num_queries
):
    active_sequence.goal_event = "purchased"
    active_sequence.save()
    buyers = [SubscriberFactory(workspace=workspace) for _ in range(3)]
    browsers = [SubscriberFactory(workspace=workspace) for _ in range(20)]
    enrollments = [EnrollmentFactory(sequence=active_sequence, subscriber=s) for s in buyers + browsers]
    events = [Event(workspace=workspace, subscriber=s, name="purchased") for s in buyers]
    events += [Event(workspace=workspace, subscriber=s, name="browsed") for s in browsers]
    created = events_record_many(workspace=workspace, events=events)

    with django_assert_num_queries(1):  # no enrollment of the batch reached its goal: one look-up only
        services.enrollments_goal_check([e for e in created if e.name == "browsed"])
    with django_capture_on_commit_callbacks(execute=True):
        services.enrollments_goal_check(created)

    statuses = {e.subscriber_id: e.status for e in Enrollment.objects.filter(pk__in=[e.pk for e in enrollments])}
    assert [statuses[s.pk] for s in buyers] == ["completed"] * 3
    assert {statuses[s.pk] for s in browsers} == {"active"}
    assert Event.objects.filter(type=EventType.GOAL).count() == 3
