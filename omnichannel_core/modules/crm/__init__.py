"""The CRM: one customer across channels, with profile, notes, tags, segments and
privacy (docs/crm.md)."""
