"""The store's named queries, read once from queries.sql with their fragments included."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

_INCLUDE = re.compile(r"\{(\w+)\}")
_PARAM = "%({})s"
_LISTS = (tuple, frozenset, set)  # parameters spelled out as lists


def parse(text: str) -> dict[str, str]:
    """`-- name: x` blocks as {x: query}, comments dropped and `{fragment}`s included."""
    blocks: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("-- name: "):
            lines = blocks.setdefault(line.removeprefix("-- name: ").strip(), [])
        elif lines is not None and line.strip() and not line.lstrip().startswith("--"):
            lines.append(line.rstrip())
    raw = {name: "\n".join(body) for name, body in blocks.items()}

    def include(name: str, within: tuple[str, ...]) -> str:
        if name in within:
            raise ValueError(f"query {name} includes itself: {' → '.join(within)}")
        return _INCLUDE.sub(lambda found: include(found[1], (*within, name)), raw[name])

    return {name: include(name, ()) for name in raw}


def expand(sql: str, params: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Spell a tuple or set parameter as a list, `(%(p_0)s, …)`, for `x IN %(p)s`.

    An empty one is an empty subquery, since `IN ()` is not SQL.
    """
    if not any([isinstance(value, _LISTS) for value in params.values()]):
        return sql, dict(params)  # nearly every query: nothing to spell out
    flat: dict[str, object] = {}
    for name, value in params.items():
        if not isinstance(value, _LISTS):
            flat[name] = value
            continue
        names = [f"{name}_{n}" for n in range(len(value))]
        flat.update(zip(names, value, strict=True))
        spelled = ", ".join(_PARAM.format(each) for each in names) or "SELECT 0 WHERE 1 = 0"
        sql = sql.replace(_PARAM.format(name), f"({spelled})")
    return sql, flat


QUERIES = parse(resources.files("bridge.store").joinpath("queries.sql").read_text())
