"""Benchmarks: each prints coso's figure next to a raw baseline from the same run."""
