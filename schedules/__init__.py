"""Plans, schedules and their recurrence, occurrences, and the timer that fires them."""
