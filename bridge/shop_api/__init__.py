"""The shops' own order APIs, for backfill, reconcile and the sweep: one client per platform."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bridge.config import Shop, Source
from bridge.errors import ConfigError
from bridge.shop_api.base import ShopClient, ShopOrder, Window
from bridge.shop_api.shopify import ClientCredentials, ShopifyClient
from bridge.shop_api.woocommerce import WooCommerceClient

__all__ = ["ShopClient", "ShopOrder", "Window", "open_shop_client", "shops_with_api"]


def _shopify(key: str, shop: Shop, transport: httpx.AsyncBaseTransport | None) -> ShopClient:
    api = shop.api
    assert api.url is not None
    if api.client_id and api.client_secret:
        credentials = ClientCredentials(api.client_id, api.client_secret)
        return ShopifyClient(
            shop.name, api.url, version=api.version, credentials=credentials, transport=transport
        )
    if not api.token:
        raise ConfigError(
            f"{key}.api_token_env",
            "the shop's API needs an access token (api_token_env) or client credentials "
            "(api_client_id_env, api_client_secret_env), set in the environment",
        )
    return ShopifyClient(
        shop.name, api.url, version=api.version, token=api.token, transport=transport
    )


def _woocommerce(key: str, shop: Shop, transport: httpx.AsyncBaseTransport | None) -> ShopClient:
    api = shop.api
    assert api.url is not None
    if not (api.key and api.secret):
        raise ConfigError(
            f"{key}.api_key_env",
            "the site's REST API needs a consumer key and secret (api_key_env, api_secret_env), "
            "set in the environment",
        )
    return WooCommerceClient(
        shop.name, api.url, key=api.key, secret=api.secret, transport=transport
    )


# By the source's mapping: the platform whose webhooks it reads is the one whose API it asks.
PLATFORMS: dict[str, Callable[[str, Shop, httpx.AsyncBaseTransport | None], ShopClient]] = {
    "shopify": _shopify,
    "woocommerce": _woocommerce,
}


def shops_with_api(source: Source, only: str | None = None) -> list[Shop]:
    """The source's shops that name an API (`api_url`), or the one `only` names."""
    from bridge.shops import normalise_shop

    key = f"sources.{source.name}"
    if source.mapping.name not in PLATFORMS:
        raise ConfigError(
            f"{key}.mapping",
            f"{source.mapping.name} has no shop API the bridge can read "
            f"(only {', '.join(PLATFORMS)})",
        )
    if only is not None:
        shop = source.shops.get(normalise_shop(only))
        if shop is None:
            raise ConfigError(f'{key}.shops."{only}"', "no such shop table")
        if shop.api.url is None:
            raise ConfigError(f'{key}.shops."{shop.label}".api_url', "required for the shop's API")
        return [shop]
    found = [shop for shop in source.shops.values() if shop.api.url is not None]
    if not found:
        raise ConfigError(
            f"{key}.shops",
            "no shop table names its API: add api_url and credentials to ["
            + key
            + '.shops."<shop>"]',
        )
    return found


def open_shop_client(
    source: Source, shop: Shop, *, transport: httpx.AsyncBaseTransport | None = None
) -> ShopClient:
    """A client for one shop's API, with the credentials its table named (read at start)."""
    key = f'sources.{source.name}.shops."{shop.label}"'
    return PLATFORMS[source.mapping.name](key, shop, transport)
