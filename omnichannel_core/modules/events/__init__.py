"""The events module: the realtime stream of the event log, ``GET /api/events``.

One reader of the log per process (`hub`) hands what it reads to every open stream
(`stream`), each filtered by what its caller may see (`views`). Every module's event types
are streamed, each to the callers holding its permission. docs/events.md describes it.
"""
