"""The CRM of one server: the contact book (the inbox's), the CRM's own store, and what is
built on them (attribute definitions, notes, timelines, segments), as its routes and jobs
share them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from omnichannel_core.module import Contact, ContactBook, InboxReader, MediaKeeper
from omnichannel_core.modules.crm.attributes import Attributes
from omnichannel_core.modules.crm.filters import parse_filter
from omnichannel_core.modules.crm.notes import Notes
from omnichannel_core.modules.crm.segments import SegmentEvaluator
from omnichannel_core.modules.crm.store import CrmStore
from omnichannel_core.modules.crm.timeline import TimelineProjection, TimelineReader


class Crm:
    """:param contacts: gives the inbox's ContactBook (services are looked up once every
    module registered theirs, so each is given as a function).
    :param inbox: gives the InboxReader. :param media: gives the MediaKeeper."""

    def __init__(
        self,
        store: CrmStore,
        contacts: Callable[[], ContactBook],
        inbox: Callable[[], InboxReader],
        media: Callable[[], MediaKeeper],
    ) -> None:
        self.store = store
        self._contacts = contacts
        self._media = media
        self.attributes = Attributes(store)
        self.notes = Notes(store)
        self.timeline = TimelineReader(store, inbox)
        self.projection = TimelineProjection(store, inbox)

    @property
    def contacts(self) -> ContactBook:
        return self._contacts()

    @property
    def media(self) -> MediaKeeper:
        return self._media()

    def segments(self) -> SegmentEvaluator:
        """Evaluates filters over the contacts, relative times from now."""
        return SegmentEvaluator(self.contacts)

    async def audience(self, segment_id: str) -> AsyncIterator[Contact]:
        """:class:`omnichannel_core.services.Audiences`: the segment's members now."""
        segment = await self.store.get_segment(segment_id)  # NotFound before any is read
        return self.segments().iterate(parse_filter(segment.filter))
