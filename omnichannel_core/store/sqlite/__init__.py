"""The SQLite backend: the database handle and the kernel's stores on it."""
