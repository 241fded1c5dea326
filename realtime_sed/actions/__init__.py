"""Actions: what happens when a sound is detected (a command, a webhook, MQTT).

An action hangs off the stream like a sink, but never blocks it: the stream only offers a message
to the action's bounded queue and moves on. Each action sends from its own thread(s) and counts
what it sent, what failed and what it had to drop because its queue was full, so a hung webhook
or a broker that went away costs messages (counted), never audio.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from realtime_sed.events import Event
from realtime_sed.sinks import Sink, event_record

QUEUE_SIZE = 1000  # messages an action holds while it is slow or its server is away
CLOSE_TIMEOUT_S = 5.0  # how long the end of a run waits for the actions to send what they hold
ABORT_GRACE_S = 0.5  # after giving up, how long a worker gets to end what it was doing

START, END, FINISHED = "start", "end", "finished"


@dataclass(frozen=True)
class Message:
    kind: str  # START / END: a class went on / off; FINISHED: an event ended and was kept
    label: str
    record: dict | None = None  # FINISHED: the event's JSON, as the JSONL log has it


@dataclass(frozen=True)
class ActionHealth:
    name: str
    sent: int
    failed: int
    dropped: int
    queued: int
    state: str  # e.g. "ok", "connecting", "failing"
    last_error: str = ""


class ActionFailed(Exception):
    """One message could not be delivered; the action counts it and goes on."""


class Action:
    """A bounded queue and worker threads. Subclasses implement `handle` (raise ActionFailed or any
    Exception on failure) and may narrow `kinds`."""

    name = "action"
    kinds: frozenset[str] = frozenset({FINISHED})

    def __init__(self, queue_size: int = QUEUE_SIZE, workers: int = 1):
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.abort = threading.Event()  # set when closing gives up: waits in `handle` end early
        self.sent = self.failed = self.dropped = 0
        self.last_error = ""
        self._in_flight = 0  # messages a worker holds right now
        self._given_up = False  # closing gave up: what is still in flight was counted as dropped

    def start(self) -> None:
        for i in range(self._workers):
            t = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def offer(self, message: Message, wait: bool = False) -> None:
        """Never blocks: a full queue drops the message and counts it. With `wait` (classify,
        which has no live audio to lose) it waits for room instead."""
        if message.kind not in self.kinds:
            return
        try:
            if wait:
                self._queue.put(message)
            else:
                self._queue.put_nowait(message)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def handle(self, message: Message) -> None:
        raise NotImplementedError

    def state(self) -> str:
        return "failing" if self.last_error and self.failed else "ok"

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            with self._lock:
                if self._given_up:  # taken after closing gave up: counted here, not sent
                    self.dropped += message is not None
                    return
                if message is None:
                    return
                self._in_flight += 1
            try:
                self.handle(message)
            except Exception as exc:  # one message failed: count it, keep serving the others
                with self._lock:
                    if not self._given_up:
                        self.failed += 1
                        self.last_error = str(exc) or type(exc).__name__
            else:
                with self._lock:
                    if not self._given_up:
                        self.sent += 1
                        self.last_error = ""
            finally:
                with self._lock:
                    self._in_flight -= 1

    def stop_workers(self, deadline: float) -> None:
        """Asks the workers to finish what is queued, then exit (a full queue waits for room
        until `deadline`)."""
        for _ in self._threads:
            while True:
                try:
                    self._queue.put(None, timeout=0.05)
                    break
                except queue.Full:
                    if time.monotonic() >= deadline:
                        return

    def join(self, deadline: float) -> None:
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self.abort.set()  # give up: what is still queued or in a worker's hands is dropped
            with self._lock:
                left = self._in_flight
                while True:
                    try:
                        left += self._queue.get_nowait() is not None
                    except queue.Empty:
                        break
                self.dropped += left
                self._given_up = True
            for t in self._threads:  # a moment to end what `abort` ends (a command is killed)
                t.join(ABORT_GRACE_S)

    def close(self) -> None:
        """What the action owns beyond its threads (a connection)."""

    def health(self) -> ActionHealth:
        with self._lock:
            return ActionHealth(self.name, self.sent, self.failed, self.dropped, self._queue.qsize(),
                                self.state(), self.last_error)


class ActionSink(Sink):
    """Feeds actions from the stream: each finished event, and each class going on and off (from
    the events active after every window). Every call returns at once, unless `wait` (classify:
    files, not live audio) makes a full queue hold the stream back instead of dropping."""

    def __init__(self, actions: Iterable[Action], wait: bool = False):
        self.actions = list(actions)
        self.wait = wait
        self._on: set[str] = set()
        for action in self.actions:
            action.start()

    def _offer(self, message: Message) -> None:
        for action in self.actions:
            action.offer(message, self.wait)

    def active(self, filename: str, events: list[Event]) -> None:
        labels = {ev.label for ev in events}
        for label in sorted(labels - self._on):
            self._offer(Message(START, label))
        for label in sorted(self._on - labels):
            self._offer(Message(END, label))
        self._on = labels

    def event(self, filename: str, event: Event) -> None:
        self._offer(Message(FINISHED, event.label, event_record(filename, event)))

    def health(self) -> list[ActionHealth]:
        return [a.health() for a in self.actions]

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Classes still on go off, then every action gets up to `timeout` (together) to send."""
        self.active("", [])
        deadline = time.monotonic() + timeout
        for action in self.actions:
            action.stop_workers(deadline)
        for action in self.actions:
            action.join(deadline)
        for action in self.actions:
            action.close()
