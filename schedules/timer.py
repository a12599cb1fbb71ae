"""The in-process timer: APScheduler 3 with a memory job store, fed from the database.

The schedule of record is our tables. The timer keeps in memory what it read of each enabled
schedule and its next fire times (the due index), and holds one APScheduler date job per
distinct fire time of the next `horizon`. A time's job fires the schedules due then and no
others (`fire_slot`: their rows by id, in one transaction), then `on_fired` fans them out.

A reconcile job, every `reconcile_every`, reads what changed (rows stamped since its last pass,
and in turn a slice of all rows, so that a change the first misses is found within a few
passes), expands only those schedules again, slides the horizon forward, and fires any time
whose job was lost or that a clock jump passed. A schedule found behind (after a restart, or
a failed write) is fired from its row by `fire_due` first. Lateness is decided by firing, not
by APScheduler (misfire_grace_time=None).

Cueing: a schedule on a channel whose devices hold a programme and start each item at its
time by their own clock (`cue_ahead(channel)` > 0, e.g. screens) is fired that long before
its slot, by a cue job, so that its items are on the devices when the slot comes; the
slot's own job fires it then if the cue did not (a start within the cue, a failed write).
An emergency schedule is never cued.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, select

from coso.clock import Clock, as_utc
from coso.db import chunks
from schedules.firing import TIMING_COLUMNS, Expected, fire_due, fire_slot, timing_version
from schedules.models import EMERGENCY, Schedule
from schedules.timing import Timing, timing_of

S = Schedule.__table__
log = logging.getLogger(__name__)
# What the timer reads of a schedule: its timing (its name labels log lines about it).
_READ = (S.c.id, S.c.name, S.c.channel, S.c.priority, S.c.fired_through, *TIMING_COLUMNS)

# One expansion of a schedule looks a day ahead (cheap: schedules.timing) for this many times
# at most; a schedule with none in the day looks once further, up to LOOK_AHEAD.
EXPAND_WINDOW = timedelta(days=1)
EXPAND_MOST = 64
LOOK_AHEAD = timedelta(days=400)
# A schedule's change is known by its stamp (updated_at, which every edit sets). A stamp up
# to EDIT_SKEW before the last pass is still looked at (another process's clock, an import's
# transaction); and each pass compares SWEEP_ROWS rows in turn whatever their stamp, so that
# a change is found within len(schedules) / SWEEP_ROWS passes in any case.
EDIT_SKEW = timedelta(seconds=15)
SWEEP_ROWS = 1000
READ_BATCH = 500


@dataclass
class _Tracked:
    """What the timer read of one schedule, and where its times stand."""

    version: tuple[object, ...]
    timing: Timing
    generation: int
    last: datetime  # its last time handed to a slot, or what it had fired up to
    expanded: datetime  # its times up to here are in `times` or in slots
    times: deque[datetime] = field(default_factory=deque)
    slotted: list[datetime] = field(default_factory=list)  # its times in slots, not fired
    cue: timedelta = timedelta(0)  # fired this long before each slot (its channel's cue)

    def next_look(self) -> datetime:
        return self.times[0] if self.times else self.expanded


class Timer:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        on_fired: Callable[[], None],
        *,
        horizon: timedelta,
        reconcile_every: timedelta,
        cue_ahead: Callable[[str], timedelta] | None = None,
    ) -> None:
        self.engine, self.clock, self.on_fired = engine, clock, on_fired
        self.cue_ahead = cue_ahead or (lambda _channel: timedelta(0))
        self.horizon, self.reconcile_every = horizon, reconcile_every
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self.reconciled_at: float | None = None  # time.monotonic() of the last good pass
        # The due index, shared by the reconcile job and the slots' jobs.
        self._lock = threading.Lock()
        self._tracked: dict[int, _Tracked] = {}
        self._slots: dict[datetime, dict[int, Expected]] = {}  # time → schedules due then
        self._cues: dict[datetime, datetime] = {}  # slot → when its cue job runs
        self._touched: set[datetime] = set()  # slots given schedules since the last pass
        self._later: list[tuple[datetime, int, int]] = []  # heap: (look again at, id, generation)
        self._generation = 0
        self._behind: set[int] = set()  # still behind after a catch-up: read again next pass
        self._passed_at: datetime | None = None  # the clock at the start of the last pass
        self._reconciling = threading.Lock()  # one pass at a time (its job, start, a restart)
        self._sweep_after = 0  # the sweep's next slice starts after this id

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        began = time.perf_counter()
        self._scheduler.start()
        self._reconcile()  # every schedule is new to it: the whole table is read
        self._scheduler.add_job(
            self.reconcile,
            "interval",
            id="reconcile",
            seconds=self.reconcile_every.total_seconds(),
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        self.reconciled_at = time.monotonic()
        with self._lock:
            schedules, slots = len(self._tracked), len(self._slots)
            times = sum(len(due) for due in self._slots.values())
        log.info(
            "timer loaded: %d schedules, %d fire times at %d distinct times in the next %s,"
            " in %.2f s",
            schedules,
            times,
            slots,
            self.horizon,
            time.perf_counter() - began,
        )

    def stop(self) -> None:
        if self._scheduler.running:
            # APScheduler marks itself stopped before it takes its job stores' lock: a pass
            # over due jobs midway would fail to remove a date job it has just run, and its
            # thread die with an error. Removing the jobs first waits for such a pass, and
            # leaves the next nothing to do.
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=False)

    def reconcile(self) -> None:
        """The correction loop: take in edited schedules, fire whatever is due (a lost job or
        a clock jump cannot skip a slot), and fill the horizon."""
        try:
            self._reconcile()
            self.reconciled_at = time.monotonic()
        except Exception:  # the timer thread must survive a database hiccup
            log.exception("timer reconcile failed; will try again")

    def pending_jobs(self) -> list[str]:
        return [j.id for j in self._scheduler.get_jobs() if j.id.startswith(("fire:", "cue:"))]

    def slots(self) -> dict[datetime, list[int]]:
        """The fire times held, each with the ids of the schedules due then."""
        with self._lock:
            return {when: sorted(due) for when, due in sorted(self._slots.items())}

    # --- the reconcile pass --------------------------------------------------------------

    def _reconcile(self) -> None:
        with self._reconciling:
            self._reconcile_pass()

    def _reconcile_pass(self) -> None:
        now = self.clock.now()
        first = self._passed_at is None
        changed, gone = self._changes(now) if not first else ([], set())
        rows = self._read(changed) if not first else self._read_all()
        with self._lock:
            for schedule_id in gone:
                self._untrack(schedule_id)
            behind = [row.id for row in rows if not self._retrack(row, now)]
        if behind:
            # Its times up to now fire from its row; then it is read again and tracked.
            fire_due(self.engine, now, clock=self.clock, ids=behind)
            again = self._read(behind)
            with self._lock:
                self._behind = {row.id for row in again if not self._retrack(row, now)}
        else:
            self._behind = set()
        with self._lock:
            if len(self._later) > 2 * len(self._tracked) + 1000:  # entries of edited ones
                self._later = [(t.next_look(), i, t.generation) for i, t in self._tracked.items()]
                heapq.heapify(self._later)
            new = self._advance(now + self.horizon)
            overdue = sorted(when for when in self._slots if when <= now)
            cues = self._new_cues(self._touched)
            self._touched = set()
        self._add_jobs(when for when in new if when > now)
        for when in overdue:
            self._fire_slot(when)
        self._set_cues(cues, now)
        self._passed_at = now
        self.on_fired()  # fan out anything still pending, also after a failed fan-out

    def _changes(self, now: datetime) -> tuple[list[int], set[int]]:
        """Ids of schedules to read again (new, edited, or behind) and of those gone (off or
        deleted), from rows stamped since the last pass and this pass's slice of the sweep."""
        assert self._passed_at is not None
        since = self._passed_at - EDIT_SKEW
        with self.engine.connect() as conn:
            recent = conn.execute(
                select(S.c.id, S.c.enabled, S.c.updated_at).where(S.c.updated_at >= since)
            ).all()
            sweep = conn.execute(
                select(S.c.id, S.c.enabled, S.c.updated_at)
                .where(S.c.id > self._sweep_after)
                .order_by(S.c.id)
                .limit(SWEEP_ROWS)
            ).all()
        changed, gone = set(self._behind), set()
        with self._lock:
            for row in (*recent, *sweep):
                known = self._tracked.get(row.id)
                if not row.enabled:
                    gone.add(row.id)
                elif known is None or known.version[0] != as_utc(row.updated_at):
                    changed.add(row.id)
            # Ids of the slice the table no longer has were deleted.
            upto = sweep[-1].id if len(sweep) >= SWEEP_ROWS else None
            present = {row.id for row in sweep}
            gone |= {
                i
                for i in self._tracked
                if i > self._sweep_after and (upto is None or i <= upto) and i not in present
            }
            gone &= set(self._tracked)
        self._sweep_after = upto or 0
        return sorted(changed - gone), gone

    def _read_all(self) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(*_READ).where(S.c.enabled.is_(True)).order_by(S.c.id)).all()

    def _read(self, ids: list[int]) -> list[Any]:
        rows = []
        with self.engine.connect() as conn:
            for part in chunks(ids, READ_BATCH):
                query = select(*_READ).where(S.c.id.in_(part), S.c.enabled.is_(True))
                rows += conn.execute(query).all()
        return rows

    # --- the due index (callers hold self._lock) ---------------------------------------------

    def _retrack(self, row: Any, now: datetime) -> bool:
        """Track `row` afresh; False (and untracked) when it has times up to `now` unfired."""
        self._untrack(row.id)
        timing = timing_of(row)
        fired = as_utc(row.fired_through)
        start = fired
        if now - fired > EXPAND_WINDOW / 2:  # long since: one (dearer) look for a time due
            if timing.fire_times(fired, now, most=1):
                return False
            start = now
        self._generation += 1
        tracked = _Tracked(timing_version(row), timing, self._generation, fired, start)
        # An emergency goes at its slot: a device told ahead might break in at once.
        tracked.cue = timedelta(0) if row.priority == EMERGENCY else self.cue_ahead(row.channel)
        self._expand(tracked)
        if tracked.times and tracked.times[0] <= now:
            return False  # due already: fire_due catches it up from its row
        self._tracked[row.id] = tracked
        heapq.heappush(self._later, (tracked.next_look(), row.id, tracked.generation))
        return True

    def _untrack(self, schedule_id: int) -> None:
        tracked = self._tracked.pop(schedule_id, None)
        if tracked is None:
            return
        for when in tracked.slotted:
            due = self._slots.get(when)
            if due is not None:
                due.pop(schedule_id, None)
                if not due:
                    del self._slots[when]
                    self._remove_job(when)
                    if self._cues.pop(when, None) is not None:
                        self._remove_job(when, "cue")

    def _advance(self, until: datetime) -> list[datetime]:
        """Put every tracked time up to `until` in its slot; returns the slots new to it."""
        new = []
        while self._later and self._later[0][0] <= until:
            _, schedule_id, generation = heapq.heappop(self._later)
            tracked = self._tracked.get(schedule_id)
            if tracked is None or tracked.generation != generation:
                continue  # edited or gone since: its newer entry is in the heap
            if not tracked.times:
                self._expand(tracked)
            else:
                when = tracked.times.popleft()
                due = self._slots.get(when)
                if due is None:
                    due = self._slots[when] = {}
                    new.append(when)
                due[schedule_id] = Expected(tracked.version, tracked.last)
                if tracked.cue > timedelta(0):
                    self._touched.add(when)
                tracked.last = when
                tracked.slotted.append(when)
            heapq.heappush(self._later, (tracked.next_look(), schedule_id, generation))
        return new

    @staticmethod
    def _expand(tracked: _Tracked) -> None:
        """The schedule's next times, a day's worth (EXPAND_MOST at most), or the next one
        within LOOK_AHEAD when the day has none."""
        after = tracked.expanded
        until = after + EXPAND_WINDOW
        times = tracked.timing.fire_times(after, until, most=EXPAND_MOST)
        if not times:
            times = tracked.timing.fire_times(until, after + LOOK_AHEAD, most=1)
            tracked.expanded = times[0] if times else after + LOOK_AHEAD
        elif len(times) >= EXPAND_MOST:
            tracked.expanded = times[-1]
        else:
            tracked.expanded = until
        tracked.times.extend(times)

    # --- the slots' jobs ------------------------------------------------------------------

    def _add_jobs(self, times: Iterable[datetime]) -> None:
        for when in times:
            self._add_job(self._fire_slot, when, when, "fire")

    def _add_job(
        self, run: Callable[[datetime], None], at: datetime, when: datetime, kind: str
    ) -> None:
        """The date job that runs `run(when)` at `at` (the slot's own, or its cue)."""
        self._scheduler.add_job(
            run,
            "date",
            run_date=at,
            args=[when],
            id=_job_id(when, kind),
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _remove_job(self, when: datetime, kind: str = "fire") -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(_job_id(when, kind))

    def _new_cues(self, slots: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
        """(slot, cue time) of each of `slots` whose cue is not set yet, or comes earlier now
        (a schedule with a longer cue joined it): the longest cue of its schedules not fired
        yet. Callers hold self._lock."""
        changed = []
        for when in sorted(slots):
            due = self._slots.get(when) or {}
            cues = [t.cue for sid in due if (t := self._tracked.get(sid)) and t.cue > timedelta(0)]
            if not cues:
                continue
            at = when - max(cues)
            if self._cues.get(when, when) > at:
                self._cues[when] = at
                changed.append((when, at))
        return changed

    def _set_cues(self, cues: list[tuple[datetime, datetime]], now: datetime) -> None:
        for when, at in cues:
            if at <= now < when:
                self._cue_slot(when)  # within its cue already: now
            elif at > now:
                self._add_job(self._cue_slot, at, when, "cue")

    def _unslot(self, when: datetime, schedule_ids: Iterable[int]) -> None:
        """These schedules' time `when` is being fired: no longer waiting in their slot.
        Callers hold self._lock."""
        for schedule_id in schedule_ids:
            tracked = self._tracked.get(schedule_id)
            if tracked is not None and when in tracked.slotted:
                tracked.slotted.remove(when)

    def _cue_slot(self, when: datetime) -> None:
        """Fire, ahead of `when`, the schedules due then whose channel is cued: their
        occurrences at `when`, fanned out now. Those left (a failed write) fire at `when`."""
        now = self.clock.now()
        with self._lock:
            due = self._slots.get(when) or {}
            cued = {
                sid: expected
                for sid, expected in due.items()
                if (t := self._tracked.get(sid)) is not None and when - t.cue <= now
            }
        if not cued or now >= when:
            return  # not its time (a test's clock behind the job's), or the slot's job fires it
        try:
            created = fire_slot(self.engine, self.clock, when, cued)
        except Exception:
            log.exception("cueing the slot at %s failed; it fires at its time", when)
            return
        with self._lock:
            self._unslot(when, cued)
            due = self._slots.get(when)
            if due is not None:
                for sid in cued:
                    due.pop(sid, None)
            self._cues.pop(when, None)
            if due is not None and not due:
                del self._slots[when]
                self._remove_job(when)
                more = []
            else:
                more = self._new_cues([when])  # those with a shorter cue: their own job
        if created:
            self.on_fired()
        self._set_cues(more, now)

    def _fire_slot(self, when: datetime) -> None:
        """Fire the schedules due at `when` (its job, or the reconcile for a late one)."""
        if self.clock.now() < when:
            return  # a clock behind the job's time (a test's): the reconcile fires it when due
        with self._lock:
            due = self._slots.pop(when, None)
            if self._cues.pop(when, None) is not None:
                self._remove_job(when, "cue")
            if not due:
                return
            self._unslot(when, due)
        try:
            created = fire_slot(self.engine, self.clock, when, due)
        except Exception:
            log.exception("firing the slot at %s failed; the reconcile job will retry", when)
            with self._lock:  # kept for the reconcile, which fires slots already due
                self._slots.setdefault(when, {}).update(due)
            return
        if created:
            self.on_fired()


def _job_id(when: datetime, kind: str = "fire") -> str:
    return f"{kind}:{when.isoformat()}"
