"""The key behind players' media tokens is kept readable by its owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from content.media import token_secret
from coso.config import MediaSettings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_secret_is_owner_only(tmp_path: Path) -> None:
    settings = MediaSettings(dir=str(tmp_path))
    secret = token_secret(settings)
    path = tmp_path / ".token-secret"
    assert mode(path) == 0o600
    assert token_secret(settings) == secret


def test_existing_readable_secret_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".token-secret"
    path.write_text("kept-secret\n")
    path.chmod(0o644)
    assert token_secret(MediaSettings(dir=str(tmp_path))) == b"kept-secret"
    assert mode(path) == 0o600
