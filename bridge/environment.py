"""Configuration from the environment, so a container needs no mounted file.

`BRIDGE_CONFIG_TOML` holds a whole configuration file as TOML text. `BRIDGE_<SECTION>__<KEY>`
sets one key, nested with `__` (`BRIDGE_SOURCES__SHOPIFY__OPTIONS__COMPANY_ID`), and wins over
the file. Names are case-insensitive. A value starting with `[`, `{` or `"` is JSON (lists,
tables, a quoted string); any other value is text that the key's own type converts, so
`30` is a number for `retention_days` and still text for `po_prefix`. A variable whose name
has no `__` (`BRIDGE_CONFIG`, `BRIDGE_ADMIN_TOKEN`) is not a key.

Errors name the variable and never show its value: a store URL may hold a password.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import ConfigError

PREFIX = "BRIDGE_"
WHOLE_FILE = "BRIDGE_CONFIG_TOML"
_PART = re.compile(r'"[^"]*"|[^.]+')  # a dotted key's parts; a shop's quoted name has dots


@dataclass(frozen=True)
class Overrides:
    """The keys the environment sets, by path, and which variable set each."""

    values: dict[tuple[str, ...], Any] = field(default_factory=dict)
    variables: dict[tuple[str, ...], str] = field(default_factory=dict)

    def apply(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A copy of the file's tables with every override written in."""
        merged = _copy_tables(raw)
        for path, value in sorted(self.values.items()):
            table = merged
            for depth, part in enumerate(path[:-1]):
                key = _same_key(table, part)
                child = table.setdefault(key, {})
                if not isinstance(child, dict):
                    where = ".".join(path[: depth + 1])
                    raise ConfigError(
                        where, f"{self.variables[path]} sets a key inside it, but it is not a table"
                    )
                table = child
            table[_same_key(table, path[-1])] = value
        return merged

    def variable_for(self, key: str) -> str | None:
        """The variable that set a dotted key (as errors write it), a table around it, or
        a key inside it."""
        path = tuple(part.strip('"').lower() for part in _PART.findall(key))
        if not path:  # the configuration as a whole, not a key
            return None
        inside = [name for at, name in sorted(self.variables.items()) if at[: len(path)] == path]
        while path:
            if path in self.variables:
                return self.variables[path]
            path = path[:-1]
        return inside[0] if inside else None


def read_overrides(environ: Mapping[str, str]) -> Overrides:
    """Every `BRIDGE_<SECTION>__<KEY>` variable, parsed."""
    values: dict[tuple[str, ...], Any] = {}
    variables: dict[tuple[str, ...], str] = {}
    for name, text in environ.items():
        upper = name.upper()
        if not upper.startswith(PREFIX) or "__" not in upper:
            continue
        path = tuple(upper.removeprefix(PREFIX).lower().split("__"))
        if not all(path):
            raise ConfigError(name, "an empty key between '__' separators")
        if path in variables:
            raise ConfigError(name, f"sets the same key as {variables[path]}; set it once")
        values[path] = _parse(name, text)
        variables[path] = name
    return Overrides(values, variables)


def whole_file(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The configuration `BRIDGE_CONFIG_TOML` holds, or None when it is not set."""
    text = environ.get(WHOLE_FILE)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message gives the line and column, never the text.
        raise ConfigError(WHOLE_FILE, f"is not valid TOML: {exc}") from exc


def _parse(name: str, text: str) -> Any:
    if not text.lstrip().startswith(("[", "{", '"')):
        return text
    try:
        # Numbers stay text for the key's type to read: an amount or a 64-bit id never
        # passes through float.
        return json.loads(text, parse_float=str, parse_int=str)
    except ValueError:
        raise ConfigError(
            name, 'starts like JSON ([, { or ") but is not valid JSON; lists are JSON'
        ) from None


def _same_key(table: dict[str, Any], part: str) -> str:
    """The table's own spelling of a key, compared without case (a shop's name, say)."""
    return next((key for key in table if key.lower() == part), part)


def _copy_tables(table: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _copy_tables(value) if isinstance(value, dict) else value
        for key, value in table.items()
    }
