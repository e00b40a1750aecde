"""Realtime events: what changed in the inbox, for every connected agent and program.

The store keeps the log (`omnichannel_core.events.records`): each write that changes what
agents see appends its events in the same transaction as the change, so the log has no
gaps and a stream resumes from any cursor it was given. A bus only tells each server
process that the log has grown (`omnichannel_core.events.bus`); each process reads the new
events once and hands them to its open streams (`omnichannel_core.events.hub`), filtered
by what each caller may see, through ``GET /api/events``.
"""
