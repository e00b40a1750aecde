"""Who may act on the inbox: users and their roles, API keys and their scopes, sessions, the
permission matrix, and the audit log of what they did."""
