"""The `coso` command line: thin commands over functions the tests call directly."""
