"""Import a plan file (the public entry; the checks live in schedules/plan_import/)."""

from __future__ import annotations

from schedules.plan_import import import_plan, import_plan_file

__all__ = ["import_plan", "import_plan_file"]
