"""Configuration: read once at the entry point, validated, then passed down.

The file is TOML (`--config`, else `$BRIDGE_CONFIG`, else `./bridge.toml`, else built-in
defaults), or TOML text in `$BRIDGE_CONFIG_TOML`; `BRIDGE_<SECTION>__<KEY>` variables win over
it (bridge/environment.py). Secrets never live in the file: it names the environment variables
that hold them, and `load_settings` reads those once, here.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from bridge import environment
from bridge.errors import ConfigError
from bridge.mapping import IdentifyingMapping, InvoiceOptions, load_mapping
from bridge.shops import normalise_shop
from bridge.store_path import anchor_store_url

DEFAULT_PATH = Path("bridge.toml")

Scheme = Literal["shopify-hmac", "woocommerce-hmac", "standard-webhooks", "bearer", "none"]

# The signature scheme each built-in mapping's senders use, so a source needs no `verify` line.
DEFAULT_SCHEME: dict[str, Scheme] = {
    "shopify": "shopify-hmac",
    "woocommerce": "woocommerce-hmac",
    "partner": "standard-webhooks",
}

# The topics that create invoices by default, per built-in mapping; other mappings take any.
DEFAULT_TOPICS: dict[str, tuple[str, ...]] = {
    "shopify": ("orders/create",),
    "woocommerce": ("order.created", "order.updated"),
}

_API_URL = re.compile(r"https?://[^/?#\s@]+(?:/[^?#\s]*)?")
_API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}|unstable")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# No wait or age the bridge knows is longer; past it a date cannot be reckoned back.
MAX_DURATION_DAYS = 36_500


def parse_duration(value: Any) -> float:
    """`"24h"`, `"30m"`, `"90s"`, `"2d"` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '24h', '30m' or a number of seconds")
    if isinstance(value, int | float):
        seconds: int | float = value  # an int too large for a float is compared as it is
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as '24h', '30m', '90s' or '2d'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds <= MAX_DURATION_DAYS * 86400:
        raise ValueError(f"{str(value)[:40]!r} is longer than {MAX_DURATION_DAYS} days")
    return float(seconds)


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Interval = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]  # 0: never


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    respond_within: float = Field(3.0, ge=0, le=60)
    max_body_bytes: int = Field(1_048_576, gt=0)
    admin_token_env: str = "BRIDGE_ADMIN_TOKEN"
    body_timeout: float = Field(30.0, gt=0)  # a body trickling in slower than this gets 408
    drain_seconds: float = Field(10.0, ge=0)  # SIGTERM: time given to work in flight
    header_timeout: float = Field(10.0, gt=0)  # a request head slower than this gets 408
    max_connections: int | None = Field(None, ge=1)  # None: 1000, or what the file limit allows


class StoreConfig(_Section):
    url: str = "sqlite:///bridge.db"
    durability: Literal["full", "normal"] = "full"
    retention_days: int = Field(30, ge=1)
    # PostgreSQL: idle workers are woken by NOTIFY and poll only this often as a fallback.
    listen_poll_interval: float = Field(15.0, gt=0)

    @model_validator(mode="after")
    def _known_scheme(self) -> StoreConfig:
        # `durability` only tunes SQLite; PostgreSQL ignores it (the server's settings decide).
        schemes = ("sqlite://", "memory://", "postgresql://", "postgres://")
        if not self.url.startswith(schemes):
            scheme = self.url.partition("://")[0]  # not the whole URL: it may hold a password
            raise ValueError(
                f"unsupported store url scheme {scheme!r}"
                " (use sqlite:///path or postgresql://user@host/db)"
            )
        return self


class LuminousConfig(_Section):
    base_url: str | None = None
    token_env: str = "LUMINOUS_API_TOKEN"
    timeout: float = Field(10.0, gt=0)
    max_concurrency: int = Field(4, ge=1, le=64)
    max_requests_per_second: float = Field(5.0, ge=0)
    cache_ttl: float = Field(600.0, ge=0)  # seconds a company or product lookup is reused
    cache_size: int = Field(10_000, ge=1)
    # After a send whose outcome is unknown, how long the bridge keeps looking the invoice up
    # before it sends again: a proxy or a slow backend can land a request long after the
    # client gave up. Shorter risks a double invoice; longer delays the order's invoice.
    unknown_outcome_wait: Duration = 60.0

    @model_validator(mode="after")
    def _wait_outlasts_a_request(self) -> LuminousConfig:
        if self.unknown_outcome_wait < self.timeout:
            raise ValueError(
                f"unknown_outcome_wait ({self.unknown_outcome_wait:g} s) must be at least "
                f"timeout ({self.timeout:g} s): a send can land until its deadline"
            )
        return self


class RetryConfig(_Section):
    max_attempts: int = Field(25, ge=1)
    base_delay: float = Field(1.0, gt=0)
    max_delay: float = Field(300.0, gt=0)
    max_age: Duration = 86400.0


class ShopConfig(_Section):
    """`[sources.X.shops."<shop>"]`: one shop of a source, its own secret and settings."""

    secret_env: str | None = None  # this shop's own webhook secret(s); else the source's
    po_prefix: str | None = None  # else the source's options.po_prefix
    # The shop's own API, for backfill and reconciliation.
    api_url: str | None = None
    api_token_env: str | None = None  # Shopify: a static Admin API access token
    api_client_id_env: str | None = None  # Shopify: a Dev Dashboard app's credentials
    api_client_secret_env: str | None = None
    api_key_env: str | None = None  # WooCommerce REST consumer key and secret
    api_secret_env: str | None = None
    api_version: str | None = None  # Shopify only

    @field_validator("api_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is not None and not _API_URL.fullmatch(value):
            raise ValueError(
                f"must be an http(s) URL such as https://acme.myshopify.com, not {value!r}"
            )
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _API_VERSION.fullmatch(value):
            raise ValueError(f"must be an API version such as '2025-10', not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> ShopConfig:
        pairs = (
            ("api_client_id_env", self.api_client_id_env, "api_client_secret_env"),
            ("api_client_secret_env", self.api_client_secret_env, "api_client_id_env"),
            ("api_key_env", self.api_key_env, "api_secret_env"),
            ("api_secret_env", self.api_secret_env, "api_key_env"),
        )
        given = {name for name, value, _ in pairs if value}
        for name, value, partner in pairs:
            if value and partner not in given:
                raise ValueError(f"{name} needs {partner} as well")
        kinds = [
            name
            for name, value in (
                ("api_token_env", self.api_token_env),
                ("api_client_id_env", self.api_client_id_env),
                ("api_key_env", self.api_key_env),
            )
            if value
        ]
        if len(kinds) > 1:
            raise ValueError(f"{' and '.join(kinds)} are different credentials; give one kind")
        return self


class SweepConfig(_Section):
    """`[sources.X.sweep]`: a periodic backfill of recently updated orders inside `serve`."""

    every: Interval = 0.0  # seconds between sweeps of each shop; 0 = never
    lookback: Duration = 7200.0  # how far back the first sweep looks, and each one overlaps


class SourceConfig(_Section):
    mapping: str | None = None
    verify: Scheme | None = None
    secret_env: str | None = None
    topics: list[str] | None = None  # default: the mapping's own (DEFAULT_TOPICS); [] = any
    strict_answers: bool | None = None
    allowed_shops: list[str] = Field(default_factory=list)
    shops: dict[str, ShopConfig] = Field(default_factory=dict)
    tag_topics: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    sweep: SweepConfig = Field(default_factory=SweepConfig)


class AlertsConfig(_Section):
    webhook_url_env: str | None = None  # names the variable holding the webhook's URL
    every: float = Field(60.0, ge=1)  # seconds between messages, at least


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    luminous: LuminousConfig = Field(default_factory=LuminousConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    sources: dict[str, SourceConfig] = Field(
        default_factory=lambda: {"shopify": SourceConfig(secret_env="SHOPIFY_WEBHOOK_SECRET")}
    )


@dataclass(frozen=True)
class ShopAPI:
    """Where a shop's own order API is and the credentials it takes (read once, never shown)."""

    url: str | None = None
    version: str | None = None
    token: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Shop:
    """One shop table, ready to use: its name normalised, its own secrets read."""

    name: str  # normalised: how deliveries and order keys name it
    label: str  # as the configuration writes it (what `bridge send` puts in the header)
    secret_env: str | None
    secrets: tuple[str, ...] = field(repr=False)  # its own; empty: it signs with the source's
    po_prefix: str | None = None
    api: ShopAPI = field(default_factory=ShopAPI)


@dataclass(frozen=True)
class Source:
    """One configured source, ready to use: mapping loaded, options validated, secrets read."""

    name: str
    mapping: IdentifyingMapping
    scheme: Scheme
    secrets: tuple[str, ...] = field(repr=False)
    topics: tuple[str, ...]
    strict_answers: bool
    allowed_shops: frozenset[str]
    options: InvoiceOptions
    shops: MappingABC[str, Shop] = field(default_factory=dict)  # by normalised name
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def accepts(self, shop: str) -> bool:
        """Whether deliveries from `shop` (normalised) are taken: its shop tables replace
        `allowed_shops`, and with neither any shop is."""
        if self.shops:
            return shop in self.shops
        return not self.allowed_shops or shop in self.allowed_shops


@dataclass(frozen=True)
class Settings:
    """Everything the bridge needs at run time, built once by `load_settings`."""

    config: Config
    sources: dict[str, Source]
    luminous_token: str | None = field(repr=False)
    admin_token: str | None = field(repr=False)
    path: Path | None = None
    origin: str = "built-in defaults"  # where it came from, for people
    alert_url: str | None = field(default=None, repr=False)


def _dotted(loc: tuple[Any, ...]) -> str:
    # A shop's name has dots of its own: `sources.shopify.shops."acme.myshopify.com".po_prefix`.
    return ".".join(f'"{part}"' if "." in str(part) else str(part) for part in loc)


def _first_error(exc: pydantic.ValidationError, prefix: str = "") -> ConfigError:
    error = exc.errors()[0]
    key = ".".join(part for part in (prefix, _dotted(error["loc"])) if part)
    problem = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        problem = "unknown key"
    return ConfigError(key, problem)


def read_config(path: Path | None, environ: MappingABC[str, str] | None = None) -> Config:
    """Parse and validate the TOML file (or `BRIDGE_CONFIG_TOML`, or the defaults when both
    are missing), with the environment's `BRIDGE_<SECTION>__<KEY>` overrides over it."""
    env: MappingABC[str, str] = {} if environ is None else environ
    raw = environment.whole_file(env) if path is None else None
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("", f"configuration file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"{path} is not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                "", f"{path} is not UTF-8 text (invalid byte at offset {exc.start})"
            ) from None
        except OSError as exc:
            raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    try:
        return Config.model_validate(environment.read_overrides(env).apply(raw or {}))
    except pydantic.ValidationError as exc:
        raise _first_error(exc) from None


def find_config_path(explicit: str | None, environ: MappingABC[str, str]) -> Path | None:
    """`--config`, else `$BRIDGE_CONFIG`, else `./bridge.toml` if it exists, else None (the
    built-in defaults, or the whole file in `$BRIDGE_CONFIG_TOML`)."""
    if explicit:
        return Path(explicit)
    if environ.get("BRIDGE_CONFIG"):
        if environment.WHOLE_FILE in environ:
            raise ConfigError(
                "", f"both BRIDGE_CONFIG and {environment.WHOLE_FILE} are set; set one of them"
            )
        return Path(environ["BRIDGE_CONFIG"])
    if environment.WHOLE_FILE in environ:
        return None
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def _secrets(env_name: str | None, environ: MappingABC[str, str]) -> tuple[str, ...]:
    if not env_name:
        return ()
    return tuple(part.strip() for part in environ.get(env_name, "").split(",") if part.strip())


def _env(name: str | None, environ: MappingABC[str, str]) -> str | None:
    return (environ.get(name) or None) if name else None


def _build_shops(
    key: str, raw: SourceConfig, scheme: Scheme, environ: MappingABC[str, str]
) -> dict[str, Shop]:
    if raw.shops and raw.allowed_shops:
        raise ConfigError(
            f"{key}.allowed_shops",
            f'shop tables replace it: list each shop as [{key}.shops."<shop>"] instead',
        )
    shops: dict[str, Shop] = {}
    for label, table in raw.shops.items():
        name, where = normalise_shop(label), f'{key}.shops."{label}"'
        if not name:
            raise ConfigError(where, "is not a shop name")
        if name in shops:
            raise ConfigError(where, f'is the same shop as "{shops[name].label}"')
        shops[name] = Shop(
            name=name,
            label=label,
            secret_env=table.secret_env,
            secrets=_secrets(table.secret_env, environ) if scheme != "none" else (),
            po_prefix=table.po_prefix,
            api=ShopAPI(
                url=table.api_url,
                version=table.api_version,
                token=_env(table.api_token_env, environ),
                client_id=_env(table.api_client_id_env, environ),
                client_secret=_env(table.api_client_secret_env, environ),
                key=_env(table.api_key_env, environ),
                secret=_env(table.api_secret_env, environ),
            ),
        )
    return shops


def _build_source(name: str, raw: SourceConfig, environ: MappingABC[str, str]) -> Source:
    key = f"sources.{name}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise ConfigError(key, "a source name is 1-64 of a-z, 0-9, '-' and '_'")
    mapping_name = raw.mapping or name
    mapping = load_mapping(mapping_name, key=f"{key}.mapping")
    scheme = raw.verify or DEFAULT_SCHEME.get(mapping.name)
    if scheme is None:
        raise ConfigError(f"{key}.verify", "required for this mapping")
    # Filled from their own tables, so the options never carry them twice.
    for option, home in (
        ("tag_topics", f"[{key}.tag_topics]"),
        ("shop_po_prefixes", f'[{key}.shops."<shop>"] as po_prefix'),
    ):
        if option in raw.options:
            raise ConfigError(f"{key}.options.{option}", f"belongs in {home}")
    shops = _build_shops(key, raw, scheme, environ)
    prefixes = {shop.name: shop.po_prefix for shop in shops.values() if shop.po_prefix is not None}
    try:
        options = mapping.options_model.model_validate(
            {**raw.options, "tag_topics": raw.tag_topics, "shop_po_prefixes": prefixes}
        )
    except pydantic.ValidationError as exc:
        own_table = exc.errors()[0]["loc"][:1] == ("tag_topics",)
        raise _first_error(exc, key if own_table else f"{key}.options") from None
    secret_env = raw.secret_env
    if scheme != "none" and not secret_env:
        secret_env = f"{name.upper().replace('-', '_')}_WEBHOOK_SECRET"
    strict = raw.strict_answers if raw.strict_answers is not None else mapping.name == "partner"
    return Source(
        name=name,
        mapping=mapping,
        scheme=scheme,
        secrets=_secrets(secret_env, environ) if scheme != "none" else (),
        topics=tuple(raw.topics)
        if raw.topics is not None
        else DEFAULT_TOPICS.get(mapping.name, ()),
        strict_answers=strict,
        allowed_shops=frozenset(normalise_shop(shop) for shop in raw.allowed_shops),
        options=options,
        shops=shops,
        sweep=raw.sweep,
    )


def secret_env_name(config: Config, source: str) -> str | None:
    """The environment variable that holds a source's signing secret(s)."""
    raw = config.sources[source]
    if raw.secret_env:
        return raw.secret_env
    return f"{source.upper().replace('-', '_')}_WEBHOOK_SECRET"


def load_settings(
    explicit_path: str | None = None,
    environ: MappingABC[str, str] | None = None,
) -> Settings:
    """Find, read and validate the configuration, and read the secrets it names; once."""
    env = os.environ if environ is None else environ
    overrides = environment.read_overrides(env)
    try:
        path = find_config_path(explicit_path, env)
        config = read_config(path, env)
        store_url = anchor_store_url(config.store.url, path)
        config = config.model_copy(
            update={"store": config.store.model_copy(update={"url": store_url})}
        )
        sources = {name: _build_source(name, raw, env) for name, raw in config.sources.items()}
    except ConfigError as exc:
        variable = overrides.variable_for(exc.key)
        if variable is None:
            raise
        raise ConfigError(exc.key, f"{exc.problem} (set by {variable})") from None
    luminous_token = env.get(config.luminous.token_env) or None
    admin_token = env.get(config.server.admin_token_env) or None
    return Settings(
        config=config,
        sources=sources,
        luminous_token=luminous_token,
        admin_token=admin_token,
        path=path,
        origin=_origin(path, env, overrides),
        alert_url=_env(config.alerts.webhook_url_env, env),
    )


def _origin(
    path: Path | None, environ: MappingABC[str, str], overrides: environment.Overrides
) -> str:
    base = (
        str(path) if path else environment.WHOLE_FILE if environment.WHOLE_FILE in environ else ""
    )
    variables = ", ".join(sorted(overrides.variables.values()))
    return " + ".join(part for part in (base, variables) if part) or "built-in defaults"


def check_runnable(settings: Settings, *, sandbox: bool) -> list[str]:
    """Problems that stop `serve`, as `key: problem` lines (empty when it can run)."""
    problems = []
    if not sandbox:
        if not settings.config.luminous.base_url:
            problems.append("luminous.base_url: required (or run with --sandbox)")
        if not settings.luminous_token:
            problems.append(
                f"luminous.token_env: environment variable "
                f"{settings.config.luminous.token_env} is not set"
            )
    for name, source in settings.sources.items():
        signs = source.scheme != "none"
        # Shops that all have secrets of their own do not need the source's.
        own = bool(source.shops) and all(shop.secret_env for shop in source.shops.values())
        if signs and not source.secrets and not own:
            env_name = secret_env_name(settings.config, name)
            problems.append(
                f"sources.{name}.secret_env: environment variable {env_name} is not set"
            )
        for shop in source.shops.values():
            if signs and shop.secret_env and not shop.secrets:
                problems.append(
                    f'sources.{name}.shops."{shop.label}".secret_env: '
                    f"environment variable {shop.secret_env} is not set"
                )
        fixed = source.options.company == "fixed"
        if fixed and source.options.company_id is None and not sandbox:
            problems.append(f"sources.{name}.options.company_id: required with company = 'fixed'")
    from bridge.sweep import sweep_problems  # it reads shop tables this module builds

    return problems + sweep_problems(settings)


def check_shop_secrets(settings: Settings) -> list[str]:
    """Shops that cannot be told apart by their secret, as `key: warning` lines.

    Where order ids are per shop, a delivery's shop must be proved; a secret several shops
    share proves none, and then only a body that names its shop does.
    """
    warnings = []
    for name, source in settings.sources.items():
        if source.mapping.unique_order_ids:
            continue
        sharing: dict[tuple[str, ...], list[str]] = {}
        for shop in source.shops.values():
            sharing.setdefault(shop.secrets or source.secrets, []).append(shop.label)
        for allowed in sorted(source.allowed_shops):
            sharing.setdefault(source.secrets, []).append(allowed)
        for secrets, labels in sharing.items():
            if secrets and len(labels) > 1:
                warnings.append(
                    f"sources.{name}: shops {', '.join(labels)} share one webhook secret and "
                    f"{source.mapping.name} order ids are per shop, so a delivery whose body "
                    "does not name its shop could be posted again as another of them; "
                    "give each shop its own secret_env"
                )
    return warnings
