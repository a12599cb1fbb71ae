"""The board channel's own table: what each board was given to show."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class BoardShown(SQLModel, table=True):
    __tablename__ = "board_shown"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(index=True)
    board: str
    text: str
