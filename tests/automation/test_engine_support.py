"""Support of the automation engine tests (no tests here): workflows built through the service, events
recorded and matched the way production does it (after commit, Celery eager)."""

from __future__ import annotations

from typing import Any

import pytest

from automation import services
from automation.models import Workflow
from config.celery_app import app as celery_app
from subscribers.models import Event, EventType
from subscribers.services import event_record


@pytest.fixture
def eager():
    """Tasks run inline, in the test's process and transaction, instead of going to the broker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def workflow_make(
    workspace,
    *,
    actions: list[dict[str, Any]],
    trigger_type: str = "event",
    trigger_config: dict[str, Any] | None = None,
    activate: bool = True,
    **fields: Any,
) -> Workflow:
    if trigger_config is None and trigger_type == "event":
        trigger_config = {"name": "order_placed"}
    workflow = services.workflow_create(
        workspace=workspace, name=fields.pop("name", f"wf {Workflow.objects.count() + 1}"), trigger_type=trigger_type,
        trigger_config=trigger_config, actions=actions, **fields,
    )  # fmt: skip
    if activate:
        workflow = services.workflow_activate(workspace=workspace, workflow=workflow)
    return workflow


def record(
    capture,
    workspace,
    subscriber,
    name: str = "",
    *,
    type: str = EventType.CUSTOM,
    properties: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Event:
    """Record an event and run what runs after its commit (the matcher), as in production."""
    with capture(execute=True):
        event, _ = event_record(
            workspace=workspace, subscriber=subscriber, type=type, name=name, properties=properties or {}, **kwargs
        )
    return event
