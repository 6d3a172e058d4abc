"""The shops' own order APIs, for backfill, reconcile and the sweep: one client per platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bridge.config import Shop, Source
from bridge.errors import ConfigError
from bridge.shop_api.base import ShopClient, ShopOrder, Window
from bridge.shop_api.shopify import ClientCredentials, ShopifyClient
from bridge.shop_api.woocommerce import WooCommerceClient

__all__ = [
    "PLATFORMS",
    "Platform",
    "ShopClient",
    "ShopOrder",
    "Window",
    "open_shop_client",
    "platform_of",
    "shops_with_api",
]


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


@dataclass(frozen=True)
class Platform:
    """A shop platform: how to reach its API, and the topics its webhooks name an order by."""

    open: Callable[[str, Shop, httpx.AsyncBaseTransport | None], ShopClient]
    created_topic: str  # what a backfill records for an order the bridge never saw
    updated_topic: str  # and for one it did: it follows the tag rules, never a second invoice


# By the source's mapping: the platform whose webhooks it reads is the one whose API it asks.
PLATFORMS: dict[str, Platform] = {
    "shopify": Platform(_shopify, "orders/create", "orders/updated"),
    "woocommerce": Platform(_woocommerce, "order.created", "order.updated"),
}


def platform_of(source: Source) -> Platform:
    """The platform whose API a source's shops have; `ConfigError` for any other mapping."""
    platform = PLATFORMS.get(source.mapping.name)
    if platform is None:
        raise ConfigError(
            f"sources.{source.name}.mapping",
            f"{source.mapping.name} has no shop API the bridge can read "
            f"(only {', '.join(PLATFORMS)})",
        )
    return platform


def shops_with_api(source: Source, only: str | None = None) -> list[Shop]:
    """The source's shops that name an API (`api_url`), or the one `only` names."""
    from bridge.shops import normalise_shop

    key = f"sources.{source.name}"
    platform_of(source)
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
    return platform_of(source).open(key, shop, transport)
