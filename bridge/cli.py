"""The `bridge` command: a thin layer over the configuration, the store and the app.

Exit codes: 0 success, 1 the operation failed (for `send`: a non-2xx answer), 2 bad usage,
bad configuration or invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bridge import __version__, arguments
from bridge.arguments import Parser
from bridge.config import (
    ServerConfig,
    Settings,
    Source,
    check_runnable,
    check_shop_secrets,
    load_settings,
)
from bridge.errors import BridgeError, ConfigError

Command = Callable[[argparse.Namespace], int]

SANDBOX_TOKEN = "sandbox"


class UsageError(BridgeError):
    """Bad input on the command line (exit 2)."""


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None)
    if path and "\x00" in path:
        raise ConfigError("", f"--config {path!r}: a file name cannot hold a NUL")
    try:
        return load_settings(path)
    except OSError as exc:  # a folder, unreadable, …; a missing file is a ConfigError already
        raise ConfigError("", f"cannot read {exc.filename or path}: {exc.strerror}") from exc


def _print_json(value: Any) -> None:
    from bridge.wire import dumps

    sys.stdout.write(dumps(value, indent=True).decode() + "\n")


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _with_defaults(settings: Settings, **defaults: Any) -> Settings:
    """Sources that do not set these options get them (for the sandbox and dry runs)."""
    sources = {}
    for name, source in settings.sources.items():
        unset = {
            key: value
            for key, value in defaults.items()
            if key not in source.options.model_fields_set
            and not (key == "company_id" and source.options.company_id is not None)
        }
        options = source.options.model_copy(update=unset)
        sources[name] = dataclasses.replace(source, options=options)
    return dataclasses.replace(settings, sources=sources)


def _configure_logging(*, quiet: bool = False) -> None:
    """INFO for the service; `quiet` (one-shot commands): warnings only, so their output reads."""
    from bridge import logs

    logs.configure(sys.stderr, logging.WARNING if quiet else logging.INFO)


# -- serve / sandbox ---------------------------------------------------------


def _exit_drained(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run_server(app: Any, host: str, port: int, config: ServerConfig) -> None:
    """Serve until SIGTERM or Ctrl-C; a SIGTERM that drained cleanly exits 0.

    The server drains on SIGTERM, then sends the signal again to whatever handler was there
    before it; with the default one the process would die by the signal (exit 143) after a
    clean drain, which orchestrators report as a failure.
    """
    from bridge.server import serve, server_limits

    limits = server_limits(config)
    signal.signal(signal.SIGTERM, _exit_drained)
    serve(app, host, port, limits)


def _prepare_store(settings: Settings) -> None:
    """Create or upgrade the schema before serving, so a store that fails says so in a line."""
    from bridge.store import open_store

    async def run() -> None:
        store = open_store(settings.config.store, create=True)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    from bridge.app import create_app

    settings = _settings(args)
    problems = check_runnable(settings, sandbox=args.sandbox)
    if problems:
        raise ConfigError("", "; ".join(problems))
    _prepare_store(settings)
    _configure_logging()
    sandbox_routes = None
    luminous_url = None
    token = None
    if args.sandbox:
        from bridge.sandbox import Sandbox, SandboxSettings

        sandbox = Sandbox(SandboxSettings(auto_products=True))
        sandbox_routes = sandbox.routes()
        luminous_url = f"http://{_connect_host(args.host)}:{args.port}/external/api/v1"
        token = settings.luminous_token or SANDBOX_TOKEN
        # The sandbox's default company, and products created on the fly, unless configured.
        settings = _with_defaults(
            settings, company_id=Sandbox.DEFAULT_COMPANY_ID, unknown_sku="create"
        )
        logging.getLogger("bridge.cli").info("serving the Luminous sandbox at %s", luminous_url)
    app = create_app(
        settings, sandbox_routes=sandbox_routes, luminous_url=luminous_url, luminous_token=token
    )
    _run_server(app, args.host, args.port, settings.config.server)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bridge.sandbox import SandboxSettings, create_sandbox_app

    settings = SandboxSettings(
        seed=args.seed,
        state=args.state,
        token=args.token,
        auto_products=args.auto_products,
        latency_ms=args.latency,
        fail_rate=args.fail_rate,
        throttle_rate=args.throttle_rate,
        timeout_after_commit_rate=args.timeout_after_commit_rate,
        fault_seed=args.fault_seed,
    )
    try:
        app = create_sandbox_app(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    _configure_logging()
    _run_server(app, args.host, args.port, ServerConfig())
    return 0


# -- map / send --------------------------------------------------------------


def _read_payload(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL in the path
        raise UsageError(f"cannot read {path!r}: {exc}") from exc


def cmd_map(args: argparse.Namespace) -> int:
    from bridge.errors import InvoiceError, MappingError
    from bridge.invoice import request_total
    from bridge.mapping import Delivery, Skip, Tag, check_currency, reconcile_totals
    from bridge.wire import MalformedJSON, loads

    settings = _settings(args)
    source = _source(settings, args.source)
    try:
        payload = loads(_read_payload(args.file))
    except MalformedJSON as exc:
        raise UsageError(f"{args.file} is not valid JSON: {exc}") from exc
    if source.options.company == "fixed" and source.options.company_id is None:
        print(
            f"note: sources.{source.name}.options.company_id is not set; using 1 for this dry run",
            file=sys.stderr,
        )
        source = _with_defaults(settings, company_id=1).sources[source.name]
    topic = args.topic or (source.topics[0] if source.topics else None)
    try:
        result = source.mapping.map(Delivery(payload, {}, topic, None), source.options)
    except MappingError as exc:
        details = "".join(f"\n  {field}: {problem}" for field, problem in exc.details)
        raise UsageError(f"invalid: {exc.message}{details}") from exc
    if isinstance(result, Skip):
        print(f"skipped: {result.reason}")
        return 0
    if isinstance(result, Tag):
        print(
            f"tag: the invoice of order {result.order_id} gets tag {result.tag!r} ({result.reason})"
        )
        return 0
    request = result.request
    planned: dict[str, Any] = {}
    if args.resolve:
        try:
            plan = asyncio.run(_plan(settings, result, source))
        except InvoiceError as exc:
            raise UsageError(f"not sendable: {exc}") from exc
        request = plan.request
        planned = {"would_create": plan.creations()}
    _print_json(
        {
            "order_id": result.order_id,
            "order_name": result.order_name,
            "currency": result.currency,
            "order_total": result.expected_total,
            "invoice_total": request_total(request),
            "references": {
                "customer": dataclasses.asdict(result.customer) if result.customer else None,
                "skus": [item.sku for item in result.request.items],
            },
            "request": request.to_wire(),
            **planned,
        }
    )
    try:
        check_currency(result, source.options)
        reconcile_totals(result)
    except InvoiceError as exc:
        raise UsageError(f"not sendable: {exc}") from exc
    return 0


async def _plan(settings: Settings, draft: Any, source: Any) -> Any:
    """Look the draft's company and products up in the configured Luminous, only reading."""
    from bridge.luminous import LuminousClient
    from bridge.resolver import Resolver

    luminous = settings.config.luminous
    if not luminous.base_url or not settings.luminous_token:
        raise ConfigError("luminous.base_url", "--resolve needs the Luminous base URL and token")
    async with LuminousClient(
        luminous.base_url, settings.luminous_token, timeout=luminous.timeout
    ) as client:
        return await Resolver(client).plan(draft, source.options, namespace=source.name)


def _source(settings: Settings, name: str) -> Any:
    if name not in settings.sources:
        known = ", ".join(settings.sources) or "none"
        raise UsageError(f"no source named {name!r} is configured (configured: {known})")
    return settings.sources[name]


def _shop_to_send(source: Source, example: str | None, body: bytes) -> str | None:
    """The shop a test delivery comes from: the one its body names, else the first configured."""
    from bridge.webhooks import identify
    from bridge.wire import MalformedJSON, loads

    try:
        order = identify(source, loads(body))
    except MalformedJSON:
        order = None  # sent as it is: the bridge's answer says what is wrong
    if order and order.shop:
        return order.shop
    configured = [shop.label for shop in source.shops.values()] or sorted(source.allowed_shops)
    return configured[0] if configured else example


def _signing_secret(settings: Settings, source: Source, shop: str | None) -> str:
    """The secret a shop signs with: its own (its shop table's secret_env), else the source's."""
    from bridge.config import secret_env_name
    from bridge.shops import normalise_shop

    table = source.shops.get(normalise_shop(shop or ""))
    if table is not None and table.secret_env:
        secrets, key = table.secrets, f'sources.{source.name}.shops."{table.label}".secret_env'
        env_name: str | None = table.secret_env
    else:
        secrets, key = source.secrets, f"sources.{source.name}.secret_env"
        env_name = secret_env_name(settings.config, source.name)
    if source.scheme != "none" and not secrets:
        raise ConfigError(key, f"{env_name} is not set")
    return secrets[0] if secrets else ""


def cmd_send(args: argparse.Namespace) -> int:
    import hashlib

    import httpx

    from bridge.verify import SCHEMES

    settings = _settings(args)
    source = _source(settings, args.source)
    body = _read_payload(args.file)
    scheme = SCHEMES[source.scheme]
    shop = args.shop or _shop_to_send(source, scheme.example_shop, body)
    delivery_id = args.delivery_id or f"bridge-send-{hashlib.sha256(body).hexdigest()[:24]}"
    headers = scheme.sign(
        body,
        _signing_secret(settings, source, shop),
        topic=args.topic or (source.topics[0] if source.topics else None),
        shop=shop,
        delivery_id=delivery_id,
    )
    headers["Content-Type"] = "application/json"
    url = f"{args.url.rstrip('/')}/webhooks/{source.name}"
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"error: could not reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"HTTP {response.status_code}")
    try:
        _print_json(response.json())
    except ValueError:
        print(response.text)
    return 0 if response.is_success else 1


# -- configuration, mappings, store ----------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problems = check_runnable(settings, sandbox=args.sandbox)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    for warning in check_shop_secrets(settings):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"configuration OK ({settings.origin}): sources {', '.join(settings.sources)}")
    return 0


def cmd_mappings(args: argparse.Namespace) -> int:
    from importlib.metadata import entry_points

    from bridge.mapping import ENTRY_POINT_GROUP

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        dist = ep.dist.name if ep.dist else "unknown distribution"
        print(f"{ep.name}\t{ep.value}\t({dist})")
    try:
        settings = _settings(args)
    except ConfigError:
        return 0
    for name in settings.sources:
        raw = settings.config.sources[name].mapping or name
        if ":" in raw:
            print(f"{raw}\t{raw}\t(import string, used by source {name})")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from bridge.rekey import rekey_orders
    from bridge.store import open_store

    async def run() -> int | None:
        settings = _settings(args)
        store = open_store(settings.config.store, create=True)
        try:
            await store.migrate()
            await rekey_orders(store, settings)
            return await store.schema_version()
        finally:
            await store.close()

    print(f"store schema at version {asyncio.run(run())}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from bridge.events_cli import run_events

    return asyncio.run(run_events(args, _settings(args)))


# -- the shops' own APIs --------------------------------------------------------


def cmd_shop_sandbox(args: argparse.Namespace) -> int:
    from bridge.shop_sandbox import ShopSandboxSettings, create_shop_sandbox_app

    try:
        settings = ShopSandboxSettings(
            orders=args.orders,
            generate=args.generate or 0,
            days=args.days,
            token=args.token,
            client_id=args.client_id,
            client_secret=args.client_secret,
            token_lifetime=args.token_lifetime,
            scopes=tuple(s.strip() for s in args.scopes.split(",") if s.strip()),
            bucket_size=args.bucket_size,
            leak_rate=args.leak_rate,
            key=args.key,
            secret=args.secret,
            site_url=args.site_url,
            latency_ms=args.latency,
            fail_rate=args.fail_rate,
            throttle_rate=args.throttle_rate,
            fault_seed=args.fault_seed,
        )
        site = f"http://{_connect_host(args.host)}:{args.port}"
        app = create_shop_sandbox_app(args.platform, settings, site=site)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    _configure_logging()
    _run_server(app, args.host, args.port, ServerConfig())
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from bridge.shops_cli import run_backfill

    settings = _settings(args)
    source = _source(settings, args.source)
    _configure_logging(quiet=True)
    return asyncio.run(run_backfill(args, settings, source))


def cmd_reconcile(args: argparse.Namespace) -> int:
    from bridge.shops_cli import run_reconcile

    settings = _settings(args)
    source = _source(settings, args.source)
    _configure_logging(quiet=True)
    return asyncio.run(run_reconcile(args, settings, source))


def _shop_commands(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    shop = command("shop-sandbox", cmd_shop_sandbox, "run a stand-in of a shop's own order API")
    shop.add_argument("platform", choices=["shopify", "woocommerce"])
    shop.add_argument("--host", type=arguments.text, default="127.0.0.1")
    shop.add_argument("--port", type=arguments.port, default=8091)
    orders = shop.add_mutually_exclusive_group()
    orders.add_argument("--orders", type=Path, metavar="DIR", help="serve the orders in DIR/*.json")
    orders.add_argument(
        "--generate", type=arguments.whole(0, 1_000_000), metavar="N", help="serve N orders"
    )
    shop.add_argument(
        "--days",
        type=arguments.days,
        default=3.0,
        metavar="D",
        help="generated orders are spread over the last D days",
    )
    shop.add_argument(
        "--token",
        type=arguments.header_value,
        metavar="T",
        help="Shopify: the only static access token accepted (default: any)",
    )
    shop.add_argument("--client-id", type=arguments.header_value, default="sandbox-client")
    shop.add_argument("--client-secret", type=arguments.header_value, default="sandbox-secret")
    shop.add_argument("--token-lifetime", type=arguments.positive, default=86400.0, metavar="S")
    shop.add_argument(
        "--scopes",
        type=arguments.text,
        default="read_orders",
        help="Shopify: the token's scopes; add read_all_orders to see past 60 days",
    )
    shop.add_argument("--bucket-size", type=arguments.whole(1, 100_000), default=40)
    shop.add_argument("--leak-rate", type=arguments.positive, default=2.0, metavar="R")
    shop.add_argument("--key", type=arguments.header_value, default="ck_sandbox")
    shop.add_argument("--secret", type=arguments.header_value, default="cs_sandbox")
    shop.add_argument(
        "--site-url",
        type=arguments.http_url,
        metavar="URL",
        help="WooCommerce: the site its orders name (default: its own address)",
    )
    shop.add_argument("--latency", type=arguments.milliseconds, default=0, metavar="MS")
    shop.add_argument("--fail-rate", type=arguments.rate, default=0, metavar="R")
    shop.add_argument("--throttle-rate", type=arguments.rate, default=0, metavar="R")
    shop.add_argument("--fault-seed", type=arguments.whole(0, 2**64), metavar="N")

    for name, handler, help in (
        ("backfill", cmd_backfill, "record a shop's orders from its API as events"),
        ("reconcile", cmd_reconcile, "compare a shop's orders, the events and the invoices"),
    ):
        sub = command(name, handler, help)
        sub.add_argument("source", type=arguments.text)
        sub.add_argument(
            "--since",
            type=arguments.moment,
            required=True,
            metavar="T",
            help="ISO date or time (UTC unless an offset is given), or an age: 3d",
        )
        sub.add_argument("--until", type=arguments.moment, metavar="T", help="default: now")
        sub.add_argument("--shop", type=arguments.text, metavar="S", help="only this shop table")
        if name == "backfill":
            sub.add_argument("--dry-run", action="store_true", help="fetch and count only")
            sub.add_argument("--wait", action="store_true", help="follow the invoicing to the end")
        else:
            sub.add_argument("--json", action="store_true", help="one JSON object per order")
            sub.add_argument("--fix", action="store_true", help="backfill the missing orders")
            sub.add_argument(
                "--stuck-after",
                type=arguments.duration,
                default=3600.0,
                metavar="D",
                help="unfinished this long is stuck (default 1h)",
            )


# -- parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument(
        "--config",
        metavar="F",
        default=argparse.SUPPRESS,
        help="configuration file (default: $BRIDGE_CONFIG, else ./bridge.toml, else defaults)",
    )
    parser = Parser(
        prog="bridge",
        parents=[common],
        description="Turns e-commerce order webhooks into Luminous invoices.",
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    serve = command("serve", cmd_serve, "run the service")
    serve.add_argument("--host", type=arguments.text, default="127.0.0.1")
    serve.add_argument("--port", type=arguments.port, default=8080)
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="also serve the Luminous sandbox under /external/api/v1 and use it",
    )

    sandbox = command("sandbox", cmd_sandbox, "run the Luminous sandbox alone")
    sandbox.add_argument("--host", type=arguments.text, default="127.0.0.1")
    sandbox.add_argument("--port", type=arguments.port, default=8090)
    sandbox.add_argument("--seed", type=Path, metavar="F", help="JSON products and companies")
    sandbox.add_argument("--state", type=Path, metavar="F", help="keep data across restarts")
    sandbox.add_argument(
        "--token", type=arguments.header_value, metavar="T", help="accept only this bearer token"
    )
    sandbox.add_argument("--auto-products", action="store_true", help="create unknown SKUs")
    sandbox.add_argument("--latency", type=arguments.milliseconds, default=0, metavar="MS")
    sandbox.add_argument("--fail-rate", type=arguments.rate, default=0, metavar="R")
    sandbox.add_argument("--throttle-rate", type=arguments.rate, default=0, metavar="R")
    sandbox.add_argument("--timeout-after-commit-rate", type=arguments.rate, default=0, metavar="R")
    sandbox.add_argument("--fault-seed", type=arguments.whole(0, 2**64), metavar="N")

    mapper = command("map", cmd_map, "dry run: print the invoice request a payload makes")
    mapper.add_argument("source")
    mapper.add_argument("file")
    mapper.add_argument("--topic", type=arguments.text, metavar="T")
    mapper.add_argument(
        "--resolve",
        action="store_true",
        help="look the company and products up in the configured Luminous (only reading) "
        "and say what sending would create",
    )

    send = command("send", cmd_send, "sign a payload as its source would and post it")
    send.add_argument("source")
    send.add_argument("file")
    send.add_argument("--url", type=arguments.http_url, default="http://127.0.0.1:8080")
    send.add_argument("--topic", type=arguments.header_value, metavar="T")
    send.add_argument("--delivery-id", type=arguments.header_value, metavar="ID")
    send.add_argument(
        "--shop",
        type=arguments.header_value,
        metavar="SHOP",
        help="the shop it comes from (default: the one the body names, else the first configured)",
    )

    check = command("check-config", cmd_check_config, "validate the configuration")
    check.add_argument("--sandbox", action="store_true", help="check it for serve --sandbox")

    command("mappings", cmd_mappings, "list installed mappings and where each comes from")
    _shop_commands(command)
    command("migrate", cmd_migrate, "create or upgrade the store's schema")

    events = command("events", cmd_events, "list, show, replay, dismiss or purge recorded events")
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", parents=[common], help="find events, newest first, with a count per status"
    )
    listing.add_argument("--status", type=arguments.text)
    listing.add_argument("--source", type=arguments.text)
    listing.add_argument("--shop", type=arguments.text)
    listing.add_argument(
        "--order",
        type=arguments.text,
        metavar="REF",
        help="order id, name (#1001 or 1001), PO number (SH-#1001), e-mail, invoice id or SKU",
    )
    listing.add_argument(
        "--search", type=arguments.text, metavar="TEXT", help="any part of those, or of a reason"
    )
    listing.add_argument(
        "--since", type=arguments.text, metavar="T", help="ISO time, or an age such as 2h or 3d"
    )
    listing.add_argument("--until", type=arguments.text, metavar="T", help="as --since")
    listing.add_argument(
        "--before", type=arguments.event_id, metavar="ID", help="events before this id (paging)"
    )
    listing.add_argument(
        "--flagged", action="store_true", help="only events flagged as possible doubles"
    )
    listing.add_argument("--limit", type=arguments.whole(1, 100_000), default=100)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    show = actions.add_parser("show", parents=[common], help="one event with its history")
    show.add_argument("id", type=arguments.event_id)
    replay = actions.add_parser(
        "replay", parents=[common], help="retry dead, rejected or dismissed events"
    )
    replay.add_argument("ids", type=arguments.event_id, nargs="*", metavar="ID")
    replay.add_argument("--status", choices=["dead", "rejected", "dismissed"])
    replay.add_argument("--dry-run", action="store_true")
    dismiss = actions.add_parser(
        "dismiss", parents=[common], help="mark dead or rejected events as handled by hand"
    )
    dismiss.add_argument("ids", type=arguments.event_id, nargs="*", metavar="ID")
    dismiss.add_argument("--status", choices=["dead", "rejected"])
    dismiss.add_argument("--source", type=arguments.text, help="with --status")
    dismiss.add_argument("--since", type=arguments.text, metavar="T", help="with --status")
    dismiss.add_argument("--reason", type=arguments.text, required=True, metavar="TEXT")
    dismiss.add_argument("--dry-run", action="store_true")
    purge = actions.add_parser(
        "purge", parents=[common], help="drop the payloads of old or settled events"
    )
    purge.add_argument(
        "--days",
        type=arguments.whole(0, 100_000),
        help="finished events: keep this many days (default: retention_days)",
    )
    purge.add_argument(
        "--status",
        choices=["dismissed", "dead", "rejected", "created", "skipped", "tagged"],
        help="this status only, with --before",
    )
    purge.add_argument("--before", type=arguments.text, metavar="T", help="ISO time or an age")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever goes wrong is one line on stderr and an exit code."""
    _fill_closed_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return code
    except (ConfigError, UsageError) as exc:
        label = "configuration error" if isinstance(exc, ConfigError) else "error"
        print(f"bridge: {label}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"bridge: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _quiet_stdout()  # the reader left (`| head`): stop, and let exit flush to nowhere
        return 1
    except KeyboardInterrupt:
        return 130


def _fill_closed_streams() -> None:
    """A standard stream closed at start (`>&-`) reads and writes /dev/null instead.

    Opening it also takes the stream's descriptor, which the store's file would otherwise
    get, and then output meant for the terminal would land in the database.
    """
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))  # noqa: SIM115 (kept for the process)


def _one_line(message: object) -> str:
    """A store's or a library's message may span lines; stderr gets one."""
    return " ".join(str(message).split())


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test's capture)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
