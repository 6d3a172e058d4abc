"""Where events live: the store interface and its backends."""

from __future__ import annotations

from bridge.config import StoreConfig
from bridge.errors import ConfigError
from bridge.store.base import Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SQLiteStore
from bridge.store_path import require_store, sqlite_path


def open_store(config: StoreConfig, *, create: bool) -> Store:
    """The backend `store.url` names: `sqlite:///path`, `postgresql://user@host/db` to
    scale out, or `memory://` for tests and trials. Only a command that may `create` the
    store (`migrate`, `serve`) makes a new SQLite file; the others refuse a missing one."""
    url = config.url
    if not create:
        require_store(url)
    path = sqlite_path(url)
    if path is not None:
        return SQLiteStore(str(path), durability=config.durability)
    if url == "memory://":
        return SQLiteStore(":memory:", durability=config.durability)
    if url.startswith(("postgresql://", "postgres://")):
        # `durability` is not passed: PostgreSQL's own settings decide how commits are kept.
        return PostgresStore(url)
    scheme = url.partition("://")[0]
    raise ConfigError(
        "store.url",
        f"unsupported store url scheme {scheme!r} (use sqlite:///path or postgresql://user@host/db)",
    )


__all__ = ["PostgresStore", "SQLiteStore", "Store", "open_store"]
