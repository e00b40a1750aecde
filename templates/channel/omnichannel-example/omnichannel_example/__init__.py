"""The Example Messaging channel for omnichannel: messages in and out, with delivery status.

A channel distribution made to be copied: rename it, point it at your provider's API, and
keep its shape (one module per job, the hooks thin in :mod:`omnichannel_example.channel`).
docs/writing-a-channel.md walks through it.
"""
