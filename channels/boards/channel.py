"""Sending to boards. Each delivery becomes an item on its board's programme (`board_item`,
from its slot until its validity ends): a screen gets its new programme pushed by the web
app (web.py), a Huidu controller gets its programme replaced (huidu.py). `sent` means the
board has it; `displayed` comes from the board only: a screen's display report, or a
controller's own list of what it plays."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from channels.base import Accepted, Channel, Outbound, PermanentSendError, TransientSendError
from channels.boards import devices
from channels.boards.addresses import Board, parse
from channels.boards.hub import CHANGED
from channels.boards.huidu import PREFIX, ControllerError, HuiduClient, Screen, program
from channels.boards.images import keep_image, page_image, text_pages
from channels.boards.programme import programmes, signature
from channels.boards.settings import BoardSettings
from channels.boards.tables import BoardItem
from channels.boards.template import laid_out
from channels.states import PRIORITIES
from coso.db import insert_ignoring_duplicates, write
from coso.durations import parse_duration
from coso.errors import InputError

log = logging.getLogger(__name__)
I = BoardItem.__table__  # noqa: E741


def images_folder(settings: Any) -> Path:
    return Path(settings.media.dir) / "boards"


class BoardsChannel(Channel):
    name = "boards"
    # An item is kept once per delivery, and a controller's programme is replaced whole
    # (after a look at what it has): sending again shows nothing twice.
    resend_safe = True

    def __init__(self, host: Any, cfg: BoardSettings, huidu: HuiduClient | None = None) -> None:
        self.host, self.cfg = host, cfg
        self.keep_for = parse_duration(cfg.keep_for)
        self.images = images_folder(host.settings)
        self.public_url = str(host.settings.server.public_url).rstrip("/")
        self.huidu = huidu or HuiduClient(cfg.huidu)

    def send(self, message: Outbound) -> Accepted:
        result = self.publish_many([message])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def publish_many(self, messages: Sequence[Outbound]) -> list[Accepted | Exception]:
        """Every message's item kept in one transaction (a slot reaches many screens at
        once); then each controller is given its programme."""
        results: list[Accepted | Exception | None] = [None] * len(messages)
        rows, screens, controllers = [], [], []
        for n, message in enumerate(messages):
            try:
                board = parse(message.address)
            except ValueError as exc:
                results[n] = PermanentSendError(
                    f"address {message.address!r}: {exc}", "bad_address"
                )
                continue
            try:
                rows.append(self._item(message))
            except PermanentSendError as exc:
                results[n] = exc
                continue
            (screens if board.kind == "screen" else controllers).append((n, board, message))
        if rows:
            with write(self.host.engine) as conn:
                conn.execute(insert_ignoring_duplicates(conn, I), rows)
                devices.ensure(conn, [m.endpoint_id for _, _, m in screens])
            CHANGED.set()  # the web app's hub, when in this process, pushes them now
        for n, _, _ in screens:
            results[n] = Accepted(state="sent", event="sent", detail="trên chương trình của bảng")
        for n, board, message in controllers:
            try:
                results[n] = self.show_on_controller(
                    board, message.endpoint_id, message.delivery_id
                )
            except (PermanentSendError, TransientSendError) as exc:
                results[n] = exc
        return [r if r is not None else PermanentSendError("not sent") for r in results]

    def settle(self, pending: Sequence[Any]) -> list[Accepted | Exception]:
        return list(pending)

    def _item(self, message: Outbound) -> dict[str, Any]:
        """The delivery as an item of its board (kept once: a repeat keeps the first)."""
        options = message.extra.get("options") or {}
        text = message.body.strip()
        image = None
        if options.get("image"):
            try:
                image = keep_image(Path(options["image"]), self.images)
            except ValueError as exc:
                raise PermanentSendError(f"ảnh của mục: {exc}", "bad_image") from exc
        if not text and image is None:
            raise PermanentSendError(
                "mục không có chữ và không có ảnh: bảng không có gì để hiện", "empty_item"
            )
        slot = message.extra.get("scheduled_for") or self.host.clock.now()
        try:
            text = laid_out(self.cfg.template, message.title, text, slot, self.cfg.zone)
        except InputError as exc:
            raise PermanentSendError(f"{exc.field}: {exc.reason}", "bad_template") from exc
        row = {
            "delivery_id": message.delivery_id,
            "endpoint_id": message.endpoint_id,
            "schedule_id": message.extra.get("schedule_id", 0),
            "title": message.title,
            "text": text,
            "image": image,
            "seconds": options.get("seconds") or self.cfg.seconds,
            "scroll": bool(options.get("scroll")),
            "priority": PRIORITIES.get(message.priority, 0),
            "position": message.extra.get("order", 0),
            "starts_at": slot,
            "ends_at": message.expires_at or slot + self.keep_for,
        }
        return row

    # --- Huidu controllers ----------------------------------------------------------------

    def show_on_controller(
        self, board: Board, endpoint_id: int, delivery_id: int | None
    ) -> Accepted:
        """Give the controller the board's programme now, unless it has it already."""
        now = self.host.clock.now()
        try:
            screen = self._screen(board, endpoint_id)
            with self.host.engine.connect() as conn:
                items = programmes(conn, [endpoint_id], now)[endpoint_id]
            wanted = [f"{PREFIX}{i['id']}" for i in items]
            has = self.huidu.programs(board)
            if sorted(has) != sorted(wanted):
                self.huidu.replace(board, [self._program(i, screen) for i in items])
        except ControllerError as exc:
            self._failed(endpoint_id, f"bộ điều khiển từ chối: {exc.message}", now)
            raise PermanentSendError(exc.message, "refused") from exc
        except TransientSendError as exc:
            self._failed(endpoint_id, exc.reason, now)
            raise
        with write(self.host.engine) as conn:
            devices.set_status(
                conn,
                [endpoint_id],
                online=True,
                last_seen=now,
                sent_signature=signature(items),
                showing=items[0]["title"] if items else None,
            )
        shown = delivery_id is None or any(i["id"] == delivery_id for i in items)
        return Accepted(
            state="sent",
            event="sent",
            provider_id=f"huidu:{board.name}:{PREFIX}{delivery_id}" if delivery_id else None,
            detail=None if shown else "đang có tin khẩn cấp: hiện sau khi tin khẩn cấp kết thúc",
        )

    def _failed(self, endpoint_id: int, reason: str, at: datetime) -> None:
        with write(self.host.engine) as conn:
            devices.failed(conn, endpoint_id, reason, at)

    def _screen(self, board: Board, endpoint_id: int) -> Screen:
        D = devices.D
        with self.host.engine.connect() as conn:
            known = conn.execute(
                select(D.c.width, D.c.height).where(D.c.endpoint_id == endpoint_id)
            ).first()
        if known and known.width and known.height:
            return Screen(known.width, known.height)
        screen = self.huidu.screen(board)
        with write(self.host.engine) as conn:
            devices.set_status(conn, [endpoint_id], width=screen.width, height=screen.height)
        return screen

    def _program(self, item: dict[str, Any], screen: Screen) -> dict[str, Any]:
        images = None
        if item["image"]:
            images = [self._image_ref(item["image"].rsplit("/", 1)[-1])]
        elif self.cfg.huidu.render == "image":
            pages = text_pages(item["text"] or item["title"], screen.width, screen.height)
            images = [
                self._keep_drawing(page_image(page, screen.width, screen.height)) for page in pages
            ]
        return program(item, screen, images=images, font=self.cfg.huidu.font_name)

    def _keep_drawing(self, data: bytes) -> dict[str, Any]:
        """A page coso drew, kept under its checksum where controllers fetch it."""
        name = f"{hashlib.sha256(data).hexdigest()}.png"
        target = self.images / name
        if not target.exists():
            self.images.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(target)
        return self._image_ref(name)

    def _image_ref(self, name: str) -> dict[str, Any]:
        data = (self.images / name).read_bytes()
        return {
            "url": f"{self.public_url}/boards/images/{name}",
            "md5": hashlib.md5(data).hexdigest(),
            "size": len(data),
        }

    def close(self) -> None:
        self.huidu.close()
