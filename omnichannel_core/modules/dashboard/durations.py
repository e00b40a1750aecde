"""Durations kept as histograms: a first response time or a resolution time is counted in a
bin, so a period's median and 90th percentile are read from a few bins per bucket, however
many conversations it had.

A duration is taken in whole seconds (rounded down). Up to :data:`EXACT_SECONDS` each second
is a bin of its own, so those figures are exact; above it a bin spans 1% of its value
(:data:`GROWTH`), and a percentile falling in one is given as the bin's lower edge: at most
1% below the true value. An hour is then a bin 36 s wide; a day, 14 minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

EXACT_SECONDS = 600
"""Durations up to ten minutes are kept to the second."""
GROWTH = 1.01
_LOG_GROWTH = math.log(GROWTH)


def bin_of(seconds: float) -> int:
    """The bin a duration falls in (its whole seconds, up to :data:`EXACT_SECONDS`)."""
    whole = max(0, int(seconds))
    if whole <= EXACT_SECONDS:
        return whole
    return EXACT_SECONDS + 1 + int(math.log(whole / (EXACT_SECONDS + 1)) / _LOG_GROWTH)


def lower_edge(bin_index: int) -> int:
    """The shortest duration, in whole seconds, that falls in ``bin_index``."""
    if bin_index <= EXACT_SECONDS:
        return bin_index
    edge = math.ceil((EXACT_SECONDS + 1) * GROWTH ** (bin_index - EXACT_SECONDS - 1))
    while bin_of(edge - 1) == bin_index:  # float error at an edge
        edge -= 1
    while bin_of(edge) < bin_index:
        edge += 1
    return edge


def percentile(bins: Mapping[int, int], fraction: float) -> int | None:
    """The duration at ``fraction`` (0.5: the median) of the counted ones, by the
    nearest-rank method: the smallest value with at least that share of the counts at or
    below it. None when nothing was counted."""
    return percentiles(bins, [fraction])[0]


def percentiles(bins: Mapping[int, int], fractions: Sequence[float]) -> list[int | None]:
    """:func:`percentile` at each of ``fractions`` (in ascending order), in one pass over
    the bins."""
    total = sum(bins.values())
    if total == 0:
        return [None for _ in fractions]
    ranks = [max(1, math.ceil(fraction * total)) for fraction in fractions]
    found: list[int | None] = []
    seen, rank = 0, ranks[0]
    for index in sorted(bins):
        seen += bins[index]
        if seen < rank:
            continue
        while len(found) < len(ranks) and seen >= ranks[len(found)]:
            found.append(lower_edge(index))
        if len(found) == len(ranks):
            return found
        rank = ranks[len(found)]
    raise AssertionError("unreachable: the ranks add up to the total")


def merged(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The bins of several histograms added up."""
    total: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return total
