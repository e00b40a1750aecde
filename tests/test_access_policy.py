"""The permission matrix and whose conversations an agent works (access/policy.py)."""

from __future__ import annotations

import pytest

from omnichannel_core.access.policy import (
    ALL_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    check_assignment,
    check_conversation,
    scope_permissions,
)
from omnichannel_core.access.records import Role
from omnichannel_core.errors import Forbidden, InvalidInput


def agent(user_id: str = "usr_a") -> Principal:
    return Principal.of_user(user_id, "Agent", Role.AGENT, "ses_1")


def test_admins_have_every_permission_and_the_others_a_subset():
    """Admin: everything; supervisor: no user, key, audit or settings changes; agent: no
    direct sends, plugins, reports."""
    assert ROLE_PERMISSIONS[Role.ADMIN] == ALL_PERMISSIONS
    supervisor = ROLE_PERMISSIONS[Role.SUPERVISOR]
    for denied in ("users:manage", "api_keys:manage", "audit:read", "settings:manage"):
        assert Permission(denied) not in supervisor
    agents = ROLE_PERMISSIONS[Role.AGENT]
    assert agents < supervisor
    for denied in ("messages:send", "plugins:read", "reports:read"):
        assert Permission(denied) not in agents


def test_scopes_are_permissions_or_presets_and_unknown_ones_are_refused():
    """A key's scopes name permissions or the presets read/send/admin; anything else is a
    400 naming the scope."""
    assert scope_permissions(("admin",)) == ALL_PERMISSIONS
    assert Permission.CONVERSATIONS_REPLY in scope_permissions(("send",))
    assert Permission.USERS_MANAGE not in scope_permissions(("read",))
    assert scope_permissions(("contacts:read",)) == {Permission.CONTACTS_READ}
    with pytest.raises(InvalidInput, match="everything"):
        scope_permissions(("everything",))


def test_every_key_may_use_its_own_account_routes():
    """/api/auth/me works for any key, whatever its scopes."""
    key = Principal.of_api_key("key_1", "k", ("contacts:read",))
    key.require(Permission.OWN_ACCOUNT)
    with pytest.raises(Forbidden) as refused:
        key.require(Permission.CONVERSATIONS_READ)
    assert refused.value.details["permission"] == "conversations:read"


def test_agents_see_their_own_and_unassigned_conversations_only():
    """check_conversation lets an agent through for their own or nobody's conversation."""
    check_conversation(agent(), None)
    check_conversation(agent(), "usr_a")
    with pytest.raises(Forbidden):
        check_conversation(agent(), "usr_b")
    supervisor = Principal.of_user("usr_s", "S", Role.SUPERVISOR, "ses_2")
    check_conversation(supervisor, "usr_b")


def test_agents_assign_only_to_themselves():
    """An agent takes an unassigned conversation or gives back their own; no more."""
    check_assignment(agent(), None, "usr_a")
    check_assignment(agent(), "usr_a", None)
    with pytest.raises(Forbidden):
        check_assignment(agent(), None, "usr_b")
    supervisor = Principal.of_user("usr_s", "S", Role.SUPERVISOR, "ses_2")
    check_assignment(supervisor, None, "usr_b")
