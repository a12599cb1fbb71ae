"""The web channel: coso's own bulletin (with its Atom feed) and WordPress sites."""
