"""The sweep in process: its settings, its window, its lease on every store, and a sweep of
a shop stand-in that records what webhooks missed, once."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import Source, check_runnable, load_settings
from bridge.errors import ConfigError
from bridge.metrics import Metrics
from bridge.shop_api.shopify import ShopifyClient
from bridge.shop_sandbox import ShopSandboxSettings, create_shop_sandbox_app
from bridge.store.base import NewDelivery, Store
from bridge.sweep import SETTLE, Sweeper, sweep_window
from tests.test_store import store  # noqa: F401 - the fixture over every backend

pytestmark = pytest.mark.anyio

SHOP = "acme.myshopify.com"
HOUR = 3600.0


def settings_with(tmp_path: Path, sweep: str, shop: str = 'api_url = "http://shop"\n') -> object:
    path = tmp_path / "bridge.toml"
    path.write_text(
        f'[sources.shopify]\nsecret_env = "S"\n[sources.shopify.shops."{SHOP}"]\n'
        f'{shop}api_token_env = "T"\n[sources.shopify.sweep]\n{sweep}'
    )
    return load_settings(str(path), {"S": "s", "T": "shpat_t"})


def source_with(tmp_path: Path, sweep: str) -> Source:
    source: Source = settings_with(tmp_path, sweep).sources["shopify"]  # type: ignore[attr-defined]
    return source


# -- settings -------------------------------------------------------------------------


def test_sweep_settings_are_durations_and_off_by_default(tmp_path: Path) -> None:
    assert source_with(tmp_path, "").sweep.every == 0  # never, unless configured
    assert source_with(tmp_path, "").sweep.lookback == 2 * HOUR
    on = source_with(tmp_path, 'every = "15m"\nlookback = "3h"\n').sweep
    assert (on.every, on.lookback) == (900, 3 * HOUR)
    assert source_with(tmp_path, 'every = "0"\n').sweep.every == 0


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('every = "soon"\n', "sources.shopify.sweep.every"),
        ('every = "-5m"\n', "sources.shopify.sweep.every"),
        ('lookback = "0"\n', "sources.shopify.sweep.lookback"),
        ('lookback = "2 weeks"\n', "sources.shopify.sweep.lookback"),
        ('often = "1m"\n', "sources.shopify.sweep.often"),
    ],
)
def test_a_bad_sweep_setting_is_a_config_error_naming_its_key(
    tmp_path: Path, line: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with(tmp_path, line)
    assert caught.value.key == key


def test_a_sweep_needs_a_shop_api_with_credentials(tmp_path: Path) -> None:
    no_api = settings_with(tmp_path, 'every = "1m"\n', shop="")
    problems = check_runnable(no_api, sandbox=True)  # type: ignore[arg-type]
    assert any(p.startswith("sources.shopify.sweep:") and "api_url" in p for p in problems)
    fine = settings_with(tmp_path, 'every = "1m"\n')
    assert check_runnable(fine, sandbox=True) == []  # type: ignore[arg-type]
    path = tmp_path / "bridge.toml"
    no_token = load_settings(str(path), {"S": "s"})
    problems = check_runnable(no_token, sandbox=True)
    assert any("api_token_env" in p for p in problems)
    assert all("shpat_t" not in p for p in problems)


# -- the window -----------------------------------------------------------------------


def seconds(moment: dt.datetime | None) -> float:
    assert moment is not None
    return moment.timestamp()


def test_the_first_window_looks_back_lookback_and_stops_short_of_the_start() -> None:
    started = 1_800_000_000.0
    window = sweep_window(None, started, 2 * HOUR)
    assert window is not None and window.by == "updated"
    assert seconds(window.since) == started - 2 * HOUR
    assert seconds(window.until) == started - SETTLE == started - 120


def test_later_windows_overlap_the_cursor_by_lookback() -> None:
    started = 1_800_000_000.0
    cursor = started - 900 - SETTLE  # the last sweep, 15 minutes ago
    window = sweep_window(cursor, started, HOUR)
    assert window is not None
    assert seconds(window.since) == cursor - HOUR
    assert seconds(window.until) == started - SETTLE
    # After a day down, the window reaches back to the cursor, not only `lookback`.
    late = sweep_window(started - 86400, started, HOUR)
    assert late is not None and seconds(late.since) == started - 86400 - HOUR


def test_no_window_when_the_cursor_is_ahead_of_the_settled_end() -> None:
    started = 1_800_000_000.0
    assert sweep_window(started + 60, started, 30) is None  # a clock stepped back
    assert sweep_window(None, started, SETTLE) is None  # lookback no longer than the settle


# -- the lease, on every store --------------------------------------------------------


async def test_one_holder_at_a_time_and_each_claim_a_new_generation(store: Store) -> None:  # noqa: F811
    first = await store.claim_sweep("shopify", SHOP, "a", 30, 0)
    assert first is not None and first.cursor is None
    assert await store.claim_sweep("shopify", SHOP, "b", 30, 0) is None  # held
    assert (await store.sweep_cursor("shopify", SHOP)).holder == "a"
    other_shop = await store.claim_sweep("shopify", "other.myshopify.com", "b", 30, 0)
    assert other_shop is not None  # a lease per shop
    assert await store.end_sweep(first, 1_800_000_000.0)
    state = await store.sweep_cursor("shopify", SHOP)
    assert state.cursor == 1_800_000_000.0 and state.holder is None and state.swept_at
    second = await store.claim_sweep("shopify", SHOP, "b", 30, 0)
    assert second is not None and second.generation == first.generation + 1
    assert second.cursor == 1_800_000_000.0


async def test_a_sweep_is_not_due_again_until_every_has_passed(store: Store) -> None:  # noqa: F811
    lease = await store.claim_sweep("shopify", SHOP, "a", 30, 3600)
    assert lease is not None  # never swept: due
    assert await store.end_sweep(lease, 1_800_000_000.0)
    assert await store.claim_sweep("shopify", SHOP, "b", 30, 3600) is None  # swept just now
    assert await store.claim_sweep("shopify", SHOP, "b", 30, 0) is not None


async def test_a_failed_sweep_leaves_the_cursor_and_is_due_at_once(store: Store) -> None:  # noqa: F811
    lease = await store.claim_sweep("shopify", SHOP, "a", 30, 3600)
    assert lease is not None and await store.end_sweep(lease, 1_800_000_000.0)
    retry = await store.claim_sweep("shopify", SHOP, "a", 30, 0)
    assert retry is not None and await store.end_sweep(retry, None)  # the fetch failed
    state = await store.sweep_cursor("shopify", SHOP)
    assert state.cursor == 1_800_000_000.0 and state.holder is None


async def test_the_cursor_only_moves_forward(store: Store) -> None:  # noqa: F811
    lease = await store.claim_sweep("shopify", SHOP, "a", 30, 0)
    assert lease is not None and await store.end_sweep(lease, 2000.0)
    again = await store.claim_sweep("shopify", SHOP, "a", 30, 0)
    assert again is not None and await store.end_sweep(again, 1000.0)
    assert (await store.sweep_cursor("shopify", SHOP)).cursor == 2000.0


async def test_a_paused_holder_cannot_write_after_losing_its_lease(store: Store) -> None:  # noqa: F811
    paused = await store.claim_sweep("shopify", SHOP, "paused", 0.3, 0)
    assert paused is not None
    await asyncio.sleep(0.5)  # its lease lapses while it is paused
    taker = await store.claim_sweep("shopify", SHOP, "taker", 30, 0)
    assert taker is not None and taker.generation == paused.generation + 1
    assert not await store.renew_sweep(paused, 30)
    assert not await store.end_sweep(paused, 9_999_999_999.0)  # fenced: nothing written
    assert (await store.sweep_cursor("shopify", SHOP)).holder == "taker"
    assert await store.renew_sweep(taker, 30)
    assert await store.end_sweep(taker, 1000.0)
    assert (await store.sweep_cursor("shopify", SHOP)).cursor == 1000.0
    assert not await store.end_sweep(taker, 2000.0)  # ended once; a second end is refused


async def test_a_lease_lapsed_but_not_retaken_can_still_be_ended(store: Store) -> None:  # noqa: F811
    slow = await store.claim_sweep("shopify", SHOP, "slow", 0.1, 0)
    assert slow is not None
    await asyncio.sleep(0.2)
    assert await store.end_sweep(slow, 1000.0)  # no one swept meanwhile: its window stands


async def test_an_unknown_shop_has_no_cursor(store: Store) -> None:  # noqa: F811
    state = await store.sweep_cursor("shopify", "nobody.myshopify.com")
    assert (state.cursor, state.swept_at, state.holder) == (None, None, None)


# -- a sweep of a shop stand-in -------------------------------------------------------


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def stand_in(**faults: float) -> tuple[Any, ShopifyClient]:
    """A Shopify stand-in holding 30 orders over the last 2.4 hours, and a client of it that
    retries without pausing."""
    settings = ShopSandboxSettings(generate=30, days=0.1, bucket_size=999, fault_seed=1, **faults)
    app = create_shop_sandbox_app("shopify", settings)
    transport = httpx.ASGITransport(app=app)
    client = ShopifyClient(SHOP, "http://shop", token="shpat_t", transport=transport, sleep=no_wait)
    return app, client


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"source": "shopify", "shop": SHOP, **labels})
    return value or 0.0


async def test_a_sweep_records_what_webhooks_missed_once_and_moves_the_cursor(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = source_with(tmp_path, 'every = "1s"\nlookback = "1h"\n')
    app, client = stand_in()
    orders = app.state.book.by_id()
    started = dt.datetime.now(dt.UTC).timestamp()
    in_window = [
        o for o in orders if started - HOUR - 1 <= parse(o["updated_at"]) <= started - SETTLE
    ]
    # One of them came by webhook: the sweep must not call it new.
    heard = in_window[0]
    await store.record(
        NewDelivery("shopify", "w-1", SHOP, "orders/create", {}, b"{}", str(heard["id"]))
    )
    kicked: list[int] = []
    metrics = Metrics()
    sweeper = Sweeper(
        store, source, source.shops[SHOP], client, metrics, "me", recorded=kicked.append
    )
    tally = await sweeper.sweep_once()
    assert tally is not None and not tally.failed
    assert tally.orders == len(in_window) >= 10
    assert (tally.new, tally.updated, tally.known) == (len(in_window) - 1, 1, 0)
    assert sorted(kicked) == sorted(tally.event_ids)
    events = [e for e in await store.list_events(limit=1000) if e.delivery_key != "w-1"]
    assert {e.delivery_key for e in events} == {
        f"backfill:{SHOP}:{o['id']}:{o['updated_at']}" for o in in_window
    }
    assert all(e.topic == "orders/create" for e in events if e.order_id != str(heard["id"]))
    cursor = (await store.sweep_cursor("shopify", SHOP)).cursor
    assert cursor is not None and abs(cursor - (started - SETTLE)) < 5
    assert sample(metrics, "bridge_sweep_missed_orders_total", kind="new") == tally.new
    assert sample(metrics, "bridge_sweep_missed_orders_total", kind="changed") == 1
    assert 0 <= sample(metrics, "bridge_sweep_cursor_age_seconds") - SETTLE < 5

    assert await sweeper.sweep_once() is None  # swept under a second ago: not due
    await asyncio.sleep(1.1)
    again = await sweeper.sweep_once()
    assert again is not None and (again.new, again.updated) == (0, 0)
    assert again.known == len(in_window)  # seen again by the overlap, recorded nothing
    await client.aclose()


def parse(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def failing_sweeper(store: Store, tmp_path: Path, every: str) -> tuple[Sweeper, Metrics]:  # noqa: F811
    """A sweeper of a shop whose every answer is a 5xx."""
    source = source_with(tmp_path, f'every = "{every}"\nlookback = "1h"\n')
    _, failing = stand_in(fail_rate=1.0)
    metrics = Metrics()
    return Sweeper(store, source, source.shops[SHOP], failing, metrics, "me"), metrics


async def test_a_failing_shop_is_counted_and_retried_from_the_same_cursor(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    sweeper, metrics = failing_sweeper(store, tmp_path, "1s")
    earlier = time.time() - 600
    lease = await store.claim_sweep("shopify", SHOP, "earlier", 30, 0)
    assert lease is not None and await store.end_sweep(lease, earlier)
    await asyncio.sleep(1.1)
    tally = await sweeper.sweep_once()
    assert tally is not None and tally.failed and "shpat_t" not in tally.failed[0]
    assert sample(metrics, "bridge_sweep_fetch_failures_total") == 1
    state = await store.sweep_cursor("shopify", SHOP)
    assert state.cursor == earlier and state.holder is None
    retry = await sweeper.sweep_once()  # due at once: the failed sweep did not count
    assert retry is not None and retry.failed
    await sweeper.client.aclose()


async def test_a_sweep_loop_survives_failures_and_stops_when_told(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    sweeper, metrics = failing_sweeper(store, tmp_path, "0.05s")
    stopping = asyncio.Event()
    task = asyncio.create_task(sweeper.run(stopping))
    await asyncio.sleep(0.5)
    assert not task.done()
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert sample(metrics, "bridge_sweep_fetch_failures_total") >= 2
    assert (await store.sweep_cursor("shopify", SHOP)).holder is None
    await sweeper.client.aclose()
