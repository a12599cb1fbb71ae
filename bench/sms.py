"""SMS throughput against the local Twilio-compatible gateway (tests/twilio_server.py, run as
its own process), in one run:

1. coso with no rate limit: from the blast's fan-out to every delivery `sent`, next to raw
   HTTP clients posting the same requests (same form, same concurrency) to the same server:
   `requests` sessions (the goal's baseline) and one urllib3 pool (the floor: what coso's
   twilio client sends through, with nothing else);
2. the rate coso achieves under a limit of 50 segments per second;
3. how many signed status callbacks per second coso's web app takes (and commits).

    python -m bench.sms --recipients 100000 [--concurrency 16] [--limited-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlparse

import requests
import urllib3
from sqlalchemy import func, select

from channels.registry import settings_of
from channels.sms.channel import SmsChannel
from channels.sms.recipients import Recipient, save_recipients
from coso.clock import SystemClock
from coso.config import Settings, load_settings
from coso.setup import open_database
from dispatcher.models import Delivery
from dispatcher.service import Dispatcher
from dispatcher.web.app import create_app
from schedules.adhoc import add_blast
from tests.conftest import ServerThread
from tests.sms import e164, import_sms_plan
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, PREFIX, sign

ROOT = Path(__file__).resolve().parent.parent
BODY = "Kinh gui ba con: tu 01/6 nop ho so truc tuyen tai dichvucong.gov.vn."


def start_gateway(callbacks: bool = False) -> tuple[subprocess.Popen[str], str]:
    """The local gateway in its own process; its URL. With `callbacks` it posts each
    message's `sent` and `delivered` status callbacks, as Twilio does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.twilio_server", *([] if callbacks else ["--no-callbacks"])],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def timed_posts(post: Callable[[int], None], count: int, concurrency: int) -> float:
    """Seconds for `post(0)` … `post(count - 1)` on `concurrency` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as workers:
        list(workers.map(post, range(count)))
    return time.perf_counter() - start


def bench_raw(gateway: str, count: int, concurrency: int) -> float:
    """The same create requests through plain `requests` sessions, one per thread."""
    url = gateway + PREFIX + ".json"
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    local = threading.local()

    def post(n: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        form = {"To": e164(n), "From": "UBND VQuan", "Body": BODY, "ValidityPeriod": "21600"}
        response = local.session.post(url, data=form, auth=auth, timeout=10)
        assert response.status_code == 201, response.text

    return timed_posts(post, count, concurrency)


def bench_raw_urllib3(gateway: str, count: int, concurrency: int) -> float:
    """The same requests through one urllib3 pool, as coso's client sends them: the floor."""
    pool = urllib3.PoolManager(maxsize=concurrency, retries=False)
    url = gateway + PREFIX + ".json"
    headers = urllib3.make_headers(basic_auth=f"{ACCOUNT_SID}:{AUTH_TOKEN}")
    headers["Content-Type"] = "application/x-www-form-urlencoded"

    def post(n: int) -> None:
        form = {"To": e164(n), "From": "UBND VQuan", "Body": BODY, "ValidityPeriod": "21600"}
        response = pool.request("POST", url, body=urlencode(form), headers=headers)
        assert response.status == 201, response.data

    return timed_posts(post, count, concurrency)


def coso_settings(work: Path, gateway: str, concurrency: int, rate: int) -> Settings:
    return load_settings(
        None,
        database={"url": f"sqlite:///{work}/coso-{rate}.db"},
        dispatcher={"claim_batch": 1000, "fanout_batch": 5000, "idle_poll": 0.05},
        channels={
            "sms": {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "base_url": gateway,
                "sender": "UBND VQuan",
                "rate_per_second": rate,
                "concurrency": concurrency,
                "status_callbacks": False,
                "quiet_start": "00:00",
                "quiet_end": "00:00",
                "daily_cap": 0,
            }
        },
    )


def bench_coso(
    work: Path, gateway: str, count: int, concurrency: int, rate: int, offset: int
) -> tuple[float, int]:
    """From fan-out to every delivery `sent`; returns (seconds, deliveries)."""
    settings = coso_settings(work, gateway, concurrency, rate)
    engine = open_database(settings)
    clock = SystemClock()
    people = [Recipient(e164(offset + n), f"CD {n}", None, ("bench",), n) for n in range(count)]
    save_recipients(engine, people, clock.now())
    plan = import_sms_plan(engine, settings, work)
    blast = add_blast(
        engine, plan, "nhac-lich", "sms", {"groups": ["bench"]}, clock.now(),
        validity=timedelta(hours=6), options={"khong_dau": True},
    )  # fmt: skip
    channel = SmsChannel(settings_of(settings, "sms"), "http://coso.bench", clock.now)
    dispatcher = Dispatcher(engine, settings, clock, channels={"sms": channel})
    D = Delivery.__table__
    ended = (
        select(D.c.state, func.count())
        .where(D.c.schedule_id == blast.id, D.c.state.in_(("sent", "unknown", "failed")))
        .group_by(D.c.state)
    )
    dispatcher.start()
    start = time.perf_counter()
    try:
        dispatcher.fire()
        while True:
            with engine.connect() as conn:
                states = {state: n for state, n in conn.execute(ended)}
            if sum(states.values()) >= count:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    finally:
        dispatcher.stop()
    if states.get("sent", 0) < count:  # a lost answer is never sent again: said, not hidden
        print(f"not sent: {count - states.get('sent', 0)} ({states})")
    return elapsed, count


async def _post_callbacks(url: str, forms: list[dict[str, str]], connections: int) -> float:
    """A lean HTTP/1.1 client (keep-alive, one request at a time per connection)."""
    parsed = urlparse(url)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for form in forms:
        body = urlencode(form).encode()
        head = (
            f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {sign(url, form)}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        queue.put_nowait(head + body)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        while not queue.empty():
            writer.write(queue.get_nowait())
            await writer.drain()
            status = await reader.readline()
            assert b" 204 " in status, status
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start


def bench_callbacks(work: Path, gateway: str, count: int, connections: int) -> float:
    """Signed `delivered` callbacks for `count` sent messages, posted by a separate process;
    returns callbacks per second, counted once every one is committed."""
    settings = coso_settings(work, gateway, 16, 1_000_000)
    engine = open_database(settings)
    D = Delivery.__table__
    with engine.connect() as conn:
        sids = list(conn.scalars(select(D.c.provider_id).where(D.c.state == "sent").limit(count)))
    with ServerThread(create_app(engine, settings)) as web:
        settings.server.public_url = web.url
        forms_file = work / "callbacks.txt"
        forms_file.write_text("\n".join(sids))
        proc = subprocess.run(
            [sys.executable, "-m", "bench.sms", "--post-callbacks", f"{web.url}/sms/status",
             "--sids", str(forms_file), "--connections", str(connections)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        seconds = float(proc.stdout.strip().splitlines()[-1])
    with engine.connect() as conn:
        delivered = conn.scalar(select(func.count()).select_from(D).where(D.c.state == "delivered"))
    assert delivered == len(sids), (delivered, len(sids))
    return len(sids) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--limited-seconds", type=int, default=60)
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=256, help="callback connections")
    parser.add_argument("--post-callbacks", default="", help=argparse.SUPPRESS)
    parser.add_argument("--sids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.post_callbacks:
        sids = Path(args.sids).read_text().split()
        forms = [
            {"MessageSid": s, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID} for s in sids
        ]
        print(asyncio.run(_post_callbacks(args.post_callbacks, forms, args.connections)))
        return
    gateway_proc, gateway = start_gateway()
    try:
        with tempfile.TemporaryDirectory(prefix="coso-bench-sms-") as tmp:
            work = Path(tmp)
            n = args.recipients
            raw = bench_raw(gateway, n, args.concurrency)
            floor = bench_raw_urllib3(gateway, n, args.concurrency)
            coso, _ = bench_coso(work, gateway, n, args.concurrency, 1_000_000, offset=0)
            limited_n = 50 * args.limited_seconds
            limited, _ = bench_coso(work, gateway, limited_n, args.concurrency, 50, offset=n)
            per_second = bench_callbacks(work, gateway, min(args.callbacks, n), args.connections)
    finally:
        gateway_proc.terminate()
        gateway_proc.wait(10)
    cpu = os.cpu_count()
    print(f"gateway: {gateway} (tests/twilio_server.py, own process); {cpu} CPU(s)")
    print(
        f"raw requests, {args.concurrency} threads: "
        f"{n:,} messages in {raw:.2f} s = {n / raw:,.0f}/s"
    )
    print(
        f"raw urllib3 pool, {args.concurrency} threads: "
        f"{n:,} messages in {floor:.2f} s = {n / floor:,.0f}/s"
    )
    print(f"coso, no rate limit: {n:,} messages in {coso:.2f} s = {n / coso:,.0f}/s")
    print(f"coso / raw requests: {coso / raw:.2f}x  (goal: within 1.2x)")
    print(f"coso / raw urllib3: {coso / floor:.2f}x")
    achieved = limited_n / limited
    print(
        f"coso at 50 segments/s: {limited_n:,} one-segment messages in {limited:.2f} s = "
        f"{achieved:.2f}/s ({(achieved / 50 - 1) * 100:+.1f}%)"
    )
    print(
        f"status callbacks from {args.connections} connections: {per_second:,.0f}/s committed"
        "  (goal: at least 2,000/s)"
    )


if __name__ == "__main__":
    main()
