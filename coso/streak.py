"""A loop's run of failed rounds (the database away, say): how long to wait before the next
round, and which failures are worth a line in the log, so that an outage of a minute is a few
lines and a slower loop, not hundreds of tracebacks from a loop spinning at full speed."""

from __future__ import annotations

from dataclasses import dataclass

CEILING = 5.0  # seconds: the longest wait between two rounds while they keep failing


@dataclass
class Streak:
    failures: int = 0

    def failed(self) -> bool:
        """Count one more failure; True when it should be logged (the 1st, 2nd, 4th, 8th…)."""
        self.failures += 1
        return self.failures & (self.failures - 1) == 0

    def ended(self) -> int:
        """A round worked: how many had failed before it (0: none)."""
        failures, self.failures = self.failures, 0
        return failures

    def wait(self, idle: float) -> float:
        """Seconds to wait before the next round: `idle`, doubling with each failure."""
        if not self.failures:
            return idle
        return min(idle * 2 ** min(self.failures, 16), max(idle, CEILING))
