"""The permission matrix built from the permissions every built-in module contributes, and
whose conversations an agent works (the inbox's visibility rules)."""

from __future__ import annotations

import pytest

from omnichannel_core.errors import Forbidden, InvalidInput
from omnichannel_core.modules.access.permissions import PERMISSIONS as ACCESS_PERMISSIONS
from omnichannel_core.modules.access.records import ApiKey, User
from omnichannel_core.modules.access.service import key_principal, user_principal
from omnichannel_core.modules.inbox.permissions import PERMISSIONS as INBOX_PERMISSIONS
from omnichannel_core.modules.inbox.visibility import check_assignment, check_conversation
from omnichannel_core.policy import PermissionSpec, Policy, Principal, Role
from omnichannel_core.system.plugin import SystemPlugin

POLICY = Policy([*SystemPlugin().register_permissions(), *ACCESS_PERMISSIONS, *INBOX_PERMISSIONS])


def user(role: Role, user_id: str) -> Principal:
    return user_principal(POLICY, User(user_id, f"{user_id}@example.com", user_id, role), "ses_1")


def agent(user_id: str = "usr_a") -> Principal:
    return user(Role.AGENT, user_id)


def test_admins_have_every_permission_and_the_others_a_subset():
    """Admin: everything; supervisor: no user, key, audit or settings changes; agent: no
    direct sends, plugins, reports."""
    assert POLICY.of_role(Role.ADMIN) == POLICY.everything
    supervisor = POLICY.of_role(Role.SUPERVISOR)
    for denied in ("users:manage", "api_keys:manage", "audit:read", "settings:manage"):
        assert denied not in supervisor
    agents = POLICY.of_role(Role.AGENT)
    assert agents < supervisor
    for denied in ("messages:send", "plugins:read", "reports:read"):
        assert denied not in agents


def test_scopes_are_permissions_or_presets_and_unknown_ones_are_refused():
    """A key's scopes name permissions or the presets read/send/admin; anything else is a
    400 naming the scope."""
    assert POLICY.of_scopes(("admin",)) == POLICY.everything
    assert "conversations:reply" in POLICY.of_scopes(("send",))
    assert "users:manage" not in POLICY.of_scopes(("read",))
    assert POLICY.of_scopes(("contacts:read",)) == {"contacts:read", "account:own"}
    with pytest.raises(InvalidInput, match="everything"):
        POLICY.of_scopes(("everything",))


def test_every_key_may_use_its_own_account_routes():
    """/api/auth/me works for any key, whatever its scopes: every caller holds what is
    contributed as everyone's."""
    key = key_principal(POLICY, ApiKey("key_1", "k", ("contacts:read",), "ock_1234"))
    key.require("account:own")
    with pytest.raises(Forbidden) as refused:
        key.require("conversations:read")
    assert refused.value.details["permission"] == "conversations:read"


def test_a_permission_is_contributed_once():
    """Two modules cannot both contribute the same permission name."""
    twice = PermissionSpec("greetings:read", "read greetings")
    with pytest.raises(ValueError, match="twice"):
        Policy([twice, twice])


def test_permission_names_and_presets_are_checked():
    """A permission is named ``area:action``; it joins only the read and send presets."""
    with pytest.raises(ValueError, match="contacts:read"):
        PermissionSpec("Greetings", "x")
    with pytest.raises(ValueError, match="read or send"):
        PermissionSpec("greetings:read", "x", scopes=("admin",))


def test_agents_see_their_own_and_unassigned_conversations_only():
    """check_conversation lets an agent through for their own or nobody's conversation."""
    check_conversation(agent(), None)
    check_conversation(agent(), "usr_a")
    with pytest.raises(Forbidden):
        check_conversation(agent(), "usr_b")
    check_conversation(user(Role.SUPERVISOR, "usr_s"), "usr_b")


def test_agents_assign_only_to_themselves():
    """An agent takes an unassigned conversation or gives back their own; no more."""
    check_assignment(agent(), None, "usr_a")
    check_assignment(agent(), "usr_a", None)
    with pytest.raises(Forbidden):
        check_assignment(agent(), None, "usr_b")
    check_assignment(user(Role.SUPERVISOR, "usr_s"), None, "usr_b")
