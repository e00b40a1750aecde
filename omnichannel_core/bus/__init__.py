"""How server processes learn that the event log has grown: a bell (`bus.bus`, and Google
Cloud Pub/Sub across machines in `bus.pubsub`), and the fan-out of each ring to every reader
of the process (`bus.news`)."""
