"""Public electronic boards: screens that open coso's board page, and Huidu LED controllers."""
