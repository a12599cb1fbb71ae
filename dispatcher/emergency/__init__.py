"""One emergency, every channel: declare, update, cancel, and its progress by reference."""

from dispatcher.emergency.declare import cancel, declare, update
from dispatcher.emergency.progress import (
    EmergencyProgress,
    ProgressRow,
    current_audio,
    emergency_log,
    find,
    last_states,
    list_emergencies,
    progress,
)
from dispatcher.emergency.request import EmergencyRequest, parse_until

__all__ = [
    "EmergencyProgress",
    "EmergencyRequest",
    "ProgressRow",
    "cancel",
    "current_audio",
    "declare",
    "emergency_log",
    "find",
    "last_states",
    "list_emergencies",
    "parse_until",
    "progress",
    "update",
]
