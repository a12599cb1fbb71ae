"""Commune radio stations no computer controls (FM, wired): each delivery a task that the
commune's operator confirms, in the console or by SMS."""
