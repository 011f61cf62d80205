"""Keeps a worker process visible and recovers the jobs of dead ones, every few seconds.

Dramatiq's Redis broker re-delivers a killed worker's messages only when a random maintenance
roll (0.1% of commands) hits that queue after ``heartbeat_timeout``: minutes in practice. Here
each worker process runs, every ``interval`` seconds, Dramatiq's own maintenance for each of
its queues (and their delay queues) and writes its heartbeat, so a SIGKILLed worker's jobs are
back in their queue about ``heartbeat_timeout + interval`` seconds later (20 s by default).

It also tracks the jobs this process is running, for the worker registry
(:mod:`queues.workers`) that the admin tool, the monitor and the dashboard read.

Parameters:
  registry: callable returning the :class:`~queues.workers.WorkerRegistry`.
  interval: seconds between heartbeats and sweeps (``QUEUE_MAINTENANCE_INTERVAL``).
  sweep: callable(broker, queue_names) that runs the broker's dead-worker maintenance.
  beat: callable(broker) that refreshes the broker's own heartbeat for this process (the one
    ``sweep`` reads), so a live process is never taken for dead while its consumers reconnect.
  heartbeat_timeout: after this process could not reach Redis, it waits this long before it
    sweeps, so that live workers whose heartbeats went stale in the same outage are not taken
    for dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from dramatiq import Middleware

from queues.workers import WorkerInfo, WorkerRegistry

logger = logging.getLogger(__name__)


class WorkerPresence(Middleware):
    """Heartbeats, the registry of running jobs and the dead-worker sweep of one process."""

    def __init__(self, *, registry: Callable[[], WorkerRegistry], interval: float = 5,
                 sweep: Callable[[object, list[str]], int] | None = None,
                 beat: Callable[[object], None] | None = None, heartbeat_timeout: float = 15) -> None:
        self._registry = registry
        self.interval = interval
        self._sweep = sweep
        self._beat = beat
        self.heartbeat_timeout = heartbeat_timeout
        self._last_failure = 0.0
        self.worker_id = ""
        self.queues: list[str] = []
        self.current: dict[str, float] = {}
        self.processed = 0
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: object | None = None
        self._lock = threading.Lock()

    def after_worker_boot(self, broker, worker):
        self._worker = worker
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        wanted = getattr(worker, "consumer_whitelist", None) or broker.get_declared_queues()
        self.queues = sorted(q for q in wanted if not q.endswith(".DQ"))
        self.started_at = time.time()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="worker-presence", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        try:
            self._registry().remove(self.worker_id)
        except Exception:
            logger.warning("could not remove worker %s from the registry", self.worker_id)

    def before_process_message(self, broker, message):
        with self._lock:
            self.current[message.message_id] = time.time()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        with self._lock:
            self.current.pop(message.message_id, None)
            self.processed += 1

    def after_skip_message(self, broker, message):
        with self._lock:
            self.current.pop(message.message_id, None)

    def tick(self, broker) -> None:
        with self._lock:
            current = list(self.current)
            processed = self.processed
        if self._beat is not None and self._consumers_alive():
            self._beat(broker)
        self._registry().heartbeat(WorkerInfo(
            id=self.worker_id, host=socket.gethostname(), pid=os.getpid(), queues=self.queues,
            current_jobs=current, processed=processed, started_at=self.started_at,
            last_heartbeat=time.time(),
        ))
        # After an outage every process's heartbeat is stale at once: give the others one
        # heartbeat timeout to write theirs before treating anyone as dead (no double runs).
        if self._sweep is not None and time.time() - self._last_failure > self.heartbeat_timeout:
            recovered = self._sweep(broker, self.queues)
            if recovered:
                logger.warning("swept the queues of %d dead worker(s)", recovered)

    def _consumers_alive(self) -> bool:
        """Whether every consumer thread still runs: a process whose consumers died holds its
        messages for nobody, so it must look dead to the sweep (its broker heartbeat goes stale)."""
        consumers = getattr(self._worker, "consumers", None) or {}
        return all(thread.is_alive() for thread in consumers.values())

    def _run(self, broker) -> None:
        while not self._stop.is_set():
            try:
                self.tick(broker)
            except Exception as exc:  # Redis down: keep trying, the worker itself goes on
                self._last_failure = time.time()
                logger.warning("worker heartbeat failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(self.interval)
