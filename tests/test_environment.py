"""Configuration from the environment: BRIDGE_<SECTION>__<KEY> over the file, a whole file in
BRIDGE_CONFIG_TOML, and errors that name the variable but never show its value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError

FILE = """
[server]
respond_within = 1.0

[luminous]
base_url = "https://file.example/external/api/v1"

[sources.shopify]
secret_env = "SHOPIFY_WEBHOOK_SECRET"

[sources.shopify.shops."Acme.myshopify.com"]
po_prefix = "FILE-"
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bridge.toml"
    path.write_text(FILE)
    return str(path)


def test_variables_win_over_the_file_and_take_the_keys_types(config_file: str) -> None:
    settings = load_settings(
        config_file,
        {
            "BRIDGE_LUMINOUS__BASE_URL": "http://127.0.0.1:9/external/api/v1",
            "BRIDGE_SERVER__RESPOND_WITHIN": "5",
            "bridge_store__durability": "normal",  # names are case-insensitive
            "BRIDGE_STORE__RETENTION_DAYS": "7",
            "BRIDGE_RETRY__MAX_AGE": "2h",
            "BRIDGE_SOURCES__SHOPIFY__TOPICS": '["orders/create", "orders/paid"]',
            "BRIDGE_SOURCES__SHOPIFY__STRICT_ANSWERS": "true",
            "BRIDGE_SOURCES__SHOPIFY__OPTIONS__COMPANY_ID": "9007199254740993",  # 2**53 + 1
            "BRIDGE_SOURCES__SHOPIFY__OPTIONS__PO_PREFIX": "2024",
            "BRIDGE_SOURCES__SHOPIFY__OPTIONS__TAGS": '["web", 7]',
        },
    )
    config = settings.config
    assert config.luminous.base_url == "http://127.0.0.1:9/external/api/v1"
    assert config.server.respond_within == 5.0
    assert (config.store.durability, config.store.retention_days) == ("normal", 7)
    assert config.retry.max_age == 7200
    shopify = settings.sources["shopify"]
    assert shopify.topics == ("orders/create", "orders/paid")
    assert shopify.strict_answers is True
    # A 64-bit id is exact (never through float), and digits stay text where text is wanted.
    assert shopify.options.company_id == 2**53 + 1
    assert shopify.options.po_prefix == "2024"
    assert shopify.options.tags == ["web", "7"]
    assert "BRIDGE_SERVER__RESPOND_WITHIN" in settings.origin
    assert settings.origin.startswith(config_file)


def test_a_variable_reaches_a_table_the_file_spells_in_another_case(config_file: str) -> None:
    settings = load_settings(
        config_file, {"BRIDGE_SOURCES__SHOPIFY__SHOPS__ACME.MYSHOPIFY.COM__PO_PREFIX": "AC-"}
    )
    (shop,) = settings.sources["shopify"].shops.values()
    assert (shop.label, shop.po_prefix) == ("Acme.myshopify.com", "AC-")


def test_a_key_inside_a_value_is_refused(config_file: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file, {"BRIDGE_SERVER__RESPOND_WITHIN__SECONDS": "2"})
    assert caught.value.key == "server.respond_within"
    assert "BRIDGE_SERVER__RESPOND_WITHIN__SECONDS sets a key inside it" in str(caught.value)


def test_a_missing_file_is_not_blamed_on_a_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(str(tmp_path / "nope.toml"), {"BRIDGE_STORE__URL": "memory://"})
    assert "BRIDGE_STORE__URL" not in str(caught.value)


def test_variables_that_are_not_keys_are_left_alone(config_file: str) -> None:
    settings = load_settings(
        config_file, {"BRIDGE_ADMIN_TOKEN": "t0ken", "BRIDGE_TEST_POSTGRES": "1"}
    )
    assert settings.admin_token == "t0ken"
    assert settings.config.server.respond_within == 1.0


def test_a_whole_file_in_bridge_config_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bridge.toml").write_text("[server]\nrespond_within = 9.0\n")  # not read
    settings = load_settings(
        None,
        {
            "BRIDGE_CONFIG_TOML": FILE,
            "BRIDGE_SERVER__RESPOND_WITHIN": "2",
            "SHOPIFY_WEBHOOK_SECRET": "s",
        },
    )
    assert settings.path is None
    assert settings.origin == "BRIDGE_CONFIG_TOML + BRIDGE_SERVER__RESPOND_WITHIN"
    assert settings.config.server.respond_within == 2.0
    assert settings.config.luminous.base_url == "https://file.example/external/api/v1"
    assert settings.sources["shopify"].secrets == ("s",)
    # A store with no file around it stays in the working folder.
    assert settings.config.store.url == "sqlite:///bridge.db"
    # --config still wins: the command line is the most explicit.
    other = tmp_path / "other.toml"
    other.write_text("[server]\nrespond_within = 4.0\n")
    assert load_settings(str(other), {"BRIDGE_CONFIG_TOML": FILE}).config.server.respond_within == 4


def test_bridge_config_and_bridge_config_toml_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both BRIDGE_CONFIG and BRIDGE_CONFIG_TOML"):
        load_settings(None, {"BRIDGE_CONFIG": str(tmp_path / "x.toml"), "BRIDGE_CONFIG_TOML": ""})


SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize(
    ("variable", "value", "key", "problem"),
    [
        ("BRIDGE_STORE__URL", f"mysql://bridge:{SECRET}@db/bridge", "store", "unsupported"),
        ("BRIDGE_SERVER__RESPND_WITHIN", SECRET, "server.respnd_within", "unknown key"),
        ("BRIDGE_SERVER__RESPOND_WITHIN", SECRET, "server.respond_within", "number"),
        (
            "BRIDGE_SOURCES__SHOPIFY__TOPICS",
            f"[{SECRET}",
            "BRIDGE_SOURCES__SHOPIFY__TOPICS",
            "JSON",
        ),
        ("BRIDGE_SOURCES__SHOPIFY__TOPICS", SECRET, "sources.shopify.topics", "list"),
        ("BRIDGE_SOURCES__SHOPIFY__OPTIONS__COMPANY_ID", SECRET, "options.company_id", "integer"),
        ("BRIDGE_STORE____URL", SECRET, "BRIDGE_STORE____URL", "empty key"),
        ("BRIDGE_STORE__URL__PASSWORD", SECRET, "store.url", "valid string"),
        ("BRIDGE_CONFIG_TOML", f"[server\n{SECRET}", "BRIDGE_CONFIG_TOML", "not valid TOML"),
    ],
)
def test_an_error_names_the_variable_and_never_its_value(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    key: str,
    problem: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {variable: value})
    message = str(caught.value)
    assert key in caught.value.key
    assert problem in message
    assert variable in message
    assert SECRET not in message


def test_two_spellings_of_one_key_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="sets the same key as"):
        load_settings(None, {"BRIDGE_STORE__URL": "memory://", "bridge_store__url": "memory://"})


def test_a_json_amount_stays_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.environment import read_overrides

    overrides = read_overrides({"BRIDGE_SOURCES__X__OPTIONS__LIMITS": '{"max": 0.1, "n": 3}'})
    value = overrides.values[("sources", "x", "options", "limits")]
    assert value == {"max": "0.1", "n": "3"}
    assert Decimal(value["max"]) == Decimal("0.1")
