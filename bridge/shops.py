"""Shops: one spelling of each shop's name, and which shop a delivery is provably from.

A shop platform signs the body, not the headers, so the shop header alone proves nothing.
A delivery's shop is taken from the header only as far as the rest agrees: the secret that
verified it (when that secret is one shop's own) and the shop the signed body names. Where a
mapping's order ids are unique across shops (Shopify's), the shop is no part of an order's
identity at all, so no header can make one order two.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bridge.errors import InputError
from bridge.verify import Scheme

if TYPE_CHECKING:
    from bridge.config import Source

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


def order_scope(source: Source, shop: str) -> str:
    """The shop part of an order's key (`OrderKey.shop`) for a delivery from `shop`.

    "" where the mapping's order ids are unique across shops, so that no shop header can
    give one order a second key; otherwise the shop, normalised.
    """
    return "" if source.mapping.unique_order_ids else normalise_shop(shop)


def order_reference(scope: str, order_id: str) -> str:
    """The order as an invoice custom field names it: "shop.example/123" where ids are per shop."""
    return f"{scope}/{order_id}" if scope else order_id


def scoped_alternate_ids(ids: list[str], scope: str, order_id: str) -> list[str]:
    """A mapping's alternate ids naming the shop too where ids are per shop.

    Two sites' orders 1001 both map to "woocommerce:1001"; as "woocommerce:shop.example/1001"
    a lookup can tell their invoices apart.
    """
    suffix = f":{order_id}"
    if not scope:
        return ids
    return [
        f"{id_[: -len(suffix)]}:{order_reference(scope, order_id)}" if id_.endswith(suffix) else id_
        for id_ in ids
    ]


def _mismatch(message: str) -> InputError:
    return InputError(403, "shop_mismatch", message)


def verify_sender(source: Source, scheme: Scheme, headers: Mapping[str, str], body: bytes) -> str:
    """Verify the signature and return the shop it proves or allows, normalised ("" if none).

    The shop header's own shop's secret is tried first, then the source's, then the other
    shops' own: 401 when none verifies, 403 when the one that does belongs to another shop.
    """
    claimed = normalise_shop(scheme.shop(headers))
    own = {name: shop.secrets for name, shop in source.shops.items() if shop.secrets}
    keyrings: list[tuple[str | None, tuple[str, ...]]] = []
    if claimed in own:
        keyrings.append((claimed, own[claimed]))
    keyrings.append((None, source.secrets))
    keyrings += [(name, secrets) for name, secrets in own.items() if name != claimed]
    refusal: InputError | None = None
    for signer, secrets in keyrings:
        try:
            scheme.verify(headers, body, secrets)
        except InputError as exc:
            refusal = refusal or exc
            continue
        if signer is None and claimed in own:
            raise _mismatch(
                f"shop {claimed!r} signs with its own secret "
                f"({source.shops[claimed].secret_env}), not with the source's"
            )
        if signer is not None and claimed and claimed != signer:
            raise _mismatch(
                f"signed with the secret of shop {signer!r}, "
                f"but {scheme.shop_header} names shop {claimed!r}"
            )
        return signer or claimed
    assert refusal is not None  # the source's own keyring is always tried
    raise refusal


def settle_shop(sender: str, named: str | None) -> str:
    """The delivery's shop, given the shop its signed body names; 403 when the two disagree."""
    body_shop = normalise_shop(named) if named else ""
    if body_shop and sender and body_shop != sender:
        raise _mismatch(f"the signed body is from shop {body_shop!r}, not from {sender!r}")
    return sender or body_shop


def check_accepted(source: Source, shop: str) -> None:
    """403 unless the source takes deliveries from `shop` (its shop tables, or allowed_shops)."""
    if not source.accepts(shop):
        raise InputError(403, "shop_not_allowed", f"shop {shop or '(none)'!r} is not allowed")
