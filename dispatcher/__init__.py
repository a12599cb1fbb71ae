"""The engine: fan-out, sending, outcomes and the activity log; the CLI and web app on top."""
