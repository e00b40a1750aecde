"""Loaded by the servers of tests that run under libfaketime (tests/test_dashboard_day.py
puts this folder on their ``PYTHONPATH``; nothing else does).

With ``DONT_FAKE_MONOTONIC=1`` (only the wall clock moves: timers, deadlines and timeouts
keep the real monotonic clock, as they would through an NTP step), libfaketime 0.9.10's
``clock_nanosleep`` fails every absolute sleep on the monotonic clock with EINVAL, which is
how ``time.sleep`` sleeps. ``select`` with a relative timeout sleeps the same time and is
left alone, so ``time.sleep`` goes through it here.
"""

from __future__ import annotations

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
