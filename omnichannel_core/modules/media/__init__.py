"""The media store: the bytes of every attachment the server keeps (docs/media.md).

- Inbound attachments that come with a webhook (an email's parts) are kept before the
  provider is answered; a provider's media (Twilio's ``MediaUrl``, Messenger's attachment
  URLs) is fetched after, in the ``media.fetch`` job, through the channel's ``media_fetch``
  hook and by the SSRF rules of `omnichannel_core.modules.media.fetch`.
- Agents download a message's media through ``GET /api/messages/{id}/media/{index}`` when
  they may see its conversation, and upload what they attach with ``POST /api/media``.
- Bytes live in a folder under the data dir, or in Google Cloud Storage
  (``OMNICHANNEL_MEDIA_STORE``), named by their SHA-256: a retried webhook, or one file
  sent twice, is stored once. What each id names (type, size, name, uploader) and the
  fetches still to do are in the module's own store (SQLite or Firestore).
"""
