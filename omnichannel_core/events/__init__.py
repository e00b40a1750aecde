"""The event log's vocabulary: what an entry holds and how a module declares its event types
(`omnichannel_core.events.records`).

Each write that changes what agents see appends its events in the same transaction as the
change, so the log has no gaps and a reader resumes from any cursor it was given; the store
keeps it (`omnichannel_core.store.protocols.EventLog`). A bus tells each process that the
log has grown (`omnichannel_core.bus`). Readers: the realtime stream (the ``events``
module, ``GET /api/events``) and the modules' subscribers (the job runner).
"""
