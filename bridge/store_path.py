"""Where a SQLite store lives, and the two rules that keep orders from being invoiced twice.

A relative path is relative to the configuration file's folder (the working folder when there
is no file), so every command finds the same store wherever it is run from. Earlier releases
took it relative to the working folder: a store still there is never replaced by a new, empty
one, which would invoice every order again. And only `migrate` and `serve` create a store.
"""

from __future__ import annotations

from pathlib import Path

from bridge.errors import ConfigError

SQLITE = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The file a `sqlite:///path` URL names (None for any other store)."""
    if not url.startswith(SQLITE):
        return None
    return Path(url.removeprefix(SQLITE))


def anchor_store_url(url: str, config_path: Path | None) -> str:
    """`url` with a relative SQLite path made absolute against the configuration's folder.

    Refuses when that place has no store but the working folder has one, where earlier
    releases looked: the user moves it (or names it) rather than the bridge starting afresh.
    """
    path = sqlite_path(url)
    if path is None or path.is_absolute() or config_path is None:
        return url
    anchored = config_path.parent.absolute() / path
    earlier = Path.cwd() / path
    if not anchored.exists() and earlier.exists() and earlier.resolve() != anchored.resolve():
        raise ConfigError(
            "store.url",
            f"no store at {anchored}, where the relative path {path} now points (beside the "
            f"configuration file), but there is one at {earlier}, relative to the working folder "
            "as earlier releases took it; stop the bridge and move that file (with its -wal and "
            f"-shm files, if any) to {anchored.parent}, or set store.url to {SQLITE}{earlier}",
        )
    return f"{SQLITE}{anchored}"


def require_store(url: str) -> None:
    """Refuse to go on without the SQLite file `url` names, for commands that only use it."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise ConfigError(
            "store.url",
            f"no store at {path.absolute()}: create it with `bridge migrate` "
            "(or start `bridge serve`), or point store.url at an existing one",
        )
