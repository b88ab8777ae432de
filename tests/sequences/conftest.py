"""Fixtures of the sequences tests: a template, an active sequence with steps, subscribers."""

from __future__ import annotations

import pytest

from config.celery_app import app as celery_app
from sequences.models import Sequence, SequenceStatus, Template
from tests.factories import MailingListFactory, SequenceFactory, StepFactory, SubscriberFactory, TemplateFactory


@pytest.fixture
def template(workspace) -> Template:
    return TemplateFactory(workspace=workspace, name="Welcome")


@pytest.fixture
def other_template(other_workspace) -> Template:
    return TemplateFactory(workspace=other_workspace, name="Theirs")


@pytest.fixture
def active_sequence(workspace, template) -> Sequence:
    """An active sequence of two steps: the first after 2 hours, the second after 3 days."""
    sequence = SequenceFactory(workspace=workspace, name="Onboarding", status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=template, position=1, delay_value=2, delay_unit="hours")
    StepFactory(sequence=sequence, template=template, position=2, delay_value=3, delay_unit="days")
    return sequence


@pytest.fixture
def other_sequence(other_workspace, other_template) -> Sequence:
    sequence = SequenceFactory(workspace=other_workspace, name="Theirs", status=SequenceStatus.ACTIVE)
    StepFactory(sequence=sequence, template=other_template, position=1)
    return sequence


@pytest.fixture
def subscriber(workspace):
    return SubscriberFactory(workspace=workspace, email="ada@example.org", first_name="Ada")


@pytest.fixture
def eager_celery():
    """Tasks run inline, in the test's process and transaction, instead of going to the broker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def doi_list(workspace):
    return MailingListFactory(workspace=workspace, name="Weekly letter", double_opt_in=True)
