"""Identity verification: a site tells the widget who its logged-in user is, and proves it.

The site computes ``HMAC-SHA256(WEBCHAT_IDENTITY_SECRET, user_id)`` on its server (hex) and
puts it in the script tag's ``data-user-hash`` beside ``data-user-id``. A visitor who shows a
matching pair becomes ``user:<user_id>``: the same contact on every device and browser, with
their history. A pair that does not match is refused (403), so nobody reads another user's
conversation by writing their id into the page. During a rotation the site may sign with
either secret listed.
"""

from __future__ import annotations

import hashlib
import hmac

from omnichannel_core.channel import Forbidden, InvalidInput
from omnichannel_webchat.tokens import VERIFIED_PREFIX

MAX_USER_ID = 128


def verified_address(user_id: str, user_hash: str, secrets: tuple[bytes, ...]) -> str:
    """The address of the site's user ``user_id`` when ``user_hash`` proves it; Forbidden
    when it does not (or no identity secret is set), InvalidInput for a malformed id."""
    if not 1 <= len(user_id) <= MAX_USER_ID or not user_id.isprintable():
        raise InvalidInput(
            f"user_id must be 1 to {MAX_USER_ID} printable characters", field="user_id"
        )
    if not secrets:
        raise Forbidden(
            "identity verification is not set up on this server (WEBCHAT_IDENTITY_SECRET)"
        )
    presented = user_hash.strip().lower().encode()
    matched = False
    for secret in secrets:  # no early exit: the time does not tell which secret matched
        expected = hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest().encode()
        matched |= hmac.compare_digest(presented, expected)
    if not matched:
        raise Forbidden("user_hash does not prove user_id: the visitor was not identified")
    return VERIFIED_PREFIX + user_id
