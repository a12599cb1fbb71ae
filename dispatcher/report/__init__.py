"""A plan's periodic report, from the activity log: figures per channel, unit and period,
against the plan's targets; as a table, CSV, XLSX, DOCX or HTML."""
