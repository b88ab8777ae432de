"""Crash safety: a real Celery worker process is SIGKILLed mid-batch, again and again; nothing is lost and
the duplicates at the SMTP server (counted by Message-ID) are no more than the number of kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from config.queues import Queue
from sequences.delivery.tasks import messages_dispatch
from sequences.models import Message, MessageStatus
from subscribers.models import Subscriber
from tests.factories import TemplateFactory
from tests.sequences.test_delivery_support import smtp_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 300
KILLS = 3


def _worker_start(*, smtp_port: int, log: Path) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "EMAIL_URL": "",
        "ESP": "",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_USE_TLS": "false",
        "SMTP_USE_SSL": "false",
        "DELIVERY_BATCH_SIZE": "25",
        "DELIVERY_LEASE_SECONDS": "3",
        "DELIVERY_RETRY_BASE_SECONDS": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q",
               f"{Queue.EMAIL.value},{Queue.DEFAULT.value}", "--without-heartbeat", "--without-gossip",
               "--without-mingle", "-l", "WARNING"]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _sent() -> int:
    return Message.objects.filter(status=MessageStatus.SENT).count()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_killed_mid_batch_lose_nothing_and_duplicate_at_most_once_per_kill(smtp, workspace, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a database it can share: PostgreSQL")
    workspace.sending_rate_per_second = 1000  # the kills, not the pace, are under test
    workspace.save()
    template = TemplateFactory(workspace=workspace)
    people = Subscriber.objects.bulk_create(
        [Subscriber(workspace=workspace, email=f"k{i}@example.org", first_name="K") for i in range(MESSAGES)]
    )
    Message.objects.bulk_create(
        [Message(workspace=workspace, subscriber=p, template=template, to_email=p.email) for p in people]
    )
    log = tmp_path / "worker.log"
    kills = 0
    worker = _worker_start(smtp_port=smtp.port, log=log)
    try:
        deadline = time.monotonic() + 240
        last_kill_at = 0
        while time.monotonic() < deadline:
            # The test plays beat: a dispatch tick twice a second.
            messages_dispatch.apply_async(queue=Queue.DEFAULT.value)
            time.sleep(0.5)
            sent = _sent()
            if sent >= MESSAGES:
                break
            if kills < KILLS and sent >= last_kill_at + MESSAGES // (KILLS + 2):
                worker.send_signal(signal.SIGKILL)  # mid-batch: it is sending right now
                worker.wait()
                kills += 1
                last_kill_at = sent
                worker = _worker_start(smtp_port=smtp.port, log=log)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert kills == KILLS, log.read_text()[-3000:]
    assert _sent() == MESSAGES, (Counter(Message.objects.values_list("status", flat=True)), log.read_text()[-3000:])
    ids = Counter(str(m["Message-ID"]) for m in smtp.messages)
    expected = set(Message.objects.values_list("message_id_header", flat=True))
    assert set(ids) == expected  # every message arrived
    duplicates = sum(count - 1 for count in ids.values())
    # Each send is recorded at once: a kill can catch at most one message accepted but not recorded.
    assert duplicates <= kills, ids.most_common(5)
    # The kills did land mid-batch: messages claimed by a killed worker were claimed again after their lease.
    reclaimed = Message.objects.filter(attempts__gt=1).count()
    print(f"kills={kills} duplicates={duplicates} reclaimed={reclaimed}")
    assert reclaimed > 0
