"""Keys coso makes for itself when the settings give none: generated once, kept in a file
only its owner can read, and read from there on later starts."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


def kept_secret(path: Path) -> bytes:
    """The key in `path`, made (64 hex digits, mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        os.replace(partial, path)
    elif path.stat().st_mode & 0o077:
        log.warning("secret %s was readable by others: mode set to 0600", path)
        os.chmod(path, 0o600)
    return path.read_text().strip().encode()
