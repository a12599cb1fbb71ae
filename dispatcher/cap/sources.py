"""CAP documents that coso fetches itself: a watched folder (each *.xml moved to done/ or
refused/ with a note of why) and Atom/RSS feeds (conditional GET; each entry's document
fetched once, remembered in the log of received alerts)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import feedparser
import httpx
from sqlalchemy import Engine, select

from coso.config import Settings
from dispatcher.cap.desk import EmergencyDesk
from dispatcher.cap.intake import FEED, FOLDER, Received, receive
from dispatcher.cap.models import REFUSED, ReceivedAlert

log = logging.getLogger(__name__)

DONE, REFUSED_FOLDER = "done", "refused"
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")
FEED_MOST = 4 * 1024 * 1024


def scan_folder(
    engine: Engine,
    settings: Settings,
    desk: EmergencyDesk,
    folder: Path,
    now: datetime,
    settle: float = 2.0,
) -> list[Received]:
    """Take each *.xml file in `folder` (one left untouched for `settle` seconds: a file
    still being written waits for the next scan), in name order."""
    results: list[Received] = []
    for path in sorted(folder.glob("*.xml")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if time.time() - path.stat().st_mtime < settle:
            continue
        with path.open("rb") as handle:
            data = handle.read(settings.cap.max_bytes + 1)
        received = receive(engine, settings, desk, data, FOLDER, path.name, now)
        target = folder / (REFUSED_FOLDER if received.outcome == REFUSED else DONE)
        target.mkdir(exist_ok=True)
        moved = _free_name(target, path.name)
        shutil.move(str(path), moved)
        if received.outcome == REFUSED:
            moved.with_name(moved.name + ".ly-do.txt").write_text(
                received.reason + "\n", encoding="utf-8"
            )
        results.append(received)
    return results


def _free_name(folder: Path, name: str) -> Path:
    candidate = folder / name
    n = 1
    while candidate.exists():
        candidate = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    return candidate


@dataclass
class FeedPoller:
    """One feed: its validators from the last answer (ETag, Last-Modified)."""

    url: str
    client: httpx.Client
    etag: str | None = None
    modified: str | None = None
    entries_seen: set[str] = field(default_factory=set)

    def poll(
        self, engine: Engine, settings: Settings, desk: EmergencyDesk, now: datetime
    ) -> list[Received]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        try:
            answer = self.client.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("CAP feed %s: %s", self.url, exc)
            return []
        if answer.status_code == 304:
            return []
        if answer.status_code != 200 or len(answer.content) > FEED_MOST:
            log.warning("CAP feed %s answered %s", self.url, answer.status_code)
            return []
        self.etag = answer.headers.get("etag")
        self.modified = answer.headers.get("last-modified")
        parsed = feedparser.parse(answer.content)
        results = []
        for link in entry_links(parsed):
            if link in self.entries_seen or fetched_before(engine, link):
                self.entries_seen.add(link)
                continue
            try:
                document = self.client.get(link)
            except httpx.HTTPError as exc:
                log.warning("CAP feed %s: entry %s: %s", self.url, link, exc)
                continue  # tried again at the next poll
            if document.status_code != 200:
                log.warning(
                    "CAP feed %s: entry %s answered %s", self.url, link, document.status_code
                )
                continue
            results.append(receive(engine, settings, desk, document.content, FEED, link, now))
            self.entries_seen.add(link)
        return results


def entry_links(parsed: feedparser.FeedParserDict) -> list[str]:
    """Each entry's CAP document: a link typed as CAP/XML, else the entry's link."""
    links = []
    for entry in parsed.entries:
        chosen = None
        for link in entry.get("links", []):
            if link.get("type", "").split(";")[0].strip() in CAP_TYPES and link.get("href"):
                chosen = link["href"]
                break
        chosen = chosen or entry.get("link")
        if chosen:
            links.append(str(chosen))
    return links


def fetched_before(engine: Engine, link: str) -> bool:
    table = ReceivedAlert.__table__
    with engine.connect() as conn:
        return (
            conn.execute(
                select(table.c.id).where(table.c.via == FEED, table.c.origin == link).limit(1)
            ).first()
            is not None
        )
