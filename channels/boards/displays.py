"""A board's display records: each says which delivery was on screen, from when, for how
long. They become `displayed` outcomes through the engine's one inbound path; a board
offline uploads them when it is back (each record once, by its own id)."""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from channels.base import Outcome
from channels.boards import devices
from channels.boards.tables import BoardDisplay, BoardItem
from coso.db import insert_ignoring_duplicates, write
from coso.loops import call_per_loop, settle

I = BoardItem.__table__  # noqa: E741
R = BoardDisplay.__table__
MOST_RECORDS = 500  # in one upload
CLOCK_SKEW = timedelta(minutes=2)


@dataclass
class Upload:
    accepted: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a time")
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("a time without its zone")
    return when.astimezone(UTC)


def record_displays(host: Any, board: Any, records: Any, received_at: datetime) -> Upload:
    """Check and keep a board's records; each valid one is a `displayed` outcome of its
    delivery. A record about another board's delivery, or malformed, is refused with why."""
    return record_many(host, [(board, records, received_at)])[0]


def record_many(host: Any, uploads: list[tuple[Any, Any, datetime]]) -> list[Upload]:
    """Several boards' uploads (board, records, when received) in one transaction."""
    results = [Upload() for _ in uploads]
    checked = [
        _checked(records, result) for (_, records, _), result in zip(uploads, results, strict=True)
    ]
    wanted = sorted({v["delivery"] for valid in checked for v in valid})
    with write(host.engine) as conn:
        items: dict[tuple[int, int], Any] = {}
        for start in range(0, len(wanted), 5000):
            for r in conn.execute(
                select(I.c.delivery_id, I.c.endpoint_id, I.c.starts_at, I.c.title).where(
                    I.c.delivery_id.in_(wanted[start : start + 5000])
                )
            ):
                items[(r.endpoint_id, r.delivery_id)] = r
        rows: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        seen: list[dict[str, Any]] = []  # boards heard from (one statement for all)
        shown: list[dict[str, Any]] = []  # and what each showed last
        for (board, _, received_at), valid, result in zip(uploads, checked, results, strict=True):
            last = None
            for v in valid:
                item = items.get((board.id, v["delivery"]))
                if item is None:
                    result.refused.append(
                        {
                            "id": v["id"],
                            "reason": f"delivery_id: lượt gửi {v['delivery']} không phải của "
                            f"bảng {board.address}",
                        }
                    )
                    outcomes.append(_outcome(board, v, received_at, v["started"]))
                    continue
                # A board's clock may be off: a start after coso got the record, or well
                # before the item's slot, is moved to that bound.
                started = min(v["started"], received_at)
                started = max(started, item.starts_at - CLOCK_SKEW)
                rows.append(
                    {
                        "endpoint_id": board.id,
                        "delivery_id": v["delivery"],
                        "record_id": v["id"],
                        "started_at": started,
                        "seconds": float(v["seconds"]),
                        "received_at": received_at,
                    }
                )
                outcomes.append(_outcome(board, v, received_at, started))
                result.accepted.append(v["id"])
                if last is None or started > last[0]:
                    last = (started, item.title)
            if last is None:
                seen.append({"eid": board.id, "seen": received_at})
            else:
                shown.append(
                    {"eid": board.id, "seen": received_at, "showing": last[1], "since": last[0]}
                )
        devices.ensure(conn, [b["eid"] for b in seen + shown])
        D = devices.D
        if seen:
            conn.execute(
                update(D)
                .where(D.c.endpoint_id == bindparam("eid"))
                .values(online=True, last_seen=bindparam("seen")),
                seen,
            )
        if shown:
            conn.execute(
                update(D)
                .where(D.c.endpoint_id == bindparam("eid"))
                .values(
                    online=True,
                    last_seen=bindparam("seen"),
                    showing=bindparam("showing"),
                    showing_since=bindparam("since"),
                ),
                shown,
            )
        if rows:
            conn.execute(insert_ignoring_duplicates(conn, R), rows)
            for row in rows:  # a record sent at its start, again at its end with its length
                if row["seconds"] > 0:
                    conn.execute(
                        update(R)
                        .where(
                            R.c.endpoint_id == row["endpoint_id"],
                            R.c.record_id == row["record_id"],
                            R.c.seconds < row["seconds"],
                        )
                        .values(seconds=row["seconds"])
                    )
        if outcomes:
            host.receive_in(conn, outcomes)
    return results


def _checked(records: Any, result: Upload) -> list[dict[str, Any]]:
    """The well-formed records of one upload; the others refused in `result`, with why."""
    if not isinstance(records, list):
        result.refused.append({"id": "", "reason": "records: phải là một danh sách"})
        return []
    if len(records) > MOST_RECORDS:
        result.refused.append(
            {"id": "", "reason": f"records: nhiều hơn {MOST_RECORDS} bản ghi trong một lần gửi"}
        )
        return []
    valid: list[dict[str, Any]] = []
    for raw in records:
        rid = str(raw.get("id", ""))[:64] if isinstance(raw, dict) else ""
        try:
            if not isinstance(raw, dict) or not rid:
                raise ValueError("id: thiếu mã bản ghi")
            delivery = raw.get("delivery_id")
            if not isinstance(delivery, int) or isinstance(delivery, bool) or delivery <= 0:
                raise ValueError(f"delivery_id: {delivery!r} không phải mã lượt gửi")
            try:
                started = _time(raw.get("started_at"))
            except ValueError as exc:
                raise ValueError(f"started_at: {raw.get('started_at')!r}: {exc}") from exc
            seconds = raw.get("seconds")
            if not isinstance(seconds, int | float) or not 0 <= seconds <= 86400:
                raise ValueError(f"seconds: {seconds!r} không phải số giây từ 0 đến 86400")
        except ValueError as exc:
            result.refused.append({"id": rid, "reason": str(exc)})
            continue
        valid.append({"id": rid, "delivery": delivery, "started": started, "seconds": seconds})
    return valid


Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Upload]"]  # a request waiting


class DisplayWriter:
    """Writes screens' uploads a batch at a time: requests that arrive together (a slot
    shown on a thousand screens at once) share one transaction, and the requests waiting
    on one event loop are answered together, with one wake-up of that loop per batch."""

    def __init__(self, host: Any, most: int = 2000) -> None:
        self.host, self.most = host, most
        self.queue: queue.SimpleQueue[tuple[tuple[str, str | None], Any, datetime, Waiter]] = (
            queue.SimpleQueue()
        )
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    async def upload(
        self, name: str, token: str | None, records: Any, received_at: datetime
    ) -> Upload:
        """Board `name`'s upload, its token checked with the others of its batch; raises
        InputError for no such board or a token that is not its own."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Upload] = loop.create_future()
        self.queue.put(((name, token), records, received_at, (loop, done)))
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="boards-displays", daemon=True
                )
                self.thread.start()
        return await done

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            count = len(batch[0][1]) if isinstance(batch[0][1], list) else 1
            while count < self.most:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(more)
                count += len(more[1]) if isinstance(more[1], list) else 1
            answers: list[tuple[Waiter, Upload | Exception]] = []
            try:
                answers = self._write(batch)
            except Exception as exc:
                answers = [(waiter, exc) for *_, waiter in batch]
            call_per_loop(((loop, (done, answer)) for (loop, done), answer in answers), settle)

    def _write(
        self, batch: list[tuple[tuple[str, str | None], Any, datetime, Waiter]]
    ) -> list[tuple[Waiter, Upload | Exception]]:
        from channels.boards.pairing import check_tokens

        boards = check_tokens(self.host.engine, [who for who, *_ in batch])
        answers: list[tuple[Waiter, Upload | Exception]] = []
        kept = []
        for board, (_, records, at, waiter) in zip(boards, batch, strict=True):
            if isinstance(board, Exception):
                answers.append((waiter, board))
            else:
                kept.append((board, records, at, waiter))
        results = record_many(self.host, [(b, r, at) for b, r, at, _ in kept])
        answers += [(waiter, result) for (*_, waiter), result in zip(kept, results, strict=True)]
        return answers


def _outcome(board: Any, v: dict[str, Any], received_at: datetime, started: datetime) -> Outcome:
    ended = started + timedelta(seconds=float(v["seconds"]))
    late = received_at - ended > timedelta(minutes=1)
    detail = f"hiện {float(v['seconds']):.0f} giây"
    if late:
        detail += "; ghi nhận của bảng, gửi lên khi có kết nối lại"
    return Outcome(
        v["delivery"],
        "displayed",
        "displayed",
        started,
        f"board:{board.address}",
        detail=detail,
        endpoint_id=board.id,
        inbound=True,
    )
