"""Access on SQLite: the store (`store`), its schema (`schema`), the SQL of users
(`users`), of sessions and their refresh tokens (`sessions`), of API keys (`api_keys`) and of
failed logins (`login_failures`), and the records made of rows (`rows`).

`omnichannel_core.modules.access.store.AccessStore` is the contract. Each function of the SQL
modules takes the connection and runs inside the runner's transaction (a write) or on a
reader; writes are a few statements on primary keys or indexes, as they run on the event
loop's thread.
"""
