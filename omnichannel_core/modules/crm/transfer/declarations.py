"""What the CRM's plugin declares for imports and exports: the ``crm_imports`` store and
the ``crm.imports`` job (the routes: `routes.transfer_routes`)."""

from __future__ import annotations

from omnichannel_core.module import ContactBook, Job, MediaKeeper, ModuleContext, StoreSpec, lazy
from omnichannel_core.modules.crm.transfer.importing import (
    AttributeRules,
    Importing,
    text_attributes,
)
from omnichannel_core.modules.crm.transfer.sqlite import MIGRATIONS, SqliteImportStore
from omnichannel_core.modules.crm.transfer.store import ImportStore

STORE = StoreSpec(
    "crm_imports",
    ImportStore,
    sqlite=SqliteImportStore,
    firestore=lazy("omnichannel_core.modules.crm.transfer.firestore", "FirestoreImportStore"),
    sqlite_migrations=MIGRATIONS,
)


def transfer_store_spec() -> StoreSpec:
    """The imports' store (``register_stores``)."""
    return STORE


def importing(context: ModuleContext, attributes: AttributeRules = text_attributes) -> Importing:
    """The ``crm.imports`` job's work on this context's store and services."""
    return Importing(
        context.store(ImportStore),
        lambda: context.service(ContactBook),
        lambda: context.service(MediaKeeper),
        context.news,
        attributes,
    )


def transfer_jobs(
    context: ModuleContext, attributes: AttributeRules = text_attributes
) -> list[Job]:
    """The ``crm.imports`` job (``register_jobs``). ``attributes``: how rows' custom
    attributes are read (the CRM's definitions); by default as text."""
    return [importing(context, attributes).job()]
