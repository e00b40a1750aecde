"""The core's own plugin: what the kernel serves and runs itself, registered through the
same hooks as any module's (`system.plugin`): ``/``, ``/health``, ``/api/plugins`` and
``/api/openapi.json``; the permissions no module owns yet; the kernel's stores; and the
pruning of the event log (`system.retention`)."""
