"""A screen board as a test runs it without a browser: it follows its programme stream as
the board page does, shows the first item (an emergency alone while one lasts), and
reports each item it shows, with the time it began, as the page does."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Screen:
    base_url: str
    name: str
    token: str
    # (time.time(), what it shows: the item, or None when the programme is empty)
    shown: list[tuple[float, dict[str, Any] | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Screen:
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def showing(self) -> dict[str, Any] | None:
        return self.shown[-1][1] if self.shown else None

    def _follow(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"{self.base_url}/boards/{self.name}/events"
        with httpx.Client(timeout=httpx.Timeout(10, read=None)) as client:
            while not self._stop.is_set():
                try:
                    with client.stream("GET", url, headers=headers) as answer:
                        kind = ""
                        for line in answer.iter_lines():
                            if self._stop.is_set():
                                return
                            if line.startswith("event: "):
                                kind = line[7:]
                            elif line.startswith("data: ") and kind == "programme":
                                self._programme(client, json.loads(line[6:])["items"])
                except httpx.HTTPError:
                    time.sleep(0.2)

    def _programme(self, client: httpx.Client, items: list[dict[str, Any]]) -> None:
        emergencies = [i for i in items if i["priority"] == "emergency"]
        first = (emergencies or items or [None])[0]
        at = time.time()
        self.shown.append((at, first))
        if first is None:
            return
        record = {
            "id": uuid.uuid4().hex[:12],
            "delivery_id": first["id"],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
            + f".{int(at % 1 * 1e6):06d}+00:00",
            "seconds": 1,
        }
        client.post(
            f"{self.base_url}/boards/{self.name}/displayed",
            json={"records": [record]},
            headers={"Authorization": f"Bearer {self.token}"},
        )
