"""Operational commands: create_workspace, load_demo_data (idempotent) and run_embedded's process handling."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template import Context, Engine

from accounts.models import Membership, Role, Workspace
from automation.models import Workflow
from config.management.commands.load_demo_data import DEMO_DEFAULT_PASSWORD, DEMO_OWNER_EMAIL, FIELDS
from config.management.commands.run_embedded import Child, stop_children
from sequences.models import Campaign, Sequence, SequenceStatus, Step, Template
from subscribers.models import (
    FieldDefinition,
    ListMembership,
    MailingList,
    Segment,
    Subscriber,
    SubscriberStatus,
    Tag,
)

User = get_user_model()


def _run(*args: str, **options: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# --- create_workspace ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_workspace_creates_the_workspace_and_its_owner_and_prints_only_the_id_last():
    out, _ = _run(
        "create_workspace", "--name", "Acme Corp", "--owner-email", "Boss@Acme.test", "--password", "s3cret-pw"
    )

    workspace_id = int(out.strip().splitlines()[-1])
    workspace = Workspace.objects.get(pk=workspace_id)
    assert workspace.name == "Acme Corp"
    assert workspace.slug == "acme-corp"
    owner = User.objects.get(username__iexact="boss@acme.test")
    assert owner.check_password("s3cret-pw")
    assert Membership.objects.get(workspace=workspace, user=owner).role == Role.OWNER


@pytest.mark.django_db
def test_create_workspace_reuses_an_existing_user_without_changing_their_password():
    user = User.objects.create_user(username="owner@acme.test", email="owner@acme.test", password="original-pw")

    out, err = _run("create_workspace", "--name", "Second", "--owner-email", "owner@acme.test", "--password", "other")

    workspace = Workspace.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert Membership.objects.get(workspace=workspace).user == user
    user.refresh_from_db()
    assert user.check_password("original-pw")
    assert "ignored" in err


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "  ", "--owner-email", "a@b.test"], "name"),
        (["--name", "X", "--owner-email", "not-an-email"], "not a valid email"),
        (["--name", "X", "--owner-email", "a@b.test", "--time-zone", "Mars/Olympus"], "time zone"),
    ],
)
def test_create_workspace_fails_cleanly_and_creates_nothing_on_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        _run("create_workspace", *args)

    assert not Workspace.objects.exists()
    assert not User.objects.exists()


# --- load_demo_data -----------------------------------------------------------------------------------


def _demo_counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "workspaces": Workspace.objects.count(),
        "memberships": Membership.objects.count(),
        "fields": FieldDefinition.objects.count(),
        "subscribers": Subscriber.objects.count(),
        "lists": MailingList.objects.count(),
        "list_memberships": ListMembership.objects.count(),
        "tags": Tag.objects.count(),
        "tag_links": Subscriber.tags.through.objects.count(),
        "templates": Template.objects.count(),
        "sequences": Sequence.objects.count(),
        "steps": Step.objects.count(),
        "segments": Segment.objects.count(),
        "workflows": Workflow.objects.count(),
        "campaigns": Campaign.objects.count(),
    }


@pytest.fixture
def demo(db, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    out, _ = _run("load_demo_data")
    return out


def test_loading_the_demo_twice_changes_nothing(demo):
    first = _demo_counts()
    snapshot = list(Subscriber.objects.order_by("email").values_list("email", "first_name", "attributes", "updated_at"))

    _run("load_demo_data")

    assert _demo_counts() == first
    assert (
        list(Subscriber.objects.order_by("email").values_list("email", "first_name", "attributes", "updated_at"))
        == snapshot
    )


def test_demo_has_a_segment_that_counts_and_an_active_workflow_that_runs_on_a_first_order(demo):
    from automation.matching import events_match
    from automation.models import WorkflowRun
    from subscribers.segments import segment_count
    from subscribers.services import event_record

    workspace = Workspace.objects.get(slug="demo")
    segment = Segment.objects.get(workspace=workspace, name="Pro customers who open")
    assert segment_count(workspace=workspace, tree=segment.rules) == 0  # nobody opened anything yet
    workflow = Workflow.objects.get(workspace=workspace, name="First order nudge")
    assert workflow.status == "active" and workflow.trigger_key == "order_placed"

    subscriber = Subscriber.objects.filter(workspace=workspace, status=SubscriberStatus.ACTIVE).first()
    event, _ = event_record(workspace=workspace, subscriber=subscriber, name="order_placed",
                            properties={"order_id": "D-1"})  # fmt: skip
    events_match(event_ids=[event.pk])

    run = WorkflowRun.objects.get(workflow=workflow, subscriber=subscriber)
    assert run.dedupe_key == "order_id:D-1" and run.wait_event_name == "" and run.due_at > event.occurred_at


def test_demo_has_a_workspace_with_sender_details_and_about_two_hundred_varied_subscribers(demo):
    workspace = Workspace.objects.get(slug="demo")
    assert workspace.name == "Demo"
    assert workspace.postal_address
    assert workspace.from_name and workspace.from_email

    subscribers = Subscriber.objects.filter(workspace=workspace)
    assert subscribers.count() == 200
    zones = set(subscribers.values_list("time_zone", flat=True))
    assert {"America/New_York", "Europe/Berlin", "Asia/Tokyo"} <= zones
    keys = {key for key, *_ in FIELDS}
    assert set(FieldDefinition.objects.filter(workspace=workspace).values_list("key", flat=True)) == keys
    plan_choices = FieldDefinition.objects.get(workspace=workspace, key="plan").choices
    for attributes in subscribers.values_list("attributes", flat=True):
        assert set(attributes) == keys
        assert attributes["plan"] in plan_choices
    assert set(MailingList.objects.filter(workspace=workspace).values_list("name", flat=True)) == {
        "Newsletter",
        "Customers",
    }
    assert {"vip", "trial"} <= set(Tag.objects.filter(workspace=workspace).values_list("name", flat=True))
    assert Subscriber.tags.through.objects.filter(tag__name="vip").exists()


def test_demo_data_is_the_same_on_every_machine(demo):
    emails = sorted(Subscriber.objects.values_list("email", flat=True))
    Sequence.objects.all().delete()  # steps and campaigns protect their templates
    Campaign.objects.all().delete()
    Workspace.objects.all().delete()

    _run("load_demo_data")

    assert sorted(Subscriber.objects.values_list("email", flat=True)) == emails


def test_demo_welcome_sequence_has_three_steps_whose_merge_tags_render(demo):
    sequence = Sequence.objects.get(workspace__slug="demo", name="Welcome series")
    assert sequence.status == SequenceStatus.ACTIVE
    steps = list(sequence.steps.order_by("position"))
    assert [step.position for step in steps] == [1, 2, 3]

    engine = Engine()
    context = Context({"subscriber": {"first_name": "", "attributes": {}}, "workspace": {"name": "Demo"}})
    first = steps[0].template
    assert '{{ subscriber.first_name|default:"there" }}' in first.html
    assert "Welcome, there!" in engine.from_string(first.html).render(context)
    for step in steps:
        engine.from_string(step.template.subject).render(context)


def test_demo_owner_can_log_in_to_the_admin_with_the_printed_password(demo, client):
    owner = User.objects.get(username=DEMO_OWNER_EMAIL)
    assert owner.is_staff
    assert Membership.objects.get(user=owner, workspace__slug="demo").role == Role.OWNER
    assert f"{DEMO_OWNER_EMAIL} / {DEMO_DEFAULT_PASSWORD}" in demo

    assert client.login(username=DEMO_OWNER_EMAIL, password=DEMO_DEFAULT_PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_demo_password_comes_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "from-the-env")

    out, _ = _run("load_demo_data")

    assert "demo@example.com / from-the-env" in out
    assert User.objects.get(username=DEMO_OWNER_EMAIL).check_password("from-the-env")


def test_demo_in_production_creates_no_login(db, settings):
    settings.PRODUCTION = True

    out, _ = _run("load_demo_data")

    assert not User.objects.exists()
    assert Workspace.objects.filter(slug="demo").exists()
    assert "No demo login" in out


# --- run_embedded -------------------------------------------------------------------------------------


def test_run_embedded_refuses_a_port_that_is_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"Port {port} .* in use"):
            call_command("run_embedded", port=port, stdout=io.StringIO())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; it only waits for its parent to reap it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_stopping_children_also_ends_what_they_forked():
    # A child that forks a grandchild and ignores SIGTERM: only the group SIGKILL can end both.
    script = "trap '' TERM; sleep 300 & echo $!; wait"
    process = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    grandchild = int(process.stdout.readline())
    assert _alive(grandchild)

    stop_children([Child("stubborn", process)], timeout=0.5)

    assert process.poll() is not None
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_stopping_children_asks_politely_first():
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)

    stop_children([Child("sleeper", process)])

    assert process.returncode == -signal.SIGTERM


def test_demo_has_a_draft_campaign_to_the_newsletter_that_sends_nothing(demo):
    from sequences.models import CampaignStatus, Message

    campaign = Campaign.objects.get(workspace__slug="demo", name="Monthly newsletter")

    assert campaign.status == CampaignStatus.DRAFT and campaign.scheduled_at is None
    assert list(campaign.lists.values_list("name", flat=True)) == ["Newsletter"]
    assert not Message.objects.filter(campaign=campaign).exists()
