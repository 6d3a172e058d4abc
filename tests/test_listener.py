"""An idle replica on PostgreSQL is woken by NOTIFY when another process records an event,
and keeps being woken after its LISTEN connection is cut; unannounced, it polls slowly."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import anyio
import psycopg
import pytest

from bridge.store import PostgresStore
from bridge.store.base import NewDelivery
from bridge.store.listener import APPLICATION_NAME
from tests.harness import Process, bridge_config, bridge_process, free_port, sandbox_process
from tests.orders import body, shopify_order
from tests.test_fencing import ENV
from tests.test_replicas import scratch_database

FALLBACK = 6.0  # store.listen_poll_interval, long enough to tell a wake-up from a poll


def pick_up_seconds(url: str, order_id: int, *, announce: bool = True) -> float:
    """Record an order from outside the replica, as `bridge backfill` does, and time how
    long until a worker has claimed it."""

    async def record_and_time() -> float:
        store = PostgresStore(url)
        try:
            delivery = NewDelivery(
                "shopify",
                f"test:{uuid.uuid4()}",
                "acme.myshopify.com",
                "orders/create",
                {},
                body(shopify_order(order_id)),
                announce=announce,
            )
            started = time.monotonic()
            event, _ = await store.record(delivery)
            while time.monotonic() - started < FALLBACK * 3:
                now = await store.get(event.id)
                if now is not None and now.generation > 0:
                    return time.monotonic() - started
                await anyio.sleep(0.01)
            raise AssertionError(f"event {event.id} not claimed in {FALLBACK * 3} s")
        finally:
            await store.close()

    return anyio.run(record_and_time)


def cut_listeners(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchall()
    return len(rows)


@pytest.mark.slow
def test_an_idle_replica_wakes_on_notify_and_after_its_connection_drops(tmp_path: Path) -> None:
    sandbox = sandbox_process(tmp_path, free_port()).start()
    replica: Process | None = None
    try:
        with scratch_database() as url:
            config = bridge_config(
                tmp_path,
                sandbox.port,
                {"store": {"url": url, "listen_poll_interval": FALLBACK}},
            )
            replica = bridge_process(config, free_port(), ENV).start()
            time.sleep(FALLBACK + 1)  # idle: its loop now sleeps for the fallback interval
            woken = [pick_up_seconds(url, 7_400_000_000_001 + n) for n in range(3)]
            assert max(woken) < 1.0, woken
            time.sleep(FALLBACK + 1)
            polled = pick_up_seconds(url, 7_400_000_000_010, announce=False)
            assert polled > 1.0, polled  # no NOTIFY: found only by the slow poll

            assert cut_listeners(url) == 1
            time.sleep(3)  # reconnected (and woken once, finding nothing)
            time.sleep(FALLBACK + 1)
            after_cut = pick_up_seconds(url, 7_400_000_000_020)
            assert after_cut < 1.0, (after_cut, replica.output()[-2000:])
            assert "LISTEN connection lost" in replica.output()
            print(f"pick-up with NOTIFY {woken}, after a reconnect {after_cut:.3f} s,")
            print(f"without NOTIFY (fallback poll {FALLBACK} s) {polled:.3f} s")
            assert replica.stop() == 0
    finally:
        if replica is not None:
            replica.stop()
        sandbox.stop(timeout=5)
