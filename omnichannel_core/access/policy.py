"""The permission matrix, in one place: what each role and each API key scope may do.

Every route declares the permission each of its methods needs (``permissions`` on the
resource; a channel's own routes name theirs in ``ChannelRoute.permission``); the
authorization middleware checks it against the caller's :class:`Principal`. Beyond the
matrix, three rules:

- *which* records: an agent sees and works only the conversations assigned to them or to
  nobody. Every route that hands out a conversation or a message, the core's and a
  channel's own, asks :func:`visible_conversation` or :func:`check_message_visible`;
- the same rule for realtime events (:func:`event_view`);
- an agent may assign a conversation only to themselves (:func:`check_assignment`);
- nobody grants more than they hold: a key, a user or a role given, or a user changed, may
  not have a permission the caller lacks (:func:`check_grant`), so a key with
  ``api_keys:manage`` alone cannot mint an admin key.

Nothing else in the code decides who may do what.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from omnichannel_core.access.records import Role
from omnichannel_core.errors import Forbidden, InvalidInput
from omnichannel_core.events.records import EventType

if TYPE_CHECKING:
    from omnichannel_core.events.records import Event
    from omnichannel_core.models import Conversation, Message
    from omnichannel_core.store import Store


class Permission(enum.StrEnum):
    OWN_ACCOUNT = "account:own"
    """One's own account: who am I, log out, change my password. Every caller has it."""
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_WRITE = "conversations:write"
    """Status, assignment, marking read."""
    CONVERSATIONS_REPLY = "conversations:reply"
    MESSAGES_SEND = "messages:send"
    """Sending to any address through a channel's own routes, outside a conversation."""
    CHANNELS_READ = "channels:read"
    """Channel health."""
    PLUGINS_READ = "plugins:read"
    REPORTS_READ = "reports:read"
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    SETTINGS_MANAGE = "settings:manage"


ALL_PERMISSIONS = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: ALL_PERMISSIONS,
    Role.SUPERVISOR: frozenset(
        {
            Permission.OWN_ACCOUNT,
            Permission.CONTACTS_READ,
            Permission.CONTACTS_WRITE,
            Permission.CONVERSATIONS_READ,
            Permission.CONVERSATIONS_WRITE,
            Permission.CONVERSATIONS_REPLY,
            Permission.MESSAGES_SEND,
            Permission.CHANNELS_READ,
            Permission.PLUGINS_READ,
            Permission.REPORTS_READ,
            Permission.USERS_READ,
        }
    ),
    Role.AGENT: frozenset(
        {
            Permission.OWN_ACCOUNT,
            Permission.CONTACTS_READ,
            Permission.CONTACTS_WRITE,
            Permission.CONVERSATIONS_READ,
            Permission.CONVERSATIONS_WRITE,
            Permission.CONVERSATIONS_REPLY,
            Permission.CHANNELS_READ,
            Permission.USERS_READ,
        }
    ),
}

# Scope names an API key may be given: each permission by name, and three presets.
SCOPE_PRESETS: dict[str, frozenset[Permission]] = {
    "read": frozenset(
        {
            Permission.CONTACTS_READ,
            Permission.CONVERSATIONS_READ,
            Permission.CHANNELS_READ,
            Permission.PLUGINS_READ,
            Permission.REPORTS_READ,
        }
    ),
    "send": frozenset(
        {Permission.CONVERSATIONS_REPLY, Permission.MESSAGES_SEND, Permission.CHANNELS_READ}
    ),
    "admin": ALL_PERMISSIONS,
}


def scope_permissions(scopes: tuple[str, ...]) -> frozenset[Permission]:
    """The permissions a key with these scopes has; raise InvalidInput naming an unknown
    scope."""
    granted: set[Permission] = set()
    for scope in scopes:
        if scope in SCOPE_PRESETS:
            granted |= SCOPE_PRESETS[scope]
        elif scope in Permission._value2member_map_:
            granted.add(Permission(scope))
        else:
            known = ", ".join([*SCOPE_PRESETS, *(p.value for p in Permission)])
            raise InvalidInput(f"unknown scope {scope!r}; known scopes: {known}", field="scopes")
    return frozenset(granted)


@attrs.frozen
class Principal:
    """Who is making a request, and what they may do."""

    kind: str
    """``user`` or ``api_key``."""
    id: str
    name: str
    permissions: frozenset[Permission]
    role: Role | None = None
    """A user's role; None for a key."""
    session_id: str | None = None

    @classmethod
    def of_user(cls, user_id: str, name: str, role: Role, session_id: str) -> Principal:
        return cls("user", user_id, name, ROLE_PERMISSIONS[role], role, session_id)

    @classmethod
    def of_api_key(cls, key_id: str, name: str, scopes: tuple[str, ...]) -> Principal:
        permissions = scope_permissions(scopes) | {Permission.OWN_ACCOUNT}
        return cls("api_key", key_id, name, permissions)

    @property
    def is_agent(self) -> bool:
        return self.role is Role.AGENT

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(
                f"this {self.description} may not do this: it needs the {permission.value!r}"
                " permission",
                permission=permission.value,
            )

    @property
    def description(self) -> str:
        """``agent user``, ``API key``...: the caller, as error messages name it."""
        return f"{self.role.value} user" if self.role is not None else "API key"


def check_grant(actor: Principal, permissions: frozenset[Permission], what: str) -> None:
    """Refuse to give, or to act on, ``what`` (a key, a user, a role) holding a permission
    ``actor`` lacks; the error names the first missing permission."""
    missing = sorted(permission.value for permission in permissions - actor.permissions)
    if missing:
        raise Forbidden(
            f"this {actor.description} may not act on {what}, which would hold permissions it"
            f" lacks: {', '.join(missing)}",
            permission=missing[0],
        )


def check_conversation(principal: Principal, assignee: str | None) -> None:
    """An agent may see and work a conversation only when it is theirs or nobody's."""
    if principal.is_agent and assignee not in (None, principal.id):
        raise Forbidden(
            "agents see only conversations assigned to them or to nobody", permission="agent"
        )


def check_assignment(principal: Principal, current: str | None, new: str | None) -> None:
    """An agent may take an unassigned conversation, or give back their own; no more."""
    if not principal.is_agent or new == current:
        return
    if new not in (None, principal.id):
        raise Forbidden("agents may assign conversations only to themselves")


async def visible_conversation(
    store: Store, principal: Principal, conversation_id: str
) -> Conversation:
    """The conversation, if ``principal`` may see it (an agent: theirs or nobody's); else
    raise Forbidden, or NotFound for an unknown id."""
    conversation = await store.get_conversation(conversation_id)
    check_conversation(principal, conversation.assignee)
    return conversation


async def check_message_visible(store: Store, principal: Principal, message: Message) -> None:
    """Raise Forbidden unless ``principal`` may see the conversation ``message`` is in."""
    if principal.is_agent:  # everyone else sees every conversation
        await visible_conversation(store, principal, message.conversation_id)


class EventView(enum.Enum):
    """What a stream is told of one event."""

    HIDDEN = "hidden"
    FULL = "full"
    """The event with its record as it is now."""
    WITHDRAWN = "withdrawn"
    """Only that the conversation left the caller's view (its id, status and assignee): an
    agent whose conversation was given to someone else, so their client can drop it."""


def event_view(principal: Principal, event: Event, assignee_now: str | None) -> EventView:
    """What a stream of ``principal`` is told of ``event``, whose conversation is assigned
    to ``assignee_now`` now (None: nobody). Contact events need ``contacts:read``; the others
    ``conversations:read`` and, for an agent, a conversation that was theirs or nobody's
    around the change (``event.assignees``) *and* is so now, as the REST API checks: a
    stream replayed from an old cursor must not show what the API would refuse."""
    if event.conversation_id is None:
        allowed = Permission.CONTACTS_READ in principal.permissions
        return EventView.FULL if allowed else EventView.HIDDEN
    if Permission.CONVERSATIONS_READ not in principal.permissions:
        return EventView.HIDDEN
    if not principal.is_agent:
        return EventView.FULL
    visible = (None, principal.id)
    if not any(assignee in visible for assignee in event.assignees):
        return EventView.HIDDEN
    if assignee_now in visible:
        return EventView.FULL
    if event.type is EventType.CONVERSATION_UPDATED:
        return EventView.WITHDRAWN
    return EventView.HIDDEN
