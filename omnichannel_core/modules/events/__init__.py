"""The events module: the realtime stream of the event log, ``GET /api/events``.

One reader of the log per process (`hub`) hands what it reads to every open stream
(`stream`), each filtered by what its caller may see (`views`), and to every feed a
channel follows some conversations with (`follow`: the ``LiveEvents`` service behind
``ChannelInbox.follow``). Every module's event types are streamed, each to the callers
holding its permission. docs/events.md describes it.
"""
