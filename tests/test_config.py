"""Configuration: defaults, one-line errors naming the key, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import check_runnable, load_settings, parse_duration
from bridge.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return str(path)


def test_defaults_serve_one_shopify_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {"SHOPIFY_WEBHOOK_SECRET": "s1, s2"})
    assert settings.path is None
    assert settings.config.store.url == "sqlite:///bridge.db"
    assert settings.config.server.respond_within == 3.0
    assert settings.config.retry.max_age == 86400
    shopify = settings.sources["shopify"]
    assert shopify.scheme == "shopify-hmac"
    assert shopify.secrets == ("s1", "s2")
    assert shopify.topics == ("orders/create",)
    assert shopify.strict_answers is False


def test_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bridge.toml").write_text("[server]\nrespond_within = 1.0\n")
    other = tmp_path / "other.toml"
    other.write_text("[server]\nrespond_within = 2.0\n")
    assert load_settings(None, {}).config.server.respond_within == 1.0
    env = {"BRIDGE_CONFIG": str(other)}
    assert load_settings(None, env).config.server.respond_within == 2.0
    assert (
        load_settings(str(other), {"BRIDGE_CONFIG": "missing.toml"}).config.server.respond_within
        == 2.0
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nrespond_within = 'soon'\n", "server.respond_within"),
        ("[server]\nrespnd_within = 1\n", "server.respnd_within"),
        ("[retry]\nmax_age = 'forever'\n", "retry.max_age"),
        ("[store]\nurl = 'mysql://x'\n", "store"),
        ("[store]\ndurability = 'sometimes'\n", "store.durability"),
        ("[sources.shopify]\nverify = 'md5'\n", "sources.shopify.verify"),
        ("[sources.shop]\nmapping = 'nope'\n", "sources.shop.mapping"),
        ("[sources.shop]\nmapping = 'json:loads'\n", "sources.shop.mapping"),
        ("[sources.shopify.options]\ncompany_id = 'acme'\n", "sources.shopify.options.company_id"),
        ("[sources.shopify.options]\ncolour = 'red'\n", "sources.shopify.options.colour"),
        ("[sources.'Bad Name']\nmapping = 'shopify'\n", "sources.Bad Name"),
    ],
)
def test_a_bad_key_is_one_error_naming_it(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), {})
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.toml"), {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[server\n"), {})
    latin = tmp_path / "latin-1.toml"
    latin.write_bytes("[server]\n# café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin-1.toml is not UTF-8 text \(invalid byte at"):
        load_settings(str(latin), {})
    with pytest.raises(ConfigError, match=r"cannot read .*: Is a directory"):
        load_settings(str(tmp_path), {})


def test_check_runnable_names_missing_secrets_and_luminous(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[sources.shopify]\n"), {})
    problems = check_runnable(settings, sandbox=False)
    assert "luminous.base_url: required (or run with --sandbox)" in problems
    assert any("LUMINOUS_API_TOKEN" in p for p in problems)
    assert any("SHOPIFY_WEBHOOK_SECRET" in p for p in problems)
    assert any("company_id" in p for p in problems)
    sandboxed = check_runnable(settings, sandbox=True)
    assert sandboxed == [
        "sources.shopify.secret_env: environment variable SHOPIFY_WEBHOOK_SECRET is not set"
    ]


def test_secrets_are_not_in_the_settings_repr(tmp_path: Path) -> None:
    env = {
        "SHOPIFY_WEBHOOK_SECRET": "hush-1",
        "LUMINOUS_API_TOKEN": "tok-9",
        "BRIDGE_ADMIN_TOKEN": "adm-3",
    }
    settings = load_settings(None, env)
    text = repr(settings)
    assert "tok-9" not in text and "adm-3" not in text
    assert settings.luminous_token == "tok-9" and settings.admin_token == "adm-3"


@pytest.mark.parametrize(
    ("value", "seconds"), [("24h", 86400), ("30m", 1800), ("90s", 90), ("2d", 172800), (15, 15)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_bad_duration() -> None:
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        parse_duration(True)


@pytest.mark.parametrize("value", ["36501d", "1" + "0" * 30 + "h", float("inf"), 10**400])
def test_a_duration_past_the_longest_the_bridge_takes_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="longer than 36500 days"):
        parse_duration(value)
    assert parse_duration("36500d") == 36500 * 86400
