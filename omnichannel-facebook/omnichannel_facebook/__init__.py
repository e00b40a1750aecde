"""The Facebook Messenger channel for omnichannel: messages in and out through the Graph API,
delivery and read receipts, and the 24-hour messaging window."""
