"""CAP documents coso fetches itself: from a watched folder, and from an Atom feed and an
RSS 2.0 feed served by a real local HTTP server — read by the poller alone and by the
running service."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
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


def rss_server(documents: dict[str, bytes], enclosed: set[str], hits: Counter[str]) -> FastAPI:
    """An agency's RSS 2.0 feed of CAP alerts, answering If-Modified-Since: each item's link
    is its CAP document, or — for the names in `enclosed` — the agency's web page about it,
    the CAP document then its enclosure."""
    app = FastAPI()

    @app.get("/rss.xml")
    def feed(request: Request) -> Response:
        hits["feed"] += 1
        changed = format_datetime(NOW + timedelta(minutes=len(documents)), usegmt=True)
        if request.headers.get("if-modified-since") == changed:
            hits["not-modified"] += 1
            return Response(status_code=304, headers={"Last-Modified": changed})
        base = str(request.base_url).rstrip("/")
        items = []
        for name in documents:
            cap = f"{base}/cap/{name}.xml"
            link, enclosure = cap, ""
            if name in enclosed:
                link = f"{base}/tin/{name}.html"
                size = len(documents[name])
                enclosure = f'<enclosure url="{cap}" length="{size}" type="application/cap+xml"/>'
            items.append(
                f"<item><title>Cảnh báo {name}</title><link>{link}</link>{enclosure}"
                f'<guid isPermaLink="false">urn:kttv:{name}</guid>'
                f"<pubDate>{format_datetime(NOW, usegmt=True)}</pubDate></item>"
            )
        body = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Cảnh báo thiên tai</title><link>{base}/</link>
<description>Tin cảnh báo CAP</description><language>vi</language>
{"".join(items)}</channel></rss>"""
        return Response(body, media_type="application/rss+xml", headers={"Last-Modified": changed})

    @app.get("/cap/{name}.xml")
    def document(name: str) -> Response:
        hits[name] += 1
        return Response(documents[name], media_type="application/cap+xml")

    @app.get("/tin/{name}.html")
    def page(name: str) -> Response:
        hits["page"] += 1
        return Response("<html><body>Tin cảnh báo</body></html>", media_type="text/html")

    return app


def test_an_rss_feed_of_cap_items_is_read_as_agencies_publish_it(
    engine: Engine, settings: Settings
) -> None:
    """Each item's link is its CAP document (or its enclosure is, when the link is a web
    page); the feed is asked again with If-Modified-Since; each document fetched once."""
    chosen = cap_settings(settings)
    desk = RecordingDesk()
    documents = {"dong-1": thunderstorm(SENT)}
    enclosed: set[str] = set()
    hits: Counter[str] = Counter()
    with (
        ServerThread(rss_server(documents, enclosed, hits)) as server,
        httpx.Client(timeout=30) as client,
    ):
        poller = FeedPoller(f"{server.url}/rss.xml", client)
        [first] = poller.poll(engine, chosen, desk, NOW)
        assert (first.outcome, first.identifier) == ("declared", "KSTO1055887203")
        assert poller.poll(engine, chosen, desk, NOW) == []
        assert hits["not-modified"] == 1
        documents["dong-2"] = thunderstorm(SENT, identifier="KSTO1055887299", status="Test")
        enclosed.add("dong-2")
        [second] = poller.poll(engine, chosen, desk, NOW)
        assert second.identifier == "KSTO1055887299"
        assert poller.poll(engine, chosen, desk, NOW) == []
        base = server.url
    assert hits["dong-1"] == 1 and hits["dong-2"] == 1 and hits["page"] == 0
    assert [(c.kind, c.drill) for c in desk.calls] == [(DECLARE, False), (DECLARE, True)]
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        origins = conn.execute(select(table.c.via, table.c.origin).order_by(table.c.id)).all()
    assert [tuple(o) for o in origins] == [
        ("feed", f"{base}/cap/dong-1.xml"),
        ("feed", f"{base}/cap/dong-2.xml"),
    ]


def test_the_running_service_takes_an_alert_from_a_feed_to_the_bulletin(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """`coso serve` with an agency's feed in `cap.feeds`: an alert that appears in the feed
    becomes an emergency, pinned on the bulletin of the commune its geocode names."""
    from coso.clock import SystemClock
    from dispatcher.service import Dispatcher

    chosen = cap_settings(settings)
    chosen.cap.poll_every = "1s"
    chosen.media.dir = str(tmp_path / "media")
    add_endpoints(
        engine,
        [{"channel": "web", "address": f"bulletin:{THAT_KHE}", "unit_code": THAT_KHE}],
        NOW,
    )
    documents: dict[str, bytes] = {}
    hits: Counter[str] = Counter()
    with ServerThread(rss_server(documents, set(), hits)) as server:
        chosen.cap.feeds = [f"{server.url}/rss.xml"]
        dispatcher = Dispatcher(engine, chosen, SystemClock())
        dispatcher.start()
        try:
            deadline = time.monotonic() + 60
            while hits["feed"] < 1:  # polled while it is still empty
                assert time.monotonic() < deadline, "the feed was not polled in 60 s"
                time.sleep(0.2)
            documents["dong"] = thunderstorm(datetime.now(HANOI), headline="DÔNG MẠNH Ở THẤT KHÊ")
            while not bulletin(engine, now=datetime.now(UTC)):
                assert time.monotonic() < deadline + 60, "the alert was not published in 60 s"
                time.sleep(0.2)
            assert "cap" in {p.name for p in dispatcher.health() if p.ok}
        finally:
            dispatcher.stop()
    assert hits["dong"] == 1
    [(identifier, via, outcome)] = outcomes(engine)
    assert (identifier, via, outcome) == ("KSTO1055887203", "feed", "declared")
    [post] = bulletin(engine, now=datetime.now(UTC))
    assert post["pinned"] and post["unit_code"] == THAT_KHE
    assert "DÔNG MẠNH Ở THẤT KHÊ" in post["title"] + post["body_html"]
