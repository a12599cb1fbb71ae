"""Alerts in: OASIS CAP 1.2 documents received over HTTP, from a folder or a feed, checked,
mapped to units and turned into an emergency, its update or its cancellation."""
