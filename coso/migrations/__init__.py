"""coso's Alembic migrations (versions/); channel packages bring their own branches."""

# Folders of further migrations: each a channel package's own branch, added by the channel
# registry as it finds the packages (this module stays light: it is read at start-up).
CHANNEL_FOLDERS: list[str] = []
