"""The per-process flusher thread: it runs scheduled flushes, survives a failing one, and replaces
itself when a flush hangs (a hung flush must not stop every later push of the process)."""

from __future__ import annotations

import threading
import time

from realtime.publish import Flusher

WAIT = 10  # seconds a test waits for something that should happen at once; never a speed assertion


class Recorder:
    """A flush function that records workspace ids; workspaces in `hang` block until `release` is set."""

    def __init__(self, hang: tuple[int, ...] = (), fail: tuple[int, ...] = ()) -> None:
        self.hang, self.fail = hang, fail
        self.release = threading.Event()
        self.started: dict[int, threading.Event] = {}
        self.done: dict[int, threading.Event] = {}
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def _event(self, table: dict[int, threading.Event], workspace_id: int) -> threading.Event:
        with self._lock:
            return table.setdefault(workspace_id, threading.Event())

    def __call__(self, workspace_id: int) -> None:
        with self._lock:
            self.calls.append(workspace_id)
        self._event(self.started, workspace_id).set()
        try:
            if workspace_id in self.hang:
                self.release.wait(WAIT)
            if workspace_id in self.fail:
                raise RuntimeError("redis went away")
        finally:
            self._event(self.done, workspace_id).set()

    def wait_started(self, workspace_id: int) -> bool:
        return self._event(self.started, workspace_id).wait(WAIT)

    def wait_done(self, workspace_id: int) -> bool:
        return self._event(self.done, workspace_id).wait(WAIT)


def test_a_scheduled_workspace_is_flushed_once_however_often_it_is_scheduled():
    recorder = Recorder()
    flusher = Flusher(recorder)

    flusher.schedule(1, 0.05)
    flusher.schedule(1, 0.05)  # already scheduled: rides along
    flusher.schedule(2, 0)

    assert recorder.wait_done(1) and recorder.wait_done(2)
    assert sorted(recorder.calls) == [1, 2]
    assert recorder.calls[0] == 2  # due first


def test_a_failing_flush_does_not_stop_later_ones(caplog):
    recorder = Recorder(fail=(1,))
    flusher = Flusher(recorder)

    flusher.schedule(1, 0)
    assert recorder.wait_done(1)
    flusher.schedule(2, 0)

    assert recorder.wait_done(2)
    assert "realtime flush failed for workspace 1" in caplog.text


def test_a_hung_flush_is_replaced_by_a_new_thread_and_the_old_one_exits():
    recorder = Recorder(hang=(1,))
    flusher = Flusher(recorder, stall_seconds=0.05)
    flusher.schedule(1, 0)
    assert recorder.wait_started(1)
    stuck = flusher._thread
    time.sleep(0.1)  # the hung flush is now older than stall_seconds

    flusher.schedule(2, 0)

    assert recorder.wait_done(2), "a hung flush blocked the next workspace's push"
    assert flusher._thread is not stuck
    recorder.release.set()
    assert stuck is not None
    stuck.join(WAIT)
    assert not stuck.is_alive()
    flusher.schedule(3, 0)
    assert recorder.wait_done(3)
    assert sorted(recorder.calls) == [1, 2, 3]  # nothing flushed twice by the two threads


def test_a_slow_flush_younger_than_the_stall_limit_keeps_its_thread():
    recorder = Recorder(hang=(1,))
    flusher = Flusher(recorder, stall_seconds=3600)
    flusher.schedule(1, 0)
    assert recorder.wait_started(1)
    running = flusher._thread

    flusher.schedule(2, 0)
    recorder.release.set()

    assert recorder.wait_done(2)
    assert flusher._thread is running
