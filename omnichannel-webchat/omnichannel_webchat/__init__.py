"""The webchat channel: a chat widget a business embeds on its site with one script tag.

Visitors talk to the server over a WebSocket (or long polling where sockets are blocked),
with a signed visitor token of their own; agents answer from the inbox like on any channel.
See docs/channels/webchat.md.
"""
