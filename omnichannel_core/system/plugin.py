"""The core's own plugin, registered first (before any module) by the loader.

It contributes, through the same hooks as any module:

- the permissions no module owns: ``plugins:read``; and ``settings:manage``, which the
  settings module will use;
- the kernel's stores (the event log, the audit log, the job runner's leases and cursors);
- the system routes: ``/``, ``/health``, ``/api/plugins``, ``/api/openapi.json``;
- the job that prunes the event log.
"""

from __future__ import annotations

from datetime import timedelta

from omnichannel_core import hookimpl
from omnichannel_core.jobs.specs import Job
from omnichannel_core.plugins.context import CoreContext
from omnichannel_core.policy import PermissionSpec, Role
from omnichannel_core.routes import Route
from omnichannel_core.store import KERNEL_STORES
from omnichannel_core.store.specs import StoreSpec
from omnichannel_core.system.retention import EventRetention
from omnichannel_core.system.routes import PLUGINS_READ, Health, OpenApiDocument, Plugins, Root

SUPERVISORS = (Role.SUPERVISOR,)


class SystemPlugin:
    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return [
            PermissionSpec(
                PLUGINS_READ, "list the plugins and their hooks", SUPERVISORS, scopes=("read",)
            ),
            PermissionSpec("settings:manage", "change the business's settings"),
        ]

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return list(KERNEL_STORES)

    @hookimpl
    def register_routes(self, context: CoreContext) -> list[Route]:
        registry = context.registry
        return [
            Route("/", Root(registry)),
            Route("/health", Health(registry)),
            Route("/api/plugins", Plugins(registry)),
            Route("/api/openapi.json", OpenApiDocument(registry)),
        ]

    @hookimpl
    def register_jobs(self, context: CoreContext) -> list[Job]:
        registry = context.registry
        config = context.config
        retention = EventRetention(
            registry.event_log,
            registry.job_store,
            [subscriber.name for subscriber in registry.subscribers],
            keep=timedelta(hours=config.event_retention_hours),
            at_most=timedelta(hours=config.event_retention_max_hours),
            every=timedelta(seconds=config.event_prune_seconds),
        )
        return [retention.job()]
