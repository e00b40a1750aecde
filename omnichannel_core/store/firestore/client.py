"""Connecting to Firestore: credentials from the environment, one async client per event loop.

Three ways in, first match wins:

- ``FIRESTORE_EMULATOR_HOST`` (``host:port``): the local emulator, with anonymous
  credentials; any project id, ``demo-...`` ones included, which exist nowhere else.
- ``FIREBASE_PROJECT_ID``, ``FIREBASE_PRIVATE_KEY`` and ``FIREBASE_CLIENT_EMAIL``: a service
  account given piece by piece, as hosting platforms hold secrets. The key may carry its line
  breaks as literal ``\\n`` sequences (one-line variables); they are turned back into newlines.
- ``GOOGLE_APPLICATION_CREDENTIALS``: Application Default Credentials (a key file path; on
  Google Cloud the metadata server answers without it, but the variable says "meant so").

Secrets never reach a log or an error message: errors name the variable and what is wrong
with it, never its value. Credentials are built when the store is built, so a bad key stops
start-up; the client, whose gRPC channel belongs to one event loop, is made in ``open``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from firebase_admin import credentials as firebase_credentials
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud.firestore_v1 import AsyncClient

from omnichannel_core.errors import ConfigError

EMULATOR_HOST = "FIRESTORE_EMULATOR_HOST"
PROJECT_ID = "FIREBASE_PROJECT_ID"
PRIVATE_KEY = "FIREBASE_PRIVATE_KEY"
CLIENT_EMAIL = "FIREBASE_CLIENT_EMAIL"
APPLICATION_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"
SERVICE_ACCOUNT_VARIABLES = (PROJECT_ID, PRIVATE_KEY, CLIENT_EMAIL)

_PROJECT = re.compile(r"[a-z][a-z0-9\-]{4,28}[a-z0-9]")
"""Google Cloud's rule for project ids: 6 to 30 lower-case letters, digits and hyphens,
starting with a letter and not ending with a hyphen."""
_EMULATOR_PROJECT = re.compile(r"[a-z0-9][a-z0-9\-]{0,62}")
"""The emulator takes any project id; test fixtures make long ``demo-...`` ones."""
_HOST_PORT = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}")
_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - Google's endpoint


@attrs.frozen
class FirestoreSettings:
    """Where the store's data lives and how to get in.

    :param credentials: None means Application Default Credentials, loaded on connect.
    """

    project: str
    emulator_host: str | None = None
    credentials: Credentials | None = attrs.field(default=None, repr=False)
    source: str = "emulator"
    """Which way in was taken (``emulator``, ``service_account``, ``application_default``):
    for the health report; names no secret."""

    def facts(self) -> dict[str, Any]:
        """What ``ping`` may show: nothing secret."""
        facts: dict[str, Any] = {"project": self.project, "credentials": self.source}
        if self.emulator_host is not None:
            facts["emulator"] = self.emulator_host
        return facts


def _config_error(variable: str, problem: str) -> ConfigError:
    return ConfigError(f"{variable}: {problem}", variable=variable)


def _checked_project(project: str, variable: str) -> str:
    if not _PROJECT.fullmatch(project):
        raise _config_error(
            variable,
            f"{project[:40]!r} is not a Google Cloud project id (6 to 30 lower-case letters,"
            " digits and hyphens, starting with a letter)",
        )
    return project


def service_account_from_environment(environ: Mapping[str, str]) -> tuple[str, Credentials]:
    """The project and credentials of the service account the ``FIREBASE_*`` variables give
    (the Pub/Sub bus uses it too: one secret for both), or ConfigError naming the variable
    that is missing or malformed."""
    missing = [name for name in SERVICE_ACCOUNT_VARIABLES if not environ.get(name, "").strip()]
    if missing:
        raise _config_error(
            missing[0],
            "not set; a service account needs all of " + ", ".join(SERVICE_ACCOUNT_VARIABLES),
        )
    project = _checked_project(environ[PROJECT_ID].strip(), PROJECT_ID)
    key = environ[PRIVATE_KEY].strip().strip('"').replace("\\n", "\n")
    if "-----BEGIN PRIVATE KEY-----" not in key:
        raise _config_error(
            PRIVATE_KEY,
            "is not a PEM private key (it should start with -----BEGIN PRIVATE KEY-----)",
        )
    email = environ[CLIENT_EMAIL].strip()
    if "@" not in email:
        raise _config_error(CLIENT_EMAIL, "is not a service account email address")
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key": key,
        "client_email": email,
        "token_uri": _TOKEN_URI,
    }
    try:
        credential = firebase_credentials.Certificate(info).get_credential()
    except ValueError:
        # The library's message may quote the key: say only which variable is wrong.
        raise _config_error(PRIVATE_KEY, "the private key could not be read") from None
    return project, credential


def settings_from_environment(
    project: str | None, environ: Mapping[str, str] | None = None
) -> FirestoreSettings:
    """The settings for ``project`` (from ``OMNICHANNEL_STORE``; None: from the
    credentials), or raise ConfigError naming the variable that is missing or malformed."""
    environ = os.environ if environ is None else environ
    emulator = environ.get(EMULATOR_HOST, "").strip()
    if emulator:
        if not _HOST_PORT.fullmatch(emulator):
            raise _config_error(EMULATOR_HOST, f"expected host:port, got {emulator[:80]!r}")
        chosen = project or environ.get(PROJECT_ID, "").strip()
        if not chosen:
            raise _config_error(
                "OMNICHANNEL_STORE", "name the emulator's project: firestore://demo-PROJECT"
            )
        if not _EMULATOR_PROJECT.fullmatch(chosen):
            raise _config_error("OMNICHANNEL_STORE", f"{chosen[:40]!r} is not a project id")
        return FirestoreSettings(chosen, emulator, AnonymousCredentials())
    if project is not None and project.startswith("demo-"):
        raise _config_error(
            "OMNICHANNEL_STORE",
            f"{project!r} is a demo project, which only the emulator serves; set {EMULATOR_HOST}",
        )
    if project is not None:
        _checked_project(project, "OMNICHANNEL_STORE")
    if any(environ.get(name, "").strip() for name in SERVICE_ACCOUNT_VARIABLES):
        account_project, credential = service_account_from_environment(environ)
        return FirestoreSettings(project or account_project, None, credential, "service_account")
    key_file = environ.get(APPLICATION_CREDENTIALS, "").strip()
    if key_file:
        if not Path(key_file).is_file():
            raise _config_error(APPLICATION_CREDENTIALS, f"no such file: {key_file}")
        if project is None:
            raise _config_error("OMNICHANNEL_STORE", "name the project: firestore://PROJECT")
        return FirestoreSettings(project, None, None, "application_default")
    raise ConfigError(
        "the Firestore store needs credentials: set FIREBASE_PROJECT_ID, FIREBASE_PRIVATE_KEY"
        f" and FIREBASE_CLIENT_EMAIL, or {APPLICATION_CREDENTIALS}, or {EMULATOR_HOST} for"
        " the emulator",
        variable=PRIVATE_KEY,
    )


def load_credentials(settings: FirestoreSettings) -> Credentials:
    """The credentials to connect with; Application Default Credentials are looked up now,
    which may ask the metadata server (blocking: call it in a thread)."""
    if settings.credentials is not None:
        return settings.credentials
    try:
        return firebase_credentials.ApplicationDefault().get_credential()
    except Exception as error:  # google.auth says where it looked; no secret in that
        raise _config_error(
            APPLICATION_CREDENTIALS, f"the credentials could not be loaded: {error}"
        ) from None


def connect(settings: FirestoreSettings, credentials: Credentials) -> AsyncClient:
    """A new async client; call it on the event loop that will use it."""
    return AsyncClient(project=settings.project, credentials=credentials)


async def disconnect(client: AsyncClient) -> None:
    """Close the client's gRPC channel (the library's client has no public close)."""
    await client._firestore_api.transport.close()
