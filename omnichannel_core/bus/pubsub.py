"""The bus for many machines: a bell rung through Google Cloud Pub/Sub.

Every server process subscribes to one topic (``OMNICHANNEL_EVENT_BUS=pubsub://PROJECT/
TOPIC``) with a subscription of its own, made when it starts and deleted when it stops
(left behind by a crash, it expires after a day without use). A process that logged events
publishes a one-byte message; each subscription gets it, and each process's hub reads the
log. Messages carry nothing: the log in the store is the truth, so a lost or duplicated
ring costs at most a delay of :data:`omnichannel_core.modules.events.hub.OVERDUE_SECONDS`.

Rings are coalesced: while a publish is in flight, further rings only mark that another is
due, so a burst of writes costs a few messages, not one each.

Credentials, first match wins: ``PUBSUB_EMULATOR_HOST`` (the emulator; none needed); the
store's service account (``FIREBASE_PROJECT_ID``, ``FIREBASE_PRIVATE_KEY``,
``FIREBASE_CLIENT_EMAIL``), so one secret serves the store and the bus; else Application
Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, or the machine's service account).
Finding none stops start-up with a ConfigError that says which variables to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any

import google.auth
import structlog
from google.api_core import exceptions as google_errors
from google.api_core import retry
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.store.firestore.client import (
    APPLICATION_CREDENTIALS,
    SERVICE_ACCOUNT_VARIABLES,
    service_account_from_environment,
)
from omnichannel_core.tasks import wait_until

log = structlog.get_logger("omnichannel.events")

SUBSCRIPTION_TTL_SECONDS = 24 * 3600
RETENTION_SECONDS = 600  # the minimum Pub/Sub allows: an old ring is worthless
ACK_DEADLINE_SECONDS = 10
CLOSE_SECONDS = 5.0
START_SECONDS = 15.0
"""How long starting may try to reach Pub/Sub before the server gives up with a clear error."""
START_RETRY = retry.Retry(timeout=START_SECONDS)
EMULATOR_HOST = "PUBSUB_EMULATOR_HOST"
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
RING = b"1"  # Pub/Sub refuses empty messages; what a ring says is only that it rang


class PubSubBus:
    def __init__(self, project: str, topic: str, config: Config) -> None:
        self.project = project
        self.topic = topic
        self.config = config
        self.credentials = bus_credentials(os.environ)
        """Resolved now, so that a server without credentials stops at start-up, saying
        which variables to set; None for the emulator."""
        self._rung: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publisher: PublisherClient | None = None
        self._subscriber: SubscriberClient | None = None
        self._subscription: str | None = None
        self._pulling: Any = None
        self._publishing = False
        self._ring_again = False

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._rung = asyncio.Event()
        try:
            await asyncio.to_thread(self._connect)
        except (google_errors.GoogleAPICallError, google_errors.RetryError) as error:
            reason = getattr(error, "message", None) or str(error)
            raise ConfigError(
                f"OMNICHANNEL_EVENT_BUS: cannot use {self.topic_path}: {reason}",
                variable="OMNICHANNEL_EVENT_BUS",
            ) from None
        except auth_errors.GoogleAuthError as error:  # e.g. a key Google refuses
            raise _credentials_error(error) from None

    def _connect(self) -> None:
        self._publisher = PublisherClient(credentials=self.credentials)
        self._subscriber = SubscriberClient(credentials=self.credentials)
        with contextlib.suppress(google_errors.AlreadyExists):
            self._publisher.create_topic(
                request={"name": self.topic_path}, retry=START_RETRY, timeout=START_SECONDS
            )
        name = f"{self.topic}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._subscription = f"projects/{self.project}/subscriptions/{_valid_name(name)}"
        self._subscriber.create_subscription(
            request={
                "name": self._subscription,
                "topic": self.topic_path,
                "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
                "message_retention_duration": {"seconds": RETENTION_SECONDS},
                "expiration_policy": {"ttl": {"seconds": SUBSCRIPTION_TTL_SECONDS}},
            },
            retry=START_RETRY,
            timeout=START_SECONDS,
        )
        self._pulling = self._subscriber.subscribe(self._subscription, callback=self._heard)
        log.info("event_bus_subscribed", topic=self.topic_path, subscription=self._subscription)

    def _heard(self, message: Any) -> None:
        """On the client's thread: a ring arrived."""
        message.ack()
        loop, rung = self._loop, self._rung
        if loop is not None and rung is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(rung.set)

    def ring(self) -> None:
        if self._publisher is None:
            return
        if self._publishing:
            self._ring_again = True
            return
        self._publishing = True
        self._ring_again = False
        try:
            future = self._publisher.publish(self.topic_path, RING)
        except Exception:
            self._publishing = False
            log.exception("event_bus_publish_failed")
            return
        future.add_done_callback(self._published)

    def _published(self, future: Any) -> None:
        """On the client's thread: the publish finished; ring again if rung meanwhile."""
        if future.exception() is not None:
            log.warning("event_bus_publish_failed", error=str(future.exception()))
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._after_publish)

    def _after_publish(self) -> None:
        self._publishing = False
        if self._ring_again:
            self.ring()

    async def wait(self, at_most: float) -> None:
        assert self._rung is not None, "start() the bus first"
        await wait_until(self._rung, at_most)
        self._rung.clear()

    async def close(self) -> None:
        await asyncio.to_thread(self._disconnect)
        self._publisher = None

    def _disconnect(self) -> None:
        if self._pulling is not None:
            self._pulling.cancel()
            with contextlib.suppress(Exception):
                self._pulling.result(timeout=CLOSE_SECONDS)
        if self._subscriber is not None:
            if self._subscription is not None:
                with contextlib.suppress(google_errors.GoogleAPICallError):
                    self._subscriber.delete_subscription(
                        request={"subscription": self._subscription}, timeout=CLOSE_SECONDS
                    )
            self._subscriber.close()
        if self._publisher is not None:
            self._publisher.stop()


def bus_credentials(environ: Mapping[str, str]) -> Credentials | None:
    """The credentials the bus connects with (None: the emulator, which needs none), or
    ConfigError saying which variables to set. Application Default Credentials may ask the
    machine's metadata server: call it at start-up, not on the event loop."""
    if environ.get(EMULATOR_HOST, "").strip():
        return None
    if any(environ.get(name, "").strip() for name in SERVICE_ACCOUNT_VARIABLES):
        return service_account_from_environment(environ)[1]
    try:
        credentials, _ = google.auth.default(scopes=[PUBSUB_SCOPE])
    except auth_errors.GoogleAuthError as error:
        raise _credentials_error(error) from None
    return credentials


def _credentials_error(error: auth_errors.GoogleAuthError) -> ConfigError:
    # Only the error's kind: Google's message may quote a token endpoint's answer.
    return ConfigError(
        f"OMNICHANNEL_EVENT_BUS: no usable credentials for Pub/Sub ({type(error).__name__}):"
        f" set {', '.join(SERVICE_ACCOUNT_VARIABLES)}, or {APPLICATION_CREDENTIALS}, or"
        f" {EMULATOR_HOST} for the emulator",
        variable=APPLICATION_CREDENTIALS,
    )


def _valid_name(name: str) -> str:
    """A subscription id Pub/Sub accepts: letters, digits and ``-_.~+%``, 3 to 255 long,
    starting with a letter."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in name)
    return ("s" + cleaned)[:255] if not cleaned[:1].isalpha() else cleaned[:255]
