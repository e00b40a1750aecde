"""``UNSET``: a value that was not given, as opposed to one given as null.

A PATCH body that leaves a field out changes nothing there; one that sends ``null`` clears
it. Body fields and the stores' update arguments default to ``UNSET`` to tell the two apart.
"""

from __future__ import annotations

from typing import Any, Final


class _Unset:
    """The type of :data:`UNSET`: one instance, false, and named in reprs."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final[Any] = _Unset()
"""Not given. Typed ``Any`` so that it can be the default of a field of any type."""
