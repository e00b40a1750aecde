"""The inbox on Firestore: the store (`store`), its documents (`documents`), and each kind of
write and read (`ingest`, `outbound`, `watermarks`, `contacts`, `conversations`, `search`)."""
