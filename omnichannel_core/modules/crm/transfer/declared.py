"""Custom attributes an import reads as the CRM declares them
(`omnichannel_core.modules.crm.attributes`): a mapping may name only a declared key, and
each cell becomes a value of the key's type (``value_from_text``) or the row's error."""

from __future__ import annotations

from typing import Any

from omnichannel_core.modules.crm.attributes import Attributes, value_from_text
from omnichannel_core.modules.crm.records import AttributeDefinition
from omnichannel_core.modules.crm.transfer.importing import AttributeRules
from omnichannel_core.modules.crm.transfer.rows import AttributeReader


class DeclaredAttributes:
    """An :class:`~omnichannel_core.modules.crm.transfer.rows.AttributeReader` over the
    definitions as they were read."""

    def __init__(self, definitions: dict[str, AttributeDefinition]) -> None:
        self.definitions = definitions

    def knows(self, key: str) -> bool:
        return key in self.definitions

    def read(self, key: str, text: str) -> Any:
        return value_from_text(self.definitions[key], text)


def declared_attributes(attributes: Attributes) -> AttributeRules:
    """What ``transfer_routes`` and ``transfer_jobs`` take as ``attributes``: the
    definitions, read again for each import started and each batch."""

    async def reader() -> AttributeReader:
        return DeclaredAttributes(await attributes.definitions())

    return reader
