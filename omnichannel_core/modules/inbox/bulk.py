"""Mass sends through the outbox (the ``BulkSends`` service campaigns use): a message queued
like a reply, at the bulk priority, keyed so that a retried send queues nothing twice."""

from __future__ import annotations

from omnichannel_core.module import (
    BulkTarget,
    Conflict,
    Identity,
    InvalidInput,
    Message,
    OutboundRequest,
    Principal,
    Reach,
    utcnow,
)
from omnichannel_core.modules.inbox.send_policies import SendPolicies
from omnichannel_core.modules.inbox.service import Inbox
from omnichannel_core.modules.inbox.store.outbox import BULK


class InboxBulkSends:
    """The inbox's :class:`~omnichannel_core.services.BulkSends`."""

    def __init__(self, inbox: Inbox, policies: SendPolicies) -> None:
        self.inbox = inbox
        self.policies = policies

    async def reaches(self, channel: str) -> tuple[Reach, ...]:
        self.inbox.require_send(channel)
        policy = await self.policies.of(channel)
        default = policy.policy.reach(None)
        assert default is not None  # a policy without reaches has the default one
        return policy.policy.reaches or (default,)

    async def rate(self, channel: str, reach: Reach) -> float:
        policy = await self.policies.of(channel)
        return policy.pace(reach.prefix).rate

    async def target(self, channel: str, reach: Reach, contact_id: str) -> BulkTarget:
        store = self.inbox.store
        contact = await store.get_contact(contact_id)
        identity = next((each for each in contact.identities if each.channel == channel), None)
        if identity is None:
            return BulkTarget(channel, contact, reach, None, None)
        address = reach.prefix + identity.address
        conversation = await store.find_conversation(channel, identity.address)
        last_inbound_at = None
        if conversation is not None and conversation.address == address:
            last_inbound_at = conversation.last_inbound_at
        return BulkTarget(channel, contact, reach, address, last_inbound_at)

    async def send(
        self,
        target: BulkTarget,
        request: OutboundRequest,
        idempotency_key: str,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        if target.address is None:
            raise InvalidInput(f"the contact has no address on {target.channel!r}")
        stored = await self.inbox.store.find_by_idempotency_key(idempotency_key)
        if stored is not None:  # sent before (a runner killed before it noted it)
            return stored, False
        identity = target.address.removeprefix(target.reach.prefix)
        return await self.inbox.send_to(
            target.channel,
            identity,
            request,
            idempotency_key,
            reply_to=target.address if target.address != identity else None,
            priority=BULK,
            principal=principal,
        )

    async def contact_at(self, channel: str, address: str) -> str:
        identity = Identity(channel, await self.inbox.channel_address(channel, address))
        try:
            return (await self.inbox.store.create_contact([identity])).id
        except Conflict as taken:  # the identity is a contact's already
            return str(taken.details["contact_id"])

    async def backlog(self, channel: str) -> int:
        backlog = (await self.inbox.store.outbox_backlog(utcnow())).get(channel)
        if backlog is None:
            return 0
        return backlog.queued + backlog.retrying + backlog.sending
