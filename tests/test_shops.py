"""Shops: one spelling per shop, shop tables, and which shop a signed delivery is from."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import Settings, Source, check_runnable, check_shop_secrets, load_settings
from bridge.errors import ConfigError, InputError
from bridge.shops import (
    check_accepted,
    normalise_shop,
    order_reference,
    order_scope,
    scoped_alternate_ids,
    settle_shop,
    verify_sender,
)
from bridge.verify import SCHEMES
from tests.conftest import TESTS

BODY = (TESTS / "golden" / "shopify" / "fixture-cad-tip-and-shipping" / "body.json").read_bytes()
WOO_BODY = (
    TESTS / "golden" / "woocommerce" / "fixture-727-completed-guest-flat-rate" / "body.json"
).read_bytes()

TABLES = """
[sources.shopify]
secret_env = "SOURCE_SECRET"
[sources.shopify.shops."acme.myshopify.com"]
secret_env = "ACME_SECRET"
po_prefix = "AC-"
[sources.shopify.shops."beta.myshopify.com"]
secret_env = "BETA_SECRET"
[sources.shopify.shops."gamma.myshopify.com"]
po_prefix = "GA-"

[sources.woocommerce]
secret_env = "WOO_SECRET"
[sources.woocommerce.shops."https://shop.example.com"]
po_prefix = "SE-"
[sources.woocommerce.shops."http://localhost:8080/wordpress/"]
"""
ENV = {
    "SOURCE_SECRET": "source-secret",
    "ACME_SECRET": "acme-secret",
    "BETA_SECRET": "beta-secret",
    "WOO_SECRET": "woo-secret",
}


def settings_from(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return load_settings(str(path), ENV if env is None else env)


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Source]:
    return settings_from(tmp_path, TABLES).sources


def signed(secret: str, shop: str | None) -> dict[str, str]:
    headers = SCHEMES["shopify-hmac"].sign(
        BODY, secret + "-secret", topic="orders/create", shop=shop
    )
    return {key.lower(): value for key, value in headers.items()}


@pytest.mark.parametrize(
    ("written", "shop"),
    [
        ("acme.myshopify.com", "acme.myshopify.com"),
        # The finding's forged headers: every spelling of one shop is that shop.
        ("acme.myshopify.com.", "acme.myshopify.com"),
        ("ACME.myshopify.com..", "acme.myshopify.com"),
        (" Acme.MyShopify.com ", "acme.myshopify.com"),
        ("evil.myshopify.com", "evil.myshopify.com"),
        # X-WC-Webhook-Source is home_url('/'); the configuration may leave the scheme out.
        ("https://shop.example.com/", "shop.example.com"),
        ("https://shop.example.com", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),
        ("http://shop.example.com/", "shop.example.com"),
        ("https://shop.example.com:443/", "shop.example.com"),
        ("http://shop.example.com:80", "shop.example.com"),
        ("shop.example.com.:443", "shop.example.com"),
        ("https://shop.example.com:8443/", "shop.example.com:8443"),
        ("http://shop.example.com:443/", "shop.example.com"),
        ("http://localhost:8080/wordpress/", "localhost:8080/wordpress"),
        ("http://LOCALHOST:8080/WordPress", "localhost:8080/wordpress"),
        ("https://shop.example.com/?lang=en", "shop.example.com"),
        ("https://user@shop.example.com/", "shop.example.com"),
        ("https://[::1]:8443/", "[::1]:8443"),
        ("", ""),
    ],
)
def test_one_spelling_per_shop(written: str, shop: str) -> None:
    assert normalise_shop(written) == shop
    assert normalise_shop(shop) == shop


def test_lookalikes_stay_other_shops() -> None:
    acme = normalise_shop("acme.myshopify.com")
    for other in ("acme.myshopify.com.evil.example", "acme-myshopify.com", "evil.example/acme"):
        assert normalise_shop(other) != acme
    assert normalise_shop("shop.example/wordpress") != normalise_shop("shop.example")


def test_shop_tables_are_read_once_with_their_own_secrets(sources: dict[str, Source]) -> None:
    shopify = sources["shopify"]
    assert set(shopify.shops) == {"acme.myshopify.com", "beta.myshopify.com", "gamma.myshopify.com"}
    assert shopify.shops["acme.myshopify.com"].secrets == ("acme-secret",)
    assert shopify.shops["gamma.myshopify.com"].secrets == ()  # signs with the source's
    assert "acme-secret" not in repr(shopify) and "source-secret" not in repr(shopify)
    woo = sources["woocommerce"]
    assert set(woo.shops) == {"shop.example.com", "localhost:8080/wordpress"}
    assert woo.shops["localhost:8080/wordpress"].label == "http://localhost:8080/wordpress/"
    # Only the tables' shops are accepted, however the header spells them.
    assert shopify.accepts("acme.myshopify.com") and not shopify.accepts("evil.myshopify.com")
    assert woo.accepts(normalise_shop("https://shop.example.com/"))


def test_a_shops_po_prefix_wins_over_the_sources(sources: dict[str, Source]) -> None:
    options = sources["shopify"].options
    assert options.po_prefix_for("ACME.myshopify.com.") == "AC-"
    assert options.po_prefix_for("gamma.myshopify.com") == "GA-"
    assert options.po_prefix_for("beta.myshopify.com") == ""
    assert options.po_prefix_for(None) == ""
    assert sources["woocommerce"].options.po_prefix_for("https://shop.example.com/") == "SE-"


def test_each_shop_signs_with_its_own_secret(sources: dict[str, Source]) -> None:
    shopify, scheme = sources["shopify"], SCHEMES["shopify-hmac"]
    assert verify_sender(shopify, scheme, signed("acme", "ACME.myshopify.com.."), BODY) == (
        "acme.myshopify.com"
    )
    assert verify_sender(shopify, scheme, signed("beta", "beta.myshopify.com"), BODY) == (
        "beta.myshopify.com"
    )
    # A shop without a secret of its own signs with the source's.
    assert verify_sender(shopify, scheme, signed("source", "gamma.myshopify.com"), BODY) == (
        "gamma.myshopify.com"
    )


@pytest.mark.parametrize(
    ("secret", "shop", "says"),
    [
        ("acme", "beta.myshopify.com", ("'acme.myshopify.com'", "'beta.myshopify.com'")),
        ("beta", "acme.myshopify.com", ("'beta.myshopify.com'", "'acme.myshopify.com'")),
        ("acme", "gamma.myshopify.com", ("'acme.myshopify.com'", "'gamma.myshopify.com'")),
        ("acme", "evil.myshopify.com", ("'acme.myshopify.com'", "'evil.myshopify.com'")),
        ("source", "acme.myshopify.com", ("own secret (ACME_SECRET)", "'acme.myshopify.com'")),
    ],
)
def test_a_secret_that_contradicts_the_shop_header_is_refused(
    sources: dict[str, Source], secret: str, shop: str, says: tuple[str, ...]
) -> None:
    with pytest.raises(InputError) as caught:
        verify_sender(sources["shopify"], SCHEMES["shopify-hmac"], signed(secret, shop), BODY)
    assert (caught.value.status, caught.value.code) == (403, "shop_mismatch")
    assert all(word in caught.value.message for word in says), caught.value.message
    assert f"{secret}-secret" not in caught.value.message


def test_no_configured_secret_is_401_and_an_unlisted_shop_403(sources: dict[str, Source]) -> None:
    shopify, scheme = sources["shopify"], SCHEMES["shopify-hmac"]
    with pytest.raises(InputError) as caught:
        verify_sender(shopify, scheme, signed("stolen", "acme.myshopify.com"), BODY)
    assert caught.value.status == 401 and "does not match" in caught.value.message
    sender = verify_sender(shopify, scheme, signed("source", "evil.myshopify.com"), BODY)
    with pytest.raises(InputError) as refused:
        check_accepted(shopify, sender)
    assert (refused.value.status, refused.value.code) == (403, "shop_not_allowed")


def test_without_a_shop_header_the_shops_own_secret_names_it(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        '[sources.erp]\nmapping = "partner"\nverify = "bearer"\n'
        '[sources.erp.shops."north"]\nsecret_env = "NORTH"\n'
        '[sources.erp.shops."south"]\nsecret_env = "SOUTH"\n',
        {"NORTH": "n-token", "SOUTH": "s-token"},
    )
    erp, scheme = settings.sources["erp"], SCHEMES["bearer"]
    assert verify_sender(erp, scheme, {"authorization": "Bearer s-token"}, b"{}") == "south"
    assert check_runnable(settings, sandbox=True) == []  # no source secret needed


def test_the_signed_body_must_not_name_another_shop() -> None:
    assert settle_shop("shop.example.com", "https://shop.example.com/") == "shop.example.com"
    assert settle_shop("", "https://shop.example.com/") == "shop.example.com"
    assert settle_shop("acme.myshopify.com", None) == "acme.myshopify.com"
    with pytest.raises(InputError) as caught:
        settle_shop("evil.example", "https://shop.example.com/")
    assert (caught.value.status, caught.value.code) == (403, "shop_mismatch")
    assert "'shop.example.com'" in caught.value.message and "'evil.example'" in caught.value.message


def test_the_order_scope(sources: dict[str, Source]) -> None:
    shopify, woo = sources["shopify"], sources["woocommerce"]
    # Shopify's order ids are unique across shops: no header makes a second key.
    for forged in ("acme.myshopify.com", "ACME.myshopify.com..", "evil.myshopify.com", ""):
        assert order_scope(shopify, forged) == ""
    # WooCommerce numbers orders per site; an event recorded before the upgrade carries the
    # header as it came and still finds its order.
    assert order_scope(woo, "https://shop.example.com/") == "shop.example.com"
    assert order_scope(woo, "shop.example.com") == "shop.example.com"
    assert order_reference("", "4359400227009") == "4359400227009"
    assert order_reference("shop.example.com", "727") == "shop.example.com/727"


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (
            '[sources.shopify]\nallowed_shops = ["acme.myshopify.com"]\n'
            '[sources.shopify.shops."acme.myshopify.com"]\n',
            "sources.shopify.allowed_shops",
            "shop tables replace it",
        ),
        (
            '[sources.shopify.shops."acme.myshopify.com"]\n'
            '[sources.shopify.shops."ACME.myshopify.com."]\n',
            'sources.shopify.shops."ACME.myshopify.com."',
            'same shop as "acme.myshopify.com"',
        ),
        ('[sources.shopify.shops."https://"]\n', 'sources.shopify.shops."https://"', "not a shop"),
        (
            '[sources.shopify.shops."acme.myshopify.com"]\nsecret = "inline"\n',
            'sources.shopify.shops."acme.myshopify.com".secret',
            "unknown key",
        ),
        (
            '[sources.shopify.shops."acme.myshopify.com"]\napi_url = "acme.myshopify.com"\n',
            'sources.shopify.shops."acme.myshopify.com".api_url',
            "http(s) URL",
        ),
        (
            '[sources.shopify.shops."acme.myshopify.com"]\napi_version = "latest"\n',
            'sources.shopify.shops."acme.myshopify.com".api_version',
            "2025-10",
        ),
        (
            '[sources.shopify.shops."acme.myshopify.com"]\napi_client_id_env = "ID"\n',
            'sources.shopify.shops."acme.myshopify.com"',
            "api_client_id_env needs api_client_secret_env",
        ),
        (
            '[sources.shopify.shops."acme.myshopify.com"]\n'
            'api_token_env = "T"\napi_key_env = "K"\napi_secret_env = "S"\n',
            'sources.shopify.shops."acme.myshopify.com"',
            "different credentials",
        ),
        (
            '[sources.shopify.options]\nshop_po_prefixes = {"a" = "A-"}\n',
            "sources.shopify.options.shop_po_prefixes",
            "po_prefix",
        ),
        (
            '[sources.shopify.tag_topics]\n"orders/edited" = "edited"\n',
            "sources.shopify.tag_topics",
            "cannot be confirmed from its body",
        ),
    ],
)
def test_a_bad_shop_table_is_one_error_naming_it(
    tmp_path: Path, text: str, key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert caught.value.key == key
    assert says in caught.value.problem and "\n" not in str(caught.value)


def test_every_api_key_of_a_shop_table_is_read(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        '[sources.shopify.shops."acme.myshopify.com"]\n'
        'api_url = "https://acme.myshopify.com"\napi_version = "2025-10"\n'
        'api_client_id_env = "ACME_ID"\napi_client_secret_env = "ACME_APP_SECRET"\n'
        '[sources.woocommerce.shops."https://shop.example.com"]\n'
        'api_url = "https://shop.example.com/"\n'
        'api_key_env = "WC_KEY"\napi_secret_env = "WC_SECRET"\n'
        '[sources.woo2]\nmapping = "woocommerce"\n'
        '[sources.woo2.shops."other.example"]\napi_token_env = "TOKEN"\n',
        {"ACME_ID": "id-1", "ACME_APP_SECRET": "app-2", "WC_KEY": "ck_3", "WC_SECRET": "cs_4"},
    )
    acme = settings.sources["shopify"].shops["acme.myshopify.com"].api
    assert (acme.url, acme.version, acme.client_id, acme.client_secret) == (
        "https://acme.myshopify.com",
        "2025-10",
        "id-1",
        "app-2",
    )
    woo = settings.sources["woocommerce"].shops["shop.example.com"].api
    assert (woo.key, woo.secret, woo.token) == ("ck_3", "cs_4", None)
    assert settings.sources["woo2"].shops["other.example"].api.token is None  # TOKEN is unset
    shown = repr(settings)
    assert not any(secret in shown for secret in ("id-1", "app-2", "ck_3", "cs_4"))


def test_a_shops_missing_secret_is_named(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, TABLES, {"SOURCE_SECRET": "s", "ACME_SECRET": "a"})
    assert settings.sources["woocommerce"].secrets == ()
    assert check_runnable(settings, sandbox=True) == [
        'sources.shopify.shops."beta.myshopify.com".secret_env: '
        "environment variable BETA_SECRET is not set",
        "sources.woocommerce.secret_env: environment variable WOO_SECRET is not set",
    ]


def test_shops_sharing_a_secret_with_per_shop_order_ids_are_warned_about(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, TABLES)
    warnings = check_shop_secrets(settings)
    # Shopify's ids are unique across shops, so its shared secret (gamma's) is no risk.
    assert len(warnings) == 1
    assert warnings[0].startswith("sources.woocommerce: shops https://shop.example.com, ")
    assert "own secret_env" in warnings[0]
    allowed = settings_from(
        tmp_path,
        '[sources.woocommerce]\nallowed_shops = ["https://b.example/", "a.example"]\n',
        {"WOOCOMMERCE_WEBHOOK_SECRET": "w"},
    )
    [warning] = check_shop_secrets(allowed)
    assert warning.startswith("sources.woocommerce: shops a.example, b.example share one")


def test_check_config_refuses_shop_tables_with_allowed_shops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[sources.shopify]\nallowed_shops = ["acme.myshopify.com"]\n'
        '[sources.shopify.shops."acme.myshopify.com"]\nsecret_env = "ACME_SECRET"\n'
    )
    assert main(["check-config", "--sandbox", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bridge: configuration error: sources.shopify.allowed_shops:")
    assert "\n" not in err
    config.write_text(
        '[sources.shopify.shops."acme.myshopify.com"]\nsecret_env = "ACME_SECRET"\n'
        '[sources.shopify.shops."beta.myshopify.com"]\nsecret_env = "BETA_SECRET"\n'
    )
    monkeypatch.setenv("ACME_SECRET", "a")
    assert main(["check-config", "--sandbox", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        'sources.shopify.shops."beta.myshopify.com".secret_env: '
        "environment variable BETA_SECRET is not set"
    )
    monkeypatch.setenv("BETA_SECRET", "b")
    assert main(["check-config", "--sandbox", "--config", str(config)]) == 0


def test_check_config_warns_of_a_shared_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[sources.woocommerce.shops."https://a.example"]\n'
        '[sources.woocommerce.shops."https://b.example"]\n'
    )
    monkeypatch.setenv("WOOCOMMERCE_WEBHOOK_SECRET", "w")
    assert main(["check-config", "--sandbox", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert "configuration OK" in out.out
    assert out.err.startswith("warning: sources.woocommerce: shops https://a.example, ")


def test_alternate_ids_name_the_shop_only_where_order_ids_are_per_shop() -> None:
    ids = ["woocommerce:1001", "crm:77"]
    scoped = scoped_alternate_ids(ids, "shop.example.com", "1001")
    assert scoped == ["woocommerce:shop.example.com/1001", "crm:77"]
    assert scoped_alternate_ids(ids, "", "1001") == ids
    # An id that merely ends in the same digits is not the order's.
    assert scoped_alternate_ids(["woocommerce:11001"], "s.example", "1001") == ["woocommerce:11001"]
