"""coso foundation: configuration, database, clock, administrative units and organisations."""
