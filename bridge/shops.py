"""Shops: one spelling of each shop's name."""

from __future__ import annotations

import re

_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?P<host>[^/?#]*)(?P<path>[^?#]*)")
# Either scheme's: the scheme is dropped, and a spelling must stay a spelling of itself.
_DEFAULT_PORTS = ("", "80", "443")


def normalise_shop(value: str) -> str:
    """A shop's one spelling: `ACME.myshopify.com.` → `acme.myshopify.com`.

    Case, surrounding blanks, the scheme, a default port (80, 443), trailing dots and slashes,
    a query and user info do not tell shops apart ("https://shop.example.com/" is
    "shop.example.com"); a site's path does ("shop.example/wordpress").
    """
    match = _URL.match(value.strip().lower())
    assert match is not None  # every part of the pattern is optional
    host = match["host"].rpartition("@")[2]
    name, colon, port = host.rpartition(":")
    if colon and port in _DEFAULT_PORTS:
        host = name
    host = host.rstrip(".")
    path = match["path"].strip("/")
    return f"{host}/{path}" if path else host
