"""Dates as people type them: dd/mm/yyyy (or yyyy-mm-dd, as a date input sends it), in the
years schedules may use; one reader for forms, commands and reports."""

from __future__ import annotations

import re
from datetime import date, datetime

from coso.errors import InputError

FIRST_YEAR, LAST_YEAR = 2000, 2199


def read_date(field: str, text: str) -> date:
    value = text.strip()
    for form in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            found = datetime.strptime(value, form).date()
        except ValueError:
            continue
        if FIRST_YEAR <= found.year <= LAST_YEAR:
            return found
        raise InputError(field, text, f"năm phải từ {FIRST_YEAR} đến {LAST_YEAR}")
    if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{1,2}-\d{1,2}", value):
        raise InputError(field, text, "không có ngày này trong lịch")
    raise InputError(field, text, "không phải ngày (dd/mm/yyyy)")
