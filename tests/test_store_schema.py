"""The store's schema and queries: migrations step by step equal the fresh schema, an
upgrade keeps what a first-release store holds, and queries.sql is sound."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from bridge.cli import main
from bridge.store import PostgresStore, SQLiteStore
from bridge.store.base import (
    CREATED,
    PROCESSING,
    SCHEMA_VERSION,
    STATUSES,
    Attempt,
    Event,
    NewDelivery,
    OrderKey,
)
from bridge.store.connector import Rule, Script, rows
from bridge.store.queries import QUERIES, expand, parse
from bridge.store.schema import migrations, upgrade
from bridge.store.sql import SQLStore
from tests.test_store import LEASE, scratch_schema

pytestmark = pytest.mark.anyio

DIALECTS = ("sqlite", "postgres")
STORE = Path(__file__).parent.parent / "bridge" / "store"


@pytest.fixture(params=["file", "memory", "postgres"])
async def blank(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLStore]:
    """A store with no schema yet."""
    with contextlib.ExitStack() as scratch:
        backend: SQLStore
        if request.param == "postgres":
            backend = PostgresStore(scratch.enter_context(scratch_schema()))
        else:
            backend = SQLiteStore(tmp_path / "blank.db" if request.param == "file" else ":memory:")
        yield backend
        await backend.close()


def script(sql: str) -> Rule[None]:
    yield Script(sql)


async def migrate_both(fresh: SQLStore, stepped: SQLStore) -> None:
    """`fresh` in one go, `stepped` one migration at a time from nothing."""
    try:
        await fresh.migrate()
        for version in range(1, SCHEMA_VERSION + 1):
            await stepped.connector.write(upgrade(stepped.connector.dialect, version))
            assert await stepped.schema_version() == version
    finally:
        await fresh.close()
        await stepped.close()


# -- catalogs -------------------------------------------------------------------------


def sqlite_catalog(path: Path) -> dict[str, Any]:
    """Every table's columns, indexes and foreign keys, as SQLite describes them."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        catalog: dict[str, Any] = {}
        for table in tables:
            indexes = [
                (name, unique, origin, partial, db.execute(f"PRAGMA index_info({name})").fetchall())
                for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})")
            ]
            catalog[table] = {
                "columns": db.execute(f"PRAGMA table_info({table})").fetchall(),
                "indexes": sorted(indexes),
                "foreign_keys": db.execute(f"PRAGMA foreign_key_list({table})").fetchall(),
            }
    return catalog


def postgres_catalog(url: str) -> dict[str, Any]:
    """Columns, indexes and constraints of the URL's schema, without the schema's name."""
    with psycopg.connect(url) as db:
        row = db.execute("SELECT current_schema()").fetchone()
        assert row is not None
        schema = row[0]
        columns = db.execute(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,"
            " column_default, is_identity FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
        indexes = db.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() ORDER BY indexname"
        ).fetchall()
        constraints = db.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
            " ORDER BY conname"
        ).fetchall()
    unqualified = [(table, name, text.replace(f"{schema}.", "")) for table, name, text in indexes]
    return {"columns": columns, "indexes": unqualified, "constraints": constraints}


@contextlib.contextmanager
def two_schemas() -> Iterator[tuple[str, str]]:
    with scratch_schema() as fresh, scratch_schema() as stepped:
        yield fresh, stepped


# -- migrations -----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_migrations_count_from_one_to_the_schema_version(dialect: str) -> None:
    versions = [migration.version for migration in migrations(dialect)]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert migrations(dialect)[0].name == "baseline"


def test_postgres_migrations_only_add() -> None:
    """Replicas of the previous release run on the upgraded schema while a deploy rolls."""
    removing = re.compile(r"\b(DROP|RENAME|TRUNCATE|DELETE)\b|\bTYPE\b|SET\s+NOT\s+NULL", re.I)
    for migration in migrations("postgres")[1:]:
        code = "\n".join(
            line for line in migration.sql.splitlines() if not line.lstrip().startswith("--")
        )
        assert not removing.search(code), migration.name


async def test_sqlite_step_by_step_equals_the_fresh_schema(tmp_path: Path) -> None:
    await migrate_both(SQLiteStore(tmp_path / "fresh.db"), SQLiteStore(tmp_path / "stepped.db"))
    assert sqlite_catalog(tmp_path / "fresh.db") == sqlite_catalog(tmp_path / "stepped.db")
    tables = set(sqlite_catalog(tmp_path / "fresh.db"))
    assert tables == {"events", "attempts", "orders", "meta", "sweep_cursors", "sqlite_sequence"}


async def test_postgres_step_by_step_equals_the_fresh_schema() -> None:
    with two_schemas() as (fresh_url, stepped_url):
        await migrate_both(PostgresStore(fresh_url), PostgresStore(stepped_url))
        fresh_catalog = postgres_catalog(fresh_url)
        assert fresh_catalog == postgres_catalog(stepped_url)
    tables = {table for table, *_ in fresh_catalog["columns"]}
    assert tables == {"events", "attempts", "orders", "meta", "sweep_cursors"}


INVOICE = 2**53 + 1  # exact, never through a float
RELEASE_ONE_EVENT = (
    "INSERT INTO events (source, delivery_key, shop, topic, status, received_at, updated_at,"
    " started_at, order_id, order_name, attempts, invoice_id, lease_owner, lease_until,"
    " headers, body) VALUES ('shopify', %(key)s, 'acme', 'orders/create', %(status)s, %(now)s,"
    " %(now)s, %(now)s, %(order)s, %(name)s, 1, %(invoice)s, %(owner)s, %(lease_until)s,"
    """ '{"x": "y"}', %(body)s) RETURNING id"""
)
RELEASE_ONE_ATTEMPT = (
    "INSERT INTO attempts (event_id, number, at, outcome, detail) VALUES"
    " (%(event)s, 1, %(now)s, 'created', 'invoice 9007199254740993') RETURNING number"
)
RELEASE_ONE_ORDER = (
    "INSERT INTO orders (source, shop, order_id, invoice_id, event_id, lease_until, sent,"
    " created_at) VALUES ('shopify', 'acme', %(order)s, %(invoice)s, %(event)s,"
    " %(lease_until)s, %(sent)s, %(now)s) RETURNING order_id"
)


def release_one_rows(now: float) -> Rule[tuple[int, int]]:
    """Rows as release 1 wrote them: an invoiced order, and one a worker holds (wall clock)."""
    held_until = now + 300
    (invoiced,) = yield from rows(
        RELEASE_ONE_EVENT, key="d1", status=CREATED, order="1001", name="#1001", now=now,
        invoice=INVOICE, owner=None, lease_until=None, body=b'{"id": 1}',
    )  # fmt: skip
    (held,) = yield from rows(
        RELEASE_ONE_EVENT, key="d2", status=PROCESSING, order="1002", name="#1002", now=now,
        invoice=None, owner="release-1", lease_until=held_until, body=b"{}",
    )  # fmt: skip
    yield from rows(RELEASE_ONE_ATTEMPT, event=invoiced["id"], now=now)
    yield from rows(
        RELEASE_ONE_ORDER, order="1001", invoice=INVOICE, event=invoiced["id"], sent=False,
        lease_until=None, now=now,
    )  # fmt: skip
    yield from rows(
        RELEASE_ONE_ORDER, order="1002", invoice=None, event=held["id"], sent=True,
        lease_until=held_until, now=now,
    )  # fmt: skip
    return invoiced["id"], held["id"]


async def test_an_upgrade_keeps_a_first_release_store(blank: SQLStore) -> None:
    """Rows written the way release 1 wrote them survive the upgrade and stay usable."""
    await blank.connector.write(upgrade(blank.connector.dialect, 1))
    assert await blank.schema_version() == 1
    now = time.time()
    created, processing = await blank.connector.write(release_one_rows(now))

    await blank.migrate()

    assert await blank.schema_version() == SCHEMA_VERSION
    kept = await blank.get(created)
    assert kept is not None
    assert (kept.status, kept.invoice_id, kept.order_id, kept.order_name) == (
        CREATED,
        INVOICE,
        "1001",
        "#1001",
    )
    assert kept.headers == {"x": "y"} and kept.body == b'{"id": 1}' and kept.attempts == 1
    assert kept.generation == 0 and kept.possible_duplicate is None and kept.extra_invoice_ids == []
    assert await blank.history(created) == [
        Attempt(created, 1, now, "created", "invoice 9007199254740993")
    ]
    assert await blank.invoice_for(OrderKey("shopify", "acme", "1001")) == INVOICE
    assert await blank.counts() == {CREATED: 1, PROCESSING: 1}
    taken = await blank.claim_next("release-2", LEASE)
    if blank.connector.dialect == "sqlite":
        # Release 1's leases were on the wall clock, with no boot: they count as lapsed.
        assert taken is not None and taken.id == processing and taken.generation == 1
        claim = await blank.claim_order(
            OrderKey("shopify", "acme", "1002"), taken.id, taken.generation, LEASE
        )
        assert claim.acquired and claim.sent and claim.sent_age is None
    else:
        # On PostgreSQL both releases read the server's clock: the lease still holds.
        assert taken is None


async def test_a_column_added_later_does_not_disturb_this_release(blank: SQLStore) -> None:
    await blank.migrate()
    for n in range(8):  # enough for PostgreSQL to prepare the statements
        event, _ = await blank.record(NewDelivery("shopify", f"k{n}", "", None, {}, b"{}"))
        assert await blank.get(event.id) is not None
    await blank.connector.write(script("ALTER TABLE events ADD COLUMN later TEXT"))
    assert await blank.get(event.id) == event
    assert len(await blank.list_events()) == 8
    claimed = await blank.claim_next("w", LEASE)
    assert claimed is not None and claimed.status == PROCESSING


async def test_migrate_twice_changes_nothing(blank: SQLStore) -> None:
    await blank.migrate()
    event, _ = await blank.record(NewDelivery("shopify", "k", "", None, {}, b"{}"))
    await blank.migrate()
    assert await blank.schema_version() == SCHEMA_VERSION
    assert await blank.get(event.id) == event


# -- queries.sql ----------------------------------------------------------------------


def test_queries_read_the_columns_every_event_has() -> None:
    columns = [name.strip() for name in QUERIES["event_columns"].split(",")]
    assert columns == [field.name for field in dataclasses.fields(Event)]


def test_every_literal_in_the_queries_is_a_status_or_a_meta_key() -> None:
    text = (STORE / "queries.sql").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    literals = set(re.findall(r"'([^']*)'", code))
    # And the escape character of the search patterns' LIKE (bridge/store/search.py).
    assert literals - set(STATUSES) == {"", "schema_version", "\\"}


def test_every_query_is_used() -> None:
    code = "".join(path.read_text() for path in STORE.glob("*.py"))
    text = (STORE / "queries.sql").read_text()
    for name in QUERIES:
        assert f'"{name}"' in code or f"{{{name}}}" in text, f"query {name} is not used"


def test_fragments_are_included_and_cycles_refused() -> None:
    assert all("{" not in query for query in QUERIES.values())
    queries = parse("-- name: a\nSELECT 1 WHERE {b}\n-- a comment\n-- name: b\nx = 1\n")
    assert queries == {"a": "SELECT 1 WHERE x = 1", "b": "x = 1"}
    with pytest.raises(ValueError, match="includes itself"):
        parse("-- name: a\n{b}\n-- name: b\n{a}\n")


def test_a_tuple_parameter_becomes_a_list_and_an_empty_one_an_empty_subquery() -> None:
    assert expand("id NOT IN %(skip)s", {"skip": (3, 5), "x": 1}) == (
        "id NOT IN (%(skip_0)s, %(skip_1)s)",
        {"skip_0": 3, "skip_1": 5, "x": 1},
    )
    assert expand("id NOT IN %(skip)s", {"skip": ()}) == ("id NOT IN (SELECT 0 WHERE 1 = 0)", {})


def test_bridge_events_on_an_older_store_asks_for_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def release_one_store() -> None:
        store = SQLiteStore(tmp_path / "bridge.db")
        await store.connector.write(upgrade("sqlite", 1))
        await store.close()

    anyio.run(release_one_store)
    config = tmp_path / "bridge.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "bridge.db"}"\n')
    assert main(["events", "list", "--config", str(config)]) == 1
    assert "schema is version 1" in capsys.readouterr().err
    assert main(["migrate", "--config", str(config)]) == 0
    assert main(["events", "list", "--config", str(config)]) == 0
