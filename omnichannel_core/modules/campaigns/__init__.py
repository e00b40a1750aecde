"""The campaigns module: mass messages to a CRM segment, contacts or a list, through the
outbox, each recipient sent to at most once, at the channel's pace (docs/campaigns.md)."""
