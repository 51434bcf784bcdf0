"""Wake-ups on time: the due-job loop that runs beside each django-q2 cluster.

django-q2 has no delayed tasks and its scheduler looks about every 30 s, so a job waiting 5 s
would wake after 30. Instead each `manage.py qcluster` (provisioning's own command) runs this
loop in a thread of its main process: every JOB_DUE_POLL_SECONDS it hands the jobs whose
next_attempt_at has come to its workers (provisioning.jobs.jobs_dispatch_due: SKIP LOCKED on
PostgreSQL, so several clusters never hand out a job twice). The minute sweep stays the safety
net. A database that goes away is logged and retried with a growing pause; the loop never dies
of it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, connection

from provisioning.jobs import jobs_dispatch_due

logger = logging.getLogger(__name__)

BATCH = 100
BACKOFF_MAX_SECONDS = 10.0


class DueJobLoop(threading.Thread):
    """A daemon thread handing out due jobs until `stop()` (or until `alive()` is false)."""

    def __init__(self, *, interval: float | None = None, alive: Callable[[], bool] = bool) -> None:
        super().__init__(name="wopr-due-jobs", daemon=True)
        self.interval = interval if interval is not None else settings.JOB_DUE_POLL_SECONDS
        self.alive = alive
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        logger.info("due-job loop started (every %.2f s)", self.interval)
        try:
            while not self.stopping.is_set() and self.alive():
                self.stopping.wait(self.tick())
        finally:
            connection.close()  # this thread's own connection
            logger.info("due-job loop stopped")

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def tick(self) -> float:
        """Hand out one batch; returns how long to pause (0 while a full batch came back)."""
        try:
            handed = jobs_dispatch_due(limit=BATCH)
        except DatabaseError as error:
            return self._failed(f"database unavailable ({type(error).__name__}: {error})")
        except Exception as error:  # a bug must not stop wake-ups: the sweep still runs
            logger.exception("due-job loop failed")
            return self._failed(f"{type(error).__name__}")
        if self.failures:
            logger.info("due-job loop recovered after %d failure(s)", self.failures)
        self.failures = 0
        return 0.0 if len(handed) == BATCH else self.interval

    def _failed(self, reason: str) -> float:
        """Drop the (probably broken) connection and pause longer after each failure in a row."""
        self.failures += 1
        with contextlib.suppress(DatabaseError):  # already gone; the next tick reconnects
            connection.close()
        pause = min(self.interval * 2**self.failures, BACKOFF_MAX_SECONDS)
        logger.warning("due-job loop: %s; trying again in %.1f s", reason, pause)
        return pause
