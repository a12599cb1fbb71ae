"""CAP documents coso fetches itself: from a watched folder and from an Atom feed served
by a real local HTTP server."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import Engine, select

from channels.endpoints import add_endpoints
from channels.web.bulletin import bulletin
from coso.config import Settings
from dispatcher.cap.decisions import DECLARE
from dispatcher.cap.models import ReceivedAlert
from dispatcher.cap.sources import FeedPoller, scan_folder
from tests.cap_examples import THAT_KHE, thunderstorm
from tests.conftest import ServerThread
from tests.test_cap_intake import RecordingDesk, cap_settings

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
SENT = NOW.astimezone(HANOI) - timedelta(minutes=1)


def outcomes(engine: Engine) -> list[tuple[str | None, str, str]]:
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.identifier, table.c.via, table.c.outcome).order_by(table.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_a_folder_of_documents_is_taken_and_sorted_into_done_and_refused(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    chosen = cap_settings(settings)
    desk = RecordingDesk()
    inbox = tmp_path / "cap-in"
    inbox.mkdir()
    (inbox / "a-dong.xml").write_bytes(thunderstorm(SENT))
    (inbox / "b-hong.xml").write_bytes(thunderstorm(SENT, status="Actuall"))
    (inbox / "ghi-chu.txt").write_text("không phải CAP")
    results = scan_folder(engine, chosen, desk, inbox, NOW, settle=0)
    assert [r.outcome for r in results] == ["declared", "refused"]
    assert (inbox / "done" / "a-dong.xml").exists()
    assert (inbox / "refused" / "b-hong.xml").exists()
    reason = (inbox / "refused" / "b-hong.xml.ly-do.txt").read_text(encoding="utf-8")
    assert "alert/status" in reason and "Actuall" in reason
    assert (inbox / "ghi-chu.txt").exists()  # not a CAP file: left alone
    assert [c.units for c in desk.calls] == [("06001", THAT_KHE)]
    assert outcomes(engine) == [
        ("KSTO1055887203", "folder", "declared"),
        ("KSTO1055887203", "folder", "refused"),
    ]
    # Nothing left to take: a second scan does nothing.
    assert scan_folder(engine, chosen, desk, inbox, NOW, settle=0) == []


def test_a_file_from_an_unknown_sender_is_refused(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    chosen = cap_settings(settings)
    chosen.cap.senders = [s for s in chosen.cap.senders if s.name != "kttv"]
    (tmp_path / "x.xml").write_bytes(thunderstorm(SENT))
    [result] = scan_folder(engine, chosen, RecordingDesk(), tmp_path, NOW, settle=0)
    assert result.outcome == "refused" and result.field == "alert/sender"


def feed_server(documents: dict[str, bytes], hits: Counter[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/feed.atom")
    def feed(request: Request) -> Response:
        hits["feed"] += 1
        etag = f'"v{len(documents)}"'
        if request.headers.get("if-none-match") == etag:
            hits["not-modified"] += 1
            return Response(status_code=304, headers={"ETag": etag})
        base = str(request.base_url).rstrip("/")
        entries = "".join(
            f"""<entry><id>urn:{name}</id><title>{name}</title><updated>2026-12-07T02:29:00Z</updated>
<link rel="alternate" type="application/cap+xml" href="{base}/cap/{name}"/></entry>"""
            for name in documents
        )
        body = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:kttv</id><title>Cảnh báo</title>
<updated>2026-12-07T02:29:00Z</updated>{entries}</feed>"""
        return Response(body, media_type="application/atom+xml", headers={"ETag": etag})

    @app.get("/cap/{name}")
    def document(name: str) -> Response:
        hits[name] += 1
        return Response(documents[name], media_type="application/cap+xml")

    return app


def test_a_feed_is_polled_with_conditional_get_and_each_entry_is_fetched_once(
    engine: Engine, settings: Settings
) -> None:
    chosen = cap_settings(settings)
    desk = RecordingDesk()
    documents = {"dong-1": thunderstorm(SENT)}
    hits: Counter[str] = Counter()
    with ServerThread(feed_server(documents, hits)) as server, httpx.Client(timeout=30) as client:
        poller = FeedPoller(f"{server.url}/feed.atom", client)
        [first] = poller.poll(engine, chosen, desk, NOW)
        assert first.outcome == "declared"
        assert poller.poll(engine, chosen, desk, NOW) == []
        assert hits["not-modified"] == 1
        documents["dong-2"] = thunderstorm(SENT, identifier="KSTO1055887299", status="Test")
        [second] = poller.poll(engine, chosen, desk, NOW)
        assert second.identifier == "KSTO1055887299"
        # A poller started anew (after a restart) fetches no entry it took before.
        again = FeedPoller(f"{server.url}/feed.atom", client)
        assert again.poll(engine, chosen, desk, NOW) == []
    assert hits["dong-1"] == 1 and hits["dong-2"] == 1
    assert [(c.kind, c.drill) for c in desk.calls] == [(DECLARE, False), (DECLARE, True)]
    assert [o[1:] for o in outcomes(engine)] == [("feed", "declared"), ("feed", "declared")]


def test_the_running_service_takes_documents_from_its_folder(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from coso.clock import SystemClock
    from dispatcher.service import Dispatcher

    chosen = cap_settings(settings)
    inbox = tmp_path / "cap-in"
    chosen.cap.folder = str(inbox)
    chosen.cap.poll_every = "1s"
    chosen.media.dir = str(tmp_path / "media")
    add_endpoints(
        engine,
        [{"channel": "web", "address": f"bulletin:{THAT_KHE}", "unit_code": THAT_KHE}],
        NOW,
    )
    dispatcher = Dispatcher(engine, chosen, SystemClock())
    dispatcher.start()
    try:
        inbox.mkdir(exist_ok=True)
        sent = datetime.now(HANOI)
        (inbox / "dong.xml").write_bytes(thunderstorm(sent))
        deadline = time.monotonic() + 60
        while not (inbox / "done" / "dong.xml").exists():
            assert time.monotonic() < deadline, "the folder's document was not taken in 60 s"
            time.sleep(0.2)
        assert "cap" in {p.name for p in dispatcher.health() if p.ok}
        # The bulletin's sender publishes it in its own time.
        while not bulletin(engine, now=datetime.now(UTC)):
            assert time.monotonic() < deadline + 60, "the alert was not published in 60 s"
            time.sleep(0.2)
    finally:
        dispatcher.stop()
    [(identifier, via, outcome)] = outcomes(engine)
    assert (identifier, via) == ("KSTO1055887203", "folder")
    assert outcome == "declared"
    assert [p["pinned"] for p in bulletin(engine, now=datetime.now(UTC))] == [1]
