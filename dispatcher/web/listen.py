"""Prepared audio for people signed in to the console: to listen before approving, or to
play on a station. Players fetch theirs at /media with their own token."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from content.media import media_dir
from coso.access import READ, Access
from coso.config import Settings

NAME = re.compile(r"[0-9a-f]{64}\.mp3")


def listen_router(settings: Settings, signed_in: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/media/{name}")
    def clip(name: str, access: Access = Depends(signed_in)) -> FileResponse:
        access.require(READ)
        path = media_dir(settings.media) / name
        if not NAME.fullmatch(name) or not path.is_file():
            raise HTTPException(404, f"name = {name[:80]!r}: không có tệp âm thanh này")
        return FileResponse(path, media_type="audio/mpeg")

    return router
