"""The board channel's own tables: each board's pairing and status, the items on each
board's programme, and every display a board reported."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class BoardDevice(SQLModel, table=True):
    """One board: how a screen proves it is this board, and what it last said of itself."""

    __tablename__ = "board_device"

    endpoint_id: int = Field(primary_key=True)  # the board's endpoint
    token_hash: str | None = None  # sha256 of the screen's token
    pair_code: str | None = None  # shown on a new screen until an editor approves it
    pair_claim_hash: str | None = None  # what that screen holds to collect its token
    pair_requested_at: datetime | None = None
    pair_approved_by: str | None = None
    pair_token: str | None = None  # the new token, until the screen collects it once
    paired_at: datetime | None = None
    online: bool = False
    last_seen: datetime | None = None
    showing: str | None = None
    showing_since: datetime | None = None
    width: int | None = None
    height: int | None = None
    brightness_signature: str | None = None  # the brightness schedule a controller has
    sent_signature: str | None = None  # the programme last given to a controller
    last_failure: str | None = None
    last_failure_at: datetime | None = None


class BoardItem(SQLModel, table=True):
    """One delivery on one board's programme, from its slot until it ends."""

    __tablename__ = "board_item"

    delivery_id: int = Field(primary_key=True)
    endpoint_id: int = Field(index=True)
    schedule_id: int
    title: str
    text: str = ""
    image: str | None = None  # file name under the images folder (<sha256>.<ext>)
    seconds: int
    scroll: bool = False
    priority: int = 0  # 0 normal, 1 priority, 2 emergency
    position: int = 0  # order among items of one priority
    starts_at: datetime
    ends_at: datetime = Field(index=True)
    ended_at: datetime | None = None  # ended by a person before its time (an emergency)
    ended_by: str | None = None


class BoardDisplay(SQLModel, table=True):
    """One time an item was on a board's screen, as the board reported it."""

    __tablename__ = "board_display"
    __table_args__ = (UniqueConstraint("endpoint_id", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int
    delivery_id: int = Field(index=True)
    record_id: str  # the board's own id for the record: an upload sent twice counts once
    started_at: datetime
    seconds: float
    received_at: datetime
