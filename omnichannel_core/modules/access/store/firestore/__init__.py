"""Access on Firestore: the store (`store`, whose docstring has the layout), its documents
(`documents`), and the reads and writes of users (`users`), of sessions and their refresh
tokens (`sessions`), of API keys (`api_keys`) and of failed logins (`login_failures`)."""
