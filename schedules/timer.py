"""The in-process timer: APScheduler 3 with a memory job store, rebuilt from the database.

The schedule of record is our tables. The timer only holds the fire times of the next
`horizon`, one date job per time with a stable id, and a reconcile job that fires anything
due and rebuilds the jobs when schedules changed (also from another process). Lateness is decided by
`fire_due`, not by APScheduler (misfire_grace_time=None).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from coso.clock import Clock
from schedules.firing import next_fire_times

log = logging.getLogger(__name__)


class Timer:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        on_fire: Callable[[], None],
        *,
        horizon: timedelta,
        reconcile_every: timedelta,
    ) -> None:
        self.engine, self.clock, self.on_fire = engine, clock, on_fire
        self.horizon, self.reconcile_every = horizon, reconcile_every
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self.reconciled_at: float | None = None  # time.monotonic() of the last good pass

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(
            self.reconcile,
            "interval",
            id="reconcile",
            seconds=self.reconcile_every.total_seconds(),
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        self.on_fire()  # catch up on anything due while we were down
        self.rebuild()
        self.reconciled_at = time.monotonic()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def reconcile(self) -> None:
        """The correction loop: fire whatever is due (a lost job or a clock jump cannot skip
        a slot), then refill the horizon, which also picks up edited schedules."""
        try:
            self.on_fire()
            self.rebuild()
            self.reconciled_at = time.monotonic()
        except Exception:  # the timer thread must survive a database hiccup
            log.exception("timer reconcile failed; will try again")

    def rebuild(self) -> None:
        """Hold a date job for every fire time in the next horizon, and none other."""
        now = self.clock.now()
        wanted = {}
        for schedule_id, when in next_fire_times(self.engine, now, now + self.horizon):
            wanted[f"fire:{schedule_id}:{when.isoformat()}"] = when
        for job in self._scheduler.get_jobs():
            if job.id.startswith("fire:") and job.id not in wanted:
                job.remove()
        for job_id, when in wanted.items():
            self._scheduler.add_job(
                self._fire,
                "date",
                run_date=when,
                id=job_id,
                replace_existing=True,
                misfire_grace_time=None,
            )

    def pending_jobs(self) -> list[str]:
        return [j.id for j in self._scheduler.get_jobs() if j.id.startswith("fire:")]

    def _fire(self) -> None:
        try:
            self.on_fire()
        except Exception:
            log.exception("firing failed; the reconcile job will retry")
