"""Waking idle replicas: a PostgreSQL connection that LISTENs for events made due elsewhere.

The store NOTIFYs when it records or replays an event, or hands one back at a drain; every
replica's listener then wakes its worker, so an idle worker need only poll slowly as a
fallback (`store.listen_poll_interval`). A dropped connection is reopened, and while it is
down the worker polls at its normal pace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger("bridge.store.listener")

CHANNEL = "bridge_events_due"
APPLICATION_NAME = "bridge-listener"  # how pg_stat_activity names it
_RECONNECT = (0.5, 30.0)  # first and longest pause before reopening the connection


class Listener:
    """Calls `wake` on each notification, and once on every (re)connection."""

    def __init__(
        self,
        url: str,
        wake: Callable[[], None],
        *,
        check_every: float,
        hide: Callable[[str], str],
    ) -> None:
        self._url = url
        self._wake = wake
        self._check_every = check_every  # a silent connection is checked this often
        self._hide = hide  # the error text, with the URL's password hidden
        self.connected = False

    async def run(self) -> None:
        pause = _RECONNECT[0]
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                if self.connected:
                    log.warning(
                        "LISTEN connection lost, polling until it is back: %s", self._hide(str(exc))
                    )
                    pause = _RECONNECT[0]
                self.connected = False
                self._wake()  # poll now: something may be due that no one announced
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RECONNECT[1])

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=10,
            application_name=APPLICATION_NAME,
        )
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.connected = True
            self._wake()  # what was announced while the connection was down
            while True:
                async for _ in conn.notifies(timeout=self._check_every):
                    self._wake()
                await conn.execute("SELECT 1")  # a dead connection raises here
