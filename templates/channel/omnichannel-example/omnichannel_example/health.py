"""The channel's health: its settings present, and its API token accepted by the provider.

The token is checked with ``GET {base}/v1/me`` through the core's ``CredentialChecker``: at
most once a minute per token in each server worker, an answer (good or bad) kept that long,
and one request at a time, so a load balancer polling ``/health`` every few seconds never
floods the provider. The check is bounded well under the 5 seconds the core gives a health
hook. The core's ``credentials_health`` turns settings and answer into the report.
"""

from __future__ import annotations

import httpx
from omnichannel_core.channel import (
    ACCEPTED,
    REJECTED,
    UNREACHABLE,
    ChannelHealth,
    CredentialCheck,
    CredentialChecker,
    credentials_health,
)

from omnichannel_example.settings import ExampleSettings

ACCOUNT_PATH = "/v1/me"
CHECK_TIMEOUT = httpx.Timeout(2.0)

_checker = CredentialChecker(ttl_seconds=60.0, in_progress_detail="API token check in progress")


async def _ask_provider(base_url: str, token: str) -> CredentialCheck:
    """What the provider says of the token; its failures are an answer, never an error."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=CHECK_TIMEOUT) as client:
            response = await client.get(ACCOUNT_PATH, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        return CredentialCheck(
            UNREACHABLE, f"the provider could not be reached: {type(error).__name__}"
        )
    if response.status_code in (401, 403):
        return CredentialCheck(
            REJECTED, f"the provider rejected the API token ({response.status_code})"
        )
    if not response.is_success:
        return CredentialCheck(
            UNREACHABLE, f"the provider answered {response.status_code} to the token check"
        )
    return CredentialCheck(ACCEPTED, "API token accepted by the provider")


async def channel_health(settings: ExampleSettings, channel: str) -> ChannelHealth:
    """The report: what is missing or unusable, then what the provider said of the token
    (not asked when there is no token, or nowhere valid to ask)."""
    if settings.api_token is None or settings.invalid:
        return credentials_health(settings, None)
    base_url, token = settings.require_api(channel)
    check = await _checker.check_async((base_url, token), lambda: _ask_provider(base_url, token))
    return credentials_health(settings, check)
