"""Channels that ship with the core."""
