"""Channels behind one small interface: endpoints, groups, sends and inbound outcomes."""
