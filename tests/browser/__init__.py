"""Tests through a real browser (Debian's chromium, driven by Playwright) against a real
`coso serve`; conftest.py says how to write one."""
