"""The clocks a store reads: the wall clock for schedules, a lease clock for leases.

A lease must not lapse because the wall clock stepped (an NTP correction of two minutes once
made a process take its own in-flight event back). On one host the lease clock is
CLOCK_MONOTONIC, which every process of one boot shares, tagged with the boot's id: a lease
taken in another boot has lapsed. On PostgreSQL it is the database server's clock, one clock
for every replica.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Now:
    """One reading of both clocks, taken once per transaction."""

    wall: float  # Unix seconds: received_at, next_attempt_at, history
    lease: float  # the lease clock's seconds
    boot: str  # which run of the lease clock; "" for a clock that never restarts

    def params(self) -> dict[str, object]:
        """The reading as the queries name it: `now`, `lease_now`, `boot`."""
        return {"now": self.wall, "lease_now": self.lease, "boot": self.boot}

    def since(self, moment: float | None, boot: str | None) -> float | None:
        """Lease-clock seconds since `moment`; None when it was taken in another boot."""
        if moment is None or (boot or "") != self.boot:
            return None
        return max(0.0, self.lease - moment)


@functools.cache
def boot_id() -> str:
    """This boot's id; off Linux, one per process (a restart then counts as a new boot)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return f"process-{uuid.uuid4()}"


class HostClock:
    """This host's clocks: injectable, so a test can step either one."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        boot: str | None = None,
    ) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self.boot = boot if boot is not None else boot_id()

    def now(self) -> Now:
        return Now(wall=self.wall(), lease=self.monotonic(), boot=self.boot)
