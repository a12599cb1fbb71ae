"""One item to N web boards (simulated screens in a separate process, each on its own
server-sent events stream): time from the slot to N `displayed` entries in the activity
log; next to a bare asyncio server in the same run that pushes the same payload to the same
clients and counts their N display reports. Rounds alternate: coso's slot, then a bare
server's run in the gap before the next slot; the medians of the rounds count.

    python -m bench.boards --boards 1000 [--rounds 3] [--keep DIR] [--timeline]
        [--cue-ahead 0s]

coso runs as `coso serve` in its own process, on SQLite; this one only watches the
database. The simulated screens (`--screens`, the same code for both servers) connect,
read each programme, and put each new item on at its start (at once when that has come;
coso's items come ahead of their slot, `channels.boards.cue_ahead`) and report it then, as
the board page does, each report on a connection of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISPLAYED = "SELECT count(*) FROM delivery WHERE channel = 'boards' AND state = 'displayed'"
LOGGED = "SELECT count(*) FROM activity_entry WHERE channel = 'boards' AND event = 'displayed'"
ROUND_GAP = 30  # seconds between coso's slots: a bare server's round runs in each gap
TEXT = (
    "Ủy ban nhân dân xã tiếp công dân vào sáng thứ năm hằng tuần, từ 7 giờ 30 đến 11 giờ, "
    "tại phòng một cửa. Đề nghị bà con mang theo căn cước."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the simulated screens (their own process) ------------------------------------------


async def _http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


TRUSTED_CLOCK = timedelta(seconds=1)


async def _screen(port: int, name: str, token: str, ready: asyncio.Queue[str]) -> None:
    """One screen as the board page behaves: it keeps the stream open, puts each new item on
    at its start by the server's clock (at once when that has come; items can come ahead of
    their slot), and reports it the moment it is on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /boards/{name}/events?token={token} HTTP/1.1\r\nHost: bench\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # the answer's headers
    seen: set[int] = set()
    first = True
    starts: list[asyncio.Task[None]] = []
    while True:
        line = await reader.readline()
        if not line:
            return
        if not line.startswith(b"data:"):
            continue
        programme = json.loads(line[5:])
        made = programme.get("generated_at")
        skew = datetime.fromisoformat(made) - datetime.now(UTC) if made else timedelta(0)
        if abs(skew) < TRUSTED_CLOCK:  # as the board page: its own clock is right
            skew = timedelta(0)
        if first:
            first = False
            await ready.put(name)
        new = [i for i in programme["items"] if i["id"] not in seen]
        if not new:
            continue
        seen |= {i["id"] for i in new}
        by_start: dict[str, list[int]] = {}
        for item in new:
            by_start.setdefault(item["starts_at"], []).append(item["id"])
        for at, ids in by_start.items():
            due = datetime.fromisoformat(at) - skew
            starts.append(asyncio.create_task(_show_at(port, name, token, ids, due)))


async def _show_at(port: int, name: str, token: str, ids: list[int], due: datetime) -> None:
    """Items on screen at `due` (this machine's clock), reported then."""
    wait = (due - datetime.now(UTC)).total_seconds()
    if wait > 0:
        await asyncio.sleep(wait)
    now = datetime.now(UTC).isoformat()
    body = json.dumps(
        {
            "records": [
                {"id": f"{name}-{i}", "delivery_id": i, "started_at": now, "seconds": 0}
                for i in ids
            ]
        }
    ).encode()
    head = (
        f"POST /boards/{name}/displayed HTTP/1.1\r\nHost: bench\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = await _http(port, head + body)
    if b" 200 " not in answer.split(b"\r\n", 1)[0]:
        print(f"report refused: {answer[:200]!r}", file=sys.stderr, flush=True)


async def _screens(port: int, tokens: dict[str, str]) -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    tasks = []
    for name, token in tokens.items():
        tasks.append(asyncio.create_task(_screen(port, name, token, ready)))
        await asyncio.sleep(0.002)  # a screen a time, as a town's screens start
    for _ in tokens:
        await ready.get()
    print(f"connected {len(tokens)}", flush=True)
    await asyncio.gather(*tasks)


def start_screens(port: int, tokens: dict[str, str], work: Path, tag: str) -> subprocess.Popen[str]:
    file = work / f"tokens-{tag}.json"
    file.write_text(json.dumps(tokens))
    return subprocess.Popen(
        [sys.executable, "-m", "bench.boards", "--screens", str(file), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=(work / f"screens-{tag}.log").open("w"),
        text=True,
    )  # fmt: skip


def wait_connected(screens: subprocess.Popen[str], until: float) -> None:
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(screens.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(max(0.0, until - time.time()))
    if not got or not got[0].startswith("connected"):
        raise SystemExit(f"the screens did not all connect in time ({got})")


# --- the bare server ---------------------------------------------------------------------


class BareServer:
    """Holds every screen's stream, pushes one programme to all, counts the reports."""

    def __init__(self, boards: int) -> None:
        self.boards = boards
        self.streams: list[asyncio.StreamWriter] = []
        self.reported: set[str] = set()
        self.all_reported = asyncio.Event()
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if request.startswith(b"GET"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            writer.write(_chunk('event: programme\ndata: {"items": []}\n\n'))
            self.streams.append(writer)
            return
        body = json.loads(await reader.readexactly(length))
        for record in body["records"]:
            self.reported.add(record["id"])
        answer = json.dumps({"accepted": [r["id"] for r in body["records"]], "refused": []})
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n{answer}".encode()
        )
        await writer.drain()
        writer.close()
        if len(self.reported) >= self.boards:
            self.all_reported.set()

    async def push(self, payloads: list[str]) -> float:
        started = time.perf_counter()
        for writer, payload in zip(self.streams, payloads, strict=False):
            writer.write(_chunk(payload))
        await asyncio.gather(*(w.drain() for w in self.streams))
        await self.all_reported.wait()
        return time.perf_counter() - started


def _chunk(text: str) -> bytes:
    data = text.encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def bench_bare(boards: int, work: Path) -> float:
    server = BareServer(boards)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def serve() -> None:
        await asyncio.start_server(server.handle, "127.0.0.1", server.port, backlog=4096)
        started.set()

    loop.run_until_complete(serve())
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    tokens = {f"b-{n:05d}": "t" for n in range(1, boards + 1)}
    screens = start_screens(server.port, tokens, work, "bare")
    try:
        wait_connected(screens, time.time() + 60 + boards / 20)
        at = datetime.now(UTC)
        payloads = []
        for n, name in enumerate(tokens, start=1):
            ends = (at + timedelta(hours=1)).isoformat()
            item = {"id": n, "title": "Lịch tiếp công dân", "text": TEXT, "image": None,
                    "seconds": 15, "scroll": False, "priority": "normal",
                    "starts_at": at.isoformat(), "ends_at": ends}  # fmt: skip
            data = json.dumps(
                {"board": name, "generated_at": at.isoformat(), "items": [item]},
                ensure_ascii=False,
            )
            payloads.append(f"event: programme\ndata: {data}\n\n")
        return asyncio.run_coroutine_threadsafe(server.push(payloads), loop).result(300)
    finally:
        screens.terminate()
        screens.wait(15)
        loop.call_soon_threadsafe(loop.stop)


# --- coso -----------------------------------------------------------------------------------


def plan(boards: int, slots: list[datetime]) -> str:
    """N boards and a schedule per slot, each showing the same item on all of them."""
    zone = "Asia/Ho_Chi_Minh"
    from zoneinfo import ZoneInfo

    lines = [
        '[plan]\nnumber = "1000/KH-BENCH"\ntitle = "Bảng tin điện tử"\n'
        "period_start = 2021-01-01\nperiod_end = 2099-12-31\n",
        f'[[content]]\nkey = "tb"\ntitle = "Lịch tiếp công dân"\nbody = "{TEXT}"\n'
        'state = "approved"\n',
    ]
    addresses = [f"screen:b-{n:05d}" for n in range(1, boards + 1)]
    for address in addresses:
        lines.append(f'[[endpoints]]\nchannel = "boards"\naddress = "{address}"\n')
    for n, at in enumerate(slots, start=1):
        local = at.astimezone(ZoneInfo(zone))
        lines.append(
            f'[[schedules]]\nname = "Bảng tin {n}"\ncontent = "tb"\nchannel = "boards"\n'
            f"targets = {{ endpoints = {json.dumps(addresses)} }}\n"
            f"start = {local:%Y-%m-%dT%H:%M:%S}\n"
            'validity = "1h"\nmisfire_grace = "10m"\n'
        )
    return "\n".join(lines)


def bench_coso(
    boards: int,
    work: Path,
    rounds: int,
    bare: Callable[[int], float],
    timeline: bool = False,
    cue_ahead: str = "",
) -> tuple[list[float], list[float]]:
    """coso's time from each of `rounds` slots to its `boards` displayed entries, and the
    bare server's time run between them (`bare(n)`), so both see the machine as it is then."""
    from coso.config import load_settings
    from coso.setup import open_database
    from schedules.importer import import_plan_file

    port = free_port()
    config = work / "coso.toml"
    config.write_text(
        f"""[database]
url = "sqlite:///{work}/coso.db"
[media]
dir = "{work}/media"
[server]
public_url = "http://127.0.0.1:{port}"
[dispatcher]
claim_batch = 1000
fanout_batch = 5000
idle_poll = 0.05
[channels.boards]
rate_per_second = 1000000
poll_seconds = 0.1
{f'cue_ahead = "{cue_ahead}"' if cue_ahead else ""}
[channels.loudspeaker.broker]
url = "mqtt://127.0.0.1:1"
"""
    )
    settings = load_settings(config)
    engine = open_database(settings)
    first = (datetime.now(UTC) + timedelta(seconds=30 + boards / 25)).replace(microsecond=0)
    slots = [first + timedelta(seconds=ROUND_GAP * n) for n in range(rounds)]
    text = plan(boards, slots)
    (work / "plan.toml").write_text(text, encoding="utf-8")
    import_plan_file(engine, settings, work / "plan.toml", datetime.now(UTC))
    import secrets

    from channels.boards import devices
    from channels.boards.pairing import digest
    from coso.db import write

    tokens = {f"b-{n:05d}": secrets.token_urlsafe(24) for n in range(1, boards + 1)}
    with write(engine) as conn:
        ids = dict(
            conn.exec_driver_sql("SELECT address, id FROM endpoint WHERE channel = 'boards'").all()
        )
        for name, token in tokens.items():
            devices.set_status(conn, [ids[f"screen:{name}"]], token_hash=digest(token))
        schedules = [
            row[0] for row in conn.exec_driver_sql("SELECT id FROM schedule ORDER BY start_local")
        ]
    engine.dispose()
    env = {**os.environ, "COSO_CONFIG": str(config)}
    coso = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "coso.log").open("wb"),
    )  # fmt: skip
    db = sqlite3.connect(f"file:{work}/coso.db?mode=ro", uri=True, timeout=30)
    screens = None
    times: list[float] = []
    bares: list[float] = []
    try:
        deadline = time.time() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if coso.poll() is not None or time.time() > deadline:
                raise SystemExit(f"coso did not start:\n{(work / 'coso.log').read_text()[-2000:]}")
            time.sleep(0.2)
        screens = start_screens(port, tokens, work, "coso")
        wait_connected(screens, first.timestamp() - 1)
        for n, (slot, schedule) in enumerate(zip(slots, schedules, strict=True)):
            if time.time() >= slot.timestamp():
                raise SystemExit(f"round {n + 1}: the bare server outlasted the gap between slots")
            while time.time() < slot.timestamp():
                time.sleep(0.005)
            displayed = DISPLAYED + f" AND schedule_id = {schedule}"
            while db.execute(displayed).fetchone()[0] < boards:
                if coso.poll() is not None:
                    raise SystemExit(f"coso ended:\n{(work / 'coso.log').read_text()[-2000:]}")
                if time.time() > slot.timestamp() + 300:
                    raise SystemExit(f"only {db.execute(displayed).fetchone()[0]} displayed")
                time.sleep(0.01)
            times.append(time.time() - slot.timestamp())
            if timeline:
                print_timeline(db, slot, schedule)
            bares.append(bare(n))
        logged = db.execute(LOGGED).fetchone()[0]
        if logged != boards * rounds:
            raise SystemExit(f"{boards * rounds} deliveries displayed but {logged} log entries")
        return times, bares
    finally:
        db.close()
        for proc in (screens, coso):
            if proc is not None:
                proc.terminate()
                proc.wait(15)


def print_timeline(db: sqlite3.Connection, slot: datetime, schedule: int) -> None:
    base = slot.timestamp()
    mine = f"delivery_id IN (SELECT id FROM delivery WHERE schedule_id = {schedule})"

    def after(sql: str) -> str:
        at = db.execute(sql).fetchone()[0]
        stamp = datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp()
        return f"{stamp - base:.2f} s"

    sent = f"SELECT max(at) FROM activity_entry WHERE event = 'sent' AND {mine}"
    shown = f"FROM board_display WHERE {mine}"
    print(
        f"  sent all {after(sent)}; on screen {after(f'SELECT min(started_at) {shown}')}"
        f" to {after(f'SELECT max(started_at) {shown}')}; last report in "
        f"{after(f'SELECT max(received_at) {shown}')} after the slot"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="slots measured (median counts)")
    parser.add_argument("--keep", default="", help="keep coso's database and logs in this folder")
    parser.add_argument("--timeline", action="store_true", help="print when each stage ended")
    parser.add_argument(
        "--cue-ahead",
        default="",
        help='channels.boards.cue_ahead ("0s": items at the slot); coso\'s default',
    )
    parser.add_argument("--screens", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.screens:
        asyncio.run(_screens(args.port, json.loads(Path(args.screens).read_text())))
        return
    with (
        contextlib.nullcontext(args.keep)
        if args.keep
        else tempfile.TemporaryDirectory(prefix="coso-bench-")
    ) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)

        def bare_round(n: int) -> float:
            (work / f"bare-{n}").mkdir(exist_ok=True)
            return bench_bare(args.boards, work / f"bare-{n}")

        cosos, bares = bench_coso(
            args.boards, work, args.rounds, bare_round, args.timeline, args.cue_ahead
        )
    n = f"{args.boards:,}"
    coso, bare = statistics.median(cosos), statistics.median(bares)
    print(
        f"bare asyncio server: push to {n} streams, {n} reports in: {bare:.2f} s "
        f"(median of {', '.join(f'{b:.2f}' for b in bares)})"
    )
    print(
        f"coso: slot to {n} displayed entries in the log: {coso:.2f} s "
        f"(median of {', '.join(f'{c:.2f}' for c in cosos)})"
    )
    print(f"coso / bare: {coso / bare:.2f}x (goal: within 2x)")


if __name__ == "__main__":
    main()
