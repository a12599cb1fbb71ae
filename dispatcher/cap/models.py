"""The log of CAP documents received: every one, accepted or refused, by its identifier."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel

# What became of a document (labels in coso.labels.CAP_OUTCOMES).
REFUSED = "refused"  # not CAP, schema failure, no or wrong credentials, bad area
WAITING = "waiting"  # approval mode: waits for a person in the console
DECLARED = "declared"  # an emergency was declared from it
UPDATED = "updated"  # the emergency it updates was changed
CANCELLED = "cancelled"  # the emergency it cancels was ended
EXPIRED = "expired"  # already past its expiry: nothing sent
IGNORED = "ignored"  # System, Draft, Ack, Error: nothing to send
REJECTED = "rejected"  # a person refused it in the console
REPEATED = "repeated"  # the same sender and identifier came before
FAILED = "failed"  # accepted, but declaring it failed (reason says why)
RECEIVING = "receiving"  # taken, being acted on (left so only by a crash in between)
OUTCOMES = (
    RECEIVING,
    REFUSED,
    WAITING,
    DECLARED,
    UPDATED,
    CANCELLED,
    EXPIRED,
    IGNORED,
    REJECTED,
    REPEATED,
    FAILED,
)


# One message acted on per sender and identifier: a post repeated while the first is still
# being acted on (an agency's retry after a timeout) cannot declare twice.
ACTED_ON_SQL = "outcome NOT IN ('refused', 'repeated')"


class ReceivedAlert(SQLModel, table=True):
    __tablename__ = "cap_alert"
    __table_args__ = (
        Index("ix_cap_alert_sender_identifier", "sender", "identifier"),
        Index(
            "ux_cap_alert_acted_on",
            "sender",
            "identifier",
            unique=True,
            sqlite_where=text(ACTED_ON_SQL),
            postgresql_where=text(ACTED_ON_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime
    via: str  # http, folder, feed
    origin: str = ""  # the sender's key, the file's name, the feed entry's address
    sender: str | None = None
    identifier: str | None = None
    sent: str | None = None  # as written, to match later references
    status: str | None = None
    msg_type: str | None = None
    severity: str | None = None
    headline: str = ""
    text: str = ""
    expires: datetime | None = None
    units: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: str = Field(index=True)
    reason: str = ""
    emergency_ref: str | None = None
    document: str = Field(default="", sa_column=Column(Text, nullable=False))
    decided_by: str | None = None
    decided_at: datetime | None = None
