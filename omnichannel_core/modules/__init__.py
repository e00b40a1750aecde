"""The core's own features, as modules registered through the module hooks like any other
(each is an entry point of omnichannel-core in ``omnichannel.modules``):

- `inbox`: contacts, conversations, messages, and each channel's routes;
- `access`: users, roles, sessions, API keys, and the audit log's API;
- `events`: the realtime stream of the event log (``GET /api/events``).
- `media`: the media store: attachments kept, providers' media fetched, downloads and
  uploads.

Each imports only the declared plugin APIs (`omnichannel_core.module`,
`omnichannel_core.channel`) and its own folder, as a third party's module would.
"""
