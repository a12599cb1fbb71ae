"""GET /media/<sha256>.mp3: prepared clips for players that show their own token."""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from channels.loudspeaker.credentials import generation
from content.media import media_dir, token_secret, token_valid

MEDIA_NAME = re.compile(r"[0-9a-f]{64}\.mp3")


def media_routes(host: Any) -> Starlette:
    media = media_dir(host.settings.media)
    secret = token_secret(host.settings.media)

    async def media_file(request: Request) -> Response:
        name = request.path_params["name"]
        player = request.headers.get("X-Coso-Player", "")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        valid = bool(player and token)
        if valid:  # a revoked player's generation moved on: its old token no longer matches
            current = await run_in_threadpool(generation, host.engine, player)
            valid = token_valid(secret, player, token, current)
        if not valid:
            return PlainTextResponse(
                "send X-Coso-Player and Authorization: Bearer <its token>", 401
            )
        if not MEDIA_NAME.fullmatch(name) or not (media / name).is_file():
            return PlainTextResponse(f"no media {name!r}", 404)
        return FileResponse(media / name, media_type="audio/mpeg")

    return Starlette(routes=[Route("/{name}", media_file, methods=["GET"])])
