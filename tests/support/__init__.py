"""Helpers for tests that need real processes: the gunicorn server, a fake provider API."""
