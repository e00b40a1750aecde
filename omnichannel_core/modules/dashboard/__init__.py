"""The dashboard module: the queue as it is now, and figures over a period kept as rollups
by an event subscriber (docs/dashboard.md)."""
