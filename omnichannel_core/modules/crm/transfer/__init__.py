"""Contacts in and out of the CRM: CSV imports (``POST /api/crm/imports``, worked by the
``crm.imports`` job, resumable) and exports (``GET /api/crm/exports/contacts``, CSV or
JSON, streamed).

- `records`, `store`, `sqlite`, `firestore`: an import's record, in the ``crm_imports``
  store (tables and collections ``crm_imports``).
- `csvfile`: the file read a row at a time from any row's first byte; `rows`: the mapping,
  and a row read by it; `starting`: an import's request checked; `importing`: the job;
  `declared`: custom attributes read as the CRM declares them.
- `exporting`: the writers; `routes`: the API.

The CRM's plugin wires it: ``transfer_store_spec()`` in ``register_stores``,
``transfer_routes(context, ...)`` in ``register_routes``, ``transfer_jobs(context, ...)``
in ``register_jobs``.
"""

from __future__ import annotations

from omnichannel_core.modules.crm.transfer.declarations import transfer_jobs, transfer_store_spec
from omnichannel_core.modules.crm.transfer.routes import transfer_routes

__all__ = ["transfer_jobs", "transfer_routes", "transfer_store_spec"]
