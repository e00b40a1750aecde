"""CSV files a spreadsheet opens safely: a cell that would start a formula is quoted."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes a cell starting with for a formula (CSV injection)."""


def safe_cell(text: str) -> str:
    """``text`` as a spreadsheet will not run it: a ``'`` before a formula's first character."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
