"""The schema: created fresh, or upgraded step by step by numbered migrations.

`bridge/store/migrations/<dialect>/` holds `schema.sql`, the current schema as a new store
gets it, and `NNNN_name.sql`: 0001 is the first release's schema, each later file upgrades
the one before. A test checks that every step applied in order ends where `schema.sql`
starts. PostgreSQL migrations only add: while a deploy rolls, replicas of the previous
release keep running on the upgraded schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from bridge.errors import StoreError
from bridge.store.base import SCHEMA_VERSION
from bridge.store.connector import LockSchema, Rule, Script, TableExists, changed, one

_MIGRATION = re.compile(r"(\d{4})_(\w+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _folder(dialect: str) -> Traversable:
    return resources.files("bridge.store").joinpath("migrations", dialect)


def migrations(dialect: str) -> list[Migration]:
    """The dialect's migrations, oldest first."""
    found = []
    for entry in _folder(dialect).iterdir():
        if match := _MIGRATION.fullmatch(entry.name):
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(found, key=lambda migration: migration.version)


def fresh_schema(dialect: str) -> str:
    return _folder(dialect).joinpath("schema.sql").read_text()


def version() -> Rule[int | None]:
    """The schema version on disk, or None when there is no schema yet."""
    if not (yield TableExists("meta")):
        return None
    row = yield from one("schema_version")
    return int(row["value"]) if row else None


def upgrade(dialect: str, target: int = SCHEMA_VERSION) -> Rule[int]:
    """Bring the schema to `target` in this transaction: fresh, or by the pending steps."""
    yield LockSchema()  # replicas starting together would race each other's DDL otherwise
    current = yield from version()
    if current is not None and current > SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {current} is newer than this release "
            f"({SCHEMA_VERSION}); upgrade the bridge"
        )
    if current is not None and current >= target:
        return current
    if current is None and target == SCHEMA_VERSION:
        yield Script(fresh_schema(dialect))
    else:
        for step in migrations(dialect):
            if (current or 0) < step.version <= target:
                yield Script(step.sql)
    yield from changed("set_schema_version", version=str(target))
    return target
