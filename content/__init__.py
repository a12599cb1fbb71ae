"""Content items with their approval state, and rendering them per channel with Jinja2."""
