"""Where events live: the store interface and its backends."""

from __future__ import annotations

from bridge.config import StoreConfig
from bridge.errors import ConfigError
from bridge.store.base import Store
from bridge.store.sqlite import SQLiteStore


def open_store(config: StoreConfig) -> Store:
    """The backend `store.url` names (`sqlite:///path`, or `memory://` for tests and trials)."""
    url = config.url
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"), durability=config.durability)
    if url == "memory://":
        return SQLiteStore(":memory:", durability=config.durability)
    raise ConfigError("store.url", f"unsupported store url {url!r} (use sqlite:///path)")


__all__ = ["SQLiteStore", "Store", "open_store"]
