"""Two ticks at once on PostgreSQL (real transactions, one connection per thread): SKIP LOCKED claims and
the lease split the due runs between them, and no action is done twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from automation.engine import run_advance, workflow_runs_advance_due
from automation.models import WorkflowRun, WorkflowRunStep
from automation.runs import workflow_run_start
from sequences.models import Message
from tests.automation.test_engine_support import eager, workflow_make  # noqa: F401
from tests.factories import SubscriberFactory, TemplateFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager")]


def test_two_concurrent_ticks_send_each_email_once(workspace, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.WORKFLOW_TICK_BATCH = 5
    template = TemplateFactory(workspace=workspace, name="Nudge")
    workflow = workflow_make(workspace, actions=[
        {"type": "wait", "duration": {"value": 1, "unit": "hours"}},
        {"type": "send_email", "template_id": template.pk},
        {"type": "add_tag", "tag": "nudged"},
    ])  # fmt: skip
    for _ in range(30):
        subscriber = SubscriberFactory(workspace=workspace)
        run_advance(workflow_run_start(workflow=workflow, subscriber=subscriber, dedupe_key="k").run.pk)
    later = timezone.now() + timedelta(hours=2)
    barrier, advanced, errors = threading.Barrier(2), [], []

    def tick() -> None:
        try:
            barrier.wait()
            advanced.append(workflow_runs_advance_due(now=later))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(advanced) == 30  # each run claimed by exactly one of the ticks
    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {"completed"}
    assert Message.objects.filter(template=template).count() == 30
    assert WorkflowRunStep.objects.filter(action_type="send_email").count() == 30
