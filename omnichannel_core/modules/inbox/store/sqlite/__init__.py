"""The inbox on SQLite: the store (`store`), its schema (`schema`), and the SQL of each
kind of write (`ingest`, `contacts`, `status`) and of rows (`rows`)."""
