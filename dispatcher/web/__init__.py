"""The web app: pages, the JSON API and each channel's routes, mounted in one place."""
