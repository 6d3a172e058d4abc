"""The hostile-input corpus as data: each case is a request to build and the answer it must get.

A few ideas (a bad signature, a replayed timestamp, broken JSON, a lying length...) are
multiplied by every source scheme, several content types and several sizes. `request_bytes`
turns a case into the exact bytes a client sends, so header-name case, stray whitespace and
dishonest framing are all expressible; `tests/test_hostile.py` sends them to a real bridge.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.verify import SCHEMES
from tests.orders import shopify_order

SHOP = "acme.myshopify.com"
MAX_BODY = 32_768
BODY_TIMEOUT = 1.0
ADMIN_TOKEN = "hostile-admin-token"
SOURCES = ("shopify", "woo", "partner", "bearer")


def _whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


# Every source accepts an old and a new secret (rotation); cases sign with the new one.
SECRETS = {
    "shopify": ("shopify-old", "shopify-new"),
    "woo": ("woo-old", "woo-new"),
    "partner": (
        _whsec(b"partner-old-key-of-32-bytes-long"),
        _whsec(b"partner-new-key-of-32-bytes-long"),
    ),
    "bearer": ("bearer-old", "bearer-new"),
    "guarded": ("guarded-old", "guarded-new"),
}
WRONG_SECRET = {
    "shopify": "not-the-secret",
    "woo": "not-the-secret",
    "partner": _whsec(b"an-attacker-key-of-32-bytes-long"),
    "bearer": "not-the-token",
    "guarded": "not-the-secret",
}
SCHEME = {
    "shopify": "shopify-hmac",
    "woo": "woocommerce-hmac",
    "partner": "standard-webhooks",
    "bearer": "bearer",
    "guarded": "shopify-hmac",
}
# The header that carries each source's proof, and a word its refusals must contain.
PROOF = {
    "shopify": "x-shopify-hmac-sha256",
    "woo": "x-wc-webhook-signature",
    "partner": "webhook-signature",
    "bearer": "authorization",
    "guarded": "x-shopify-hmac-sha256",
}
NAMED = {**PROOF, "bearer": "bearer"}


_SOURCE_EXTRA = {"partner": "strict_answers = true\n", "guarded": f'allowed_shops = ["{SHOP}"]\n'}


def bridge_config(store: Path) -> str:
    """The bridge's configuration: one source per scheme, a strict one, a guarded one."""
    sources = "".join(
        f'\n[sources.{name}]\nmapping = "shopify"\nverify = "{SCHEME[name]}"\n'
        f'secret_env = "HOSTILE_{name.upper()}_SECRETS"\n{_SOURCE_EXTRA.get(name, "")}'
        # The catalogue starts empty: each order's SKUs become products on first sight.
        f'[sources.{name}.options]\nunknown_sku = "create"\n'
        for name in SECRETS
    )
    return f"""
[server]
respond_within = 10.0
max_body_bytes = {MAX_BODY}
body_timeout = {BODY_TIMEOUT}
admin_token_env = "HOSTILE_ADMIN_TOKEN"

[store]
url = "sqlite:///{store}"
durability = "normal"

[luminous]
max_requests_per_second = 0

[retry]
base_delay = 0.05
max_delay = 0.3
{sources}"""


def bridge_env() -> dict[str, str]:
    """The environment the configuration names."""
    env = {f"HOSTILE_{name.upper()}_SECRETS": ",".join(pair) for name, pair in SECRETS.items()}
    return {**env, "HOSTILE_ADMIN_TOKEN": ADMIN_TOKEN}


# -- bodies --------------------------------------------------------------------------------

# Unique per process, so no two cases (or two runs against one store) share an order.
_order_ids = itertools.count(random.SystemRandom().randrange(10**14, 10**15, 1000))


def order(change: Callable[[dict[str, Any]], Any] | None = None) -> bytes:
    """A fresh, consistent Shopify order, optionally changed by `change` (in place)."""
    order_id = next(_order_ids)
    data = shopify_order(order_id, number=order_id)
    if change is not None:
        change(data)
    return json.dumps(data).encode()


def padded(size: int) -> Callable[[], bytes]:
    """A fresh order padded with trailing whitespace to exactly `size` bytes."""

    def build() -> bytes:
        data = order()
        return data + b" " * (size - len(data))

    return build


def fixed(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def line(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["line_items"][0].update(fields)


def setting(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.update(fields)


def dropping(*names: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for name in names:
            data.pop(name, None)

    return change


# -- headers -------------------------------------------------------------------------------

Headers = dict[str, str]
Edit = Callable[[Headers], Headers]


def drop(name: str) -> Edit:
    return lambda headers: {key: value for key, value in headers.items() if key != name}


def put(name: str, value: str) -> Edit:
    return lambda headers: {**drop(name)(headers), name: value}


def mangle(name: str, change: Callable[[str], str]) -> Edit:
    return lambda headers: {**headers, name: change(headers[name])}


def names(change: Callable[[str], str]) -> Edit:
    return lambda headers: {change(key): value for key, value in headers.items()}


# -- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """The answer: status, the `error` code (4xx) or body `status` (2xx), words it must say."""

    status: int
    code: str | None
    says: tuple[str, ...] = ()
    duplicate: bool = False


@dataclass(frozen=True)
class Case:
    """One request sent whole, with `Connection: close`, and the answer it must get."""

    family: str
    name: str
    expect: Expect
    source: str = "shopify"
    body: Callable[[], bytes] = order
    content_type: str | None = "application/json"
    signed: bool = True
    secret: str | None = None  # default: the source's newest secret
    shop: str | None = SHOP
    skew: float = 0.0  # seconds added to the signing time (timestamped schemes)
    sign_other: bool = False  # sign other bytes than the ones sent
    edit: Edit | None = None  # applied to the signed headers
    method: str = "POST"
    path: str | None = None  # default: /webhooks/{source}
    chunk: int | None = None  # send the body chunked, in pieces of this size
    sends: int = 1  # sent this many times; the last answer is checked
    resign: bool = False  # each send signed afresh (a new delivery ID) rather than repeated

    @property
    def id(self) -> str:
        return f"{self.family}:{self.source}:{self.name}"


def request_bytes(case: Case) -> bytes:
    """The exact bytes a client sends for `case` (signed now, for timestamped schemes)."""
    body = case.body()
    headers: Headers = {}
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    if case.signed:
        secret = case.secret or SECRETS[case.source][1]
        signed = b'{"other": "bytes"}' if case.sign_other else body
        proof = SCHEMES[SCHEME[case.source]].sign(
            signed,
            secret,
            topic="orders/create",
            shop=case.shop,
            delivery_id=f"hostile-{next(_order_ids)}",
            now=time.time() + case.skew,
        )
        headers.update({key.lower(): value for key, value in proof.items()})
    if case.edit is not None:
        headers = case.edit(headers)
    path = case.path or f"/webhooks/{case.source}"
    head = [f"{case.method} {path} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    head += [f"{key}: {value}" for key, value in headers.items()]
    if case.chunk:
        head.append("transfer-encoding: chunked")
        pieces = [body[at : at + case.chunk] for at in range(0, len(body), case.chunk)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    elif body or case.method in ("POST", "PUT", "PATCH"):
        head.append(f"content-length: {len(body)}")
    return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body


@dataclass(frozen=True)
class RawCase:
    """Dishonest framing sent over a socket; whatever the HTTP parser does, no 5xx, no hang.

    `statuses` are the acceptable answers (0: the connection closed unanswered). An answer
    from the bridge must carry `code`; the HTTP parser's own plain-text 400 is accepted
    only where `parser_may_refuse`.
    """

    family: str
    name: str
    head: Callable[[], bytes]
    statuses: tuple[int, ...]
    code: str | None = None
    then: str = "wait"  # wait | half-close | trickle
    trickle: bytes = b""  # sent a byte at a time after `head` (then = "trickle")
    parser_may_refuse: bool = False

    @property
    def id(self) -> str:
        return f"{self.family}:{self.name}"


def raw(
    *headers: str, path: str = "/webhooks/shopify", body: bytes = b"", version: str = "1.1"
) -> Callable[[], bytes]:
    """Request bytes exactly as given: no framing header is added for you."""
    head = [f"POST {path} HTTP/{version}", "host: 127.0.0.1", *headers]
    return lambda: "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body


# -- the families --------------------------------------------------------------------------

CREATED = Expect(201, "created")
REPEATED = Expect(200, "created", duplicate=True)
JSON = "content-type: application/json"


def rename(old: str, new: str) -> Edit:
    return lambda headers: {(new if key == old else key): value for key, value in headers.items()}


def _garbage(source: str) -> str:
    return {"partner": "v1,!!!not base64!!!", "bearer": "Bearer !!!not-a-token!!!"}.get(
        source, "!!!not base64!!!"
    )


def signature_cases() -> list[Case]:
    cases = []
    for source in SOURCES:
        proof = PROOF[source]
        refused = Expect(401, "unauthorized", (NAMED[source],))
        missing = Expect(401, "unauthorized", ("missing", proof))
        variants: list[tuple[str, Expect, dict[str, Any]]] = [
            ("valid", CREATED, {}),
            ("old-secret-during-rotation", CREATED, {"secret": SECRETS[source][0]}),
            ("header-names-upper-case", CREATED, {"edit": names(str.upper)}),
            ("header-names-title-case", CREATED, {"edit": names(str.title)}),
            ("trailing-space-in-value", CREATED, {"edit": mangle(proof, lambda v: v + " ")}),
            ("leading-tab-in-value", CREATED, {"edit": mangle(proof, lambda v: "\t" + v)}),
            ("repeated-delivery", REPEATED, {"sends": 2}),
            ("missing", missing, {"edit": drop(proof)}),
            ("empty", missing, {"edit": put(proof, "")}),
            ("under-another-name", missing, {"edit": rename(proof, "x-signature")}),
            ("wrong-secret", refused, {"secret": WRONG_SECRET[source]}),
            ("base64-garbage", refused, {"edit": put(proof, _garbage(source))}),
            ("case-swapped", refused, {"edit": mangle(proof, str.swapcase)}),
            ("truncated", refused, {"edit": mangle(proof, lambda v: v[:-4])}),
            ("doubled", refused, {"edit": mangle(proof, lambda v: v + v)}),
            ("unsigned", missing, {"signed": False}),
        ]
        if source != "bearer":  # a bearer token does not cover the body
            variants.append(("of-other-bytes", refused, {"sign_other": True}))
        cases += [Case("signature", name, expect, source, **kw) for name, expect, kw in variants]
    return cases


def _other_signatures(change: Callable[[str], str]) -> Edit:
    return mangle("webhook-signature", change)


def _second_earlier(stamp: str) -> str:
    return str(int(stamp) - 1)


def standard_webhooks_cases() -> list[Case]:
    """Several signatures, other versions, and the parts of the signed content."""
    refused = Expect(401, "unauthorized", ("webhook-signature",))
    without_id = Expect(401, "unauthorized", ("webhook-id",))
    without_time = Expect(401, "unauthorized", ("webhook-timestamp",))
    variants: list[tuple[str, Expect, Edit]] = [
        ("valid-one-last-of-several", CREATED, _other_signatures(lambda v: "v1,AAAA v1,BBBB " + v)),
        ("valid-one-first-of-several", CREATED, _other_signatures(lambda v: v + " v1,AAAA")),
        ("v1a-then-valid-v1", CREATED, _other_signatures(lambda v: "v1a,AAAA " + v)),
        ("several-all-wrong", refused, _other_signatures(lambda v: "v1,AAAA v1,BBBB v1,CCCC")),
        ("v1a-only", refused, _other_signatures(lambda v: "v1a," + v.partition(",")[2])),
        ("v2-only", refused, _other_signatures(lambda v: "v2," + v.partition(",")[2])),
        ("no-version-prefix", refused, _other_signatures(lambda v: v.partition(",")[2])),
        ("comma-separated-list", refused, _other_signatures(lambda v: "v1,AAAA," + v)),
        ("missing-id", without_id, drop("webhook-id")),
        ("missing-timestamp", without_time, drop("webhook-timestamp")),
        ("id-changed-after-signing", refused, mangle("webhook-id", lambda v: v + "x")),
        ("timestamp-moved-a-second", refused, mangle("webhook-timestamp", _second_earlier)),
    ]
    return [
        Case("signature", name, expect, "partner", edit=edit) for name, expect, edit in variants
    ]


def replay_cases() -> list[Case]:
    """Timestamps outside the tolerance, timestamps that are not numbers, and repeats."""
    stale = Expect(401, "unauthorized", ("webhook-timestamp", "tolerance"))
    skews = {
        "301s-old": -301,
        "10-minutes-old": -600,
        "1-hour-old": -3600,
        "1-day-old": -86400,
        "from-1990": -(time.time() - 631152000),
        "301s-ahead": 301,
        "1-hour-ahead": 3600,
        "1-year-ahead": 365 * 86400,
    }
    cases = [Case("replay", name, stale, "partner", skew=skew) for name, skew in skews.items()]
    cases += [
        Case("replay", "4-minutes-old", CREATED, "partner", skew=-240),
        Case("replay", "4-minutes-ahead", CREATED, "partner", skew=240),
    ]
    not_a_time = Expect(401, "unauthorized", ("webhook-timestamp",))
    stamps = {
        "letters": "abc",
        "exponent": "1.7e9",
        "plus-sign": "+1700000000",
        "negative": "-5",
        "fraction": "1700000000.5",
        "hex": "0x6553f100",
        "underscores": "1_700_000_000",
        "5000-digits": "9" * 5000,
        "zero": "0",
        "blank": " ",
    }
    cases += [
        Case("replay", f"timestamp-{name}", not_a_time, "partner", edit=put("webhook-timestamp", v))
        for name, v in stamps.items()
    ]
    again: dict[str, Any] = {"body": fixed(order()), "sends": 2, "resign": True}
    cases += [
        Case("replay", "same-order-new-delivery", REPEATED, source, **again)
        for source in ("shopify", "woo", "bearer")
    ]
    return cases


_ORDER = order()
MALFORMED: dict[str, tuple[bytes, str]] = {
    "truncated-half": (_ORDER[: len(_ORDER) // 2], "line"),
    "truncated-in-string": (b'{"name": "#10', "line"),
    "truncated-after-key": (b'{"id":', "line"),
    "missing-comma": (b'{"id": 1 "name": "x"}', "delimiter"),
    "single-quotes": (b"{'id': 1}", "line"),
    "unquoted-key": (b"{id: 1}", "line"),
    "trailing-comma": (b'{"id": 1,}', "line"),
    "comment": (b'{"id": 1 /* first */}', "line"),
    "bare-word": (b"order", "line"),
    "two-documents": (b"{}{}", "extra data"),
    "trailing-garbage": (b'{"id": 1} trailing', "extra data"),
    "trailing-nul": (b'{"id": 1}\x00', "extra data"),
    "control-character-in-string": (b'{"name": "a\x01b"}', "control character"),
    "invalid-escape": (b'{"name": "\\x41"}', "escape"),
    "leading-zero": (b'{"id": 0123}', "line"),
    "plus-sign": (b'{"id": +1}', "line"),
    "hex-number": (b'{"id": 0x10}', "line"),
    "not-utf8": (b'{"name": "\xff\xfe"}', "utf-8"),
    "latin-1": ('{"name": "Café"}'.encode("latin-1"), "utf-8"),
    "overlong-utf8": (b'{"name": "\xc0\xaf"}', "utf-8"),
    "encoded-surrogate": (b'{"name": "\xed\xa0\x80"}', "utf-8"),
    "utf8-bom": (b"\xef\xbb\xbf" + _ORDER, "byte order mark"),
    "utf16-with-bom": ('{"id": 1}'.encode("utf-16"), "utf-8"),
    "utf16-big-endian": ('{"id": 1}'.encode("utf-16-be"), "line"),
    "utf32": ('{"id": 1}'.encode("utf-32"), "utf-8"),
    "nested-10000-arrays": (b"[" * 10_000 + b"]" * 10_000, "nested"),
    "nested-5000-objects": (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nested"),
    "integer-5000-digits": (b'{"id": ' + b"9" * 5_000 + b"}", "number"),
    "fraction-5000-digits": (b'{"total_price": 0.' + b"1" * 5_000 + b"}", "number"),
    "exponent-huge": (b'{"total_price": 1e999999999}', "number"),
    "exponent-tiny": (b'{"total_price": 1e-999999999}', "number"),
    "zero-with-huge-exponent": (b'{"total_price": 0e999999999}', "number"),
    "nan": (b'{"total_price": NaN}', "nan"),
    "infinity": (b'{"total_price": Infinity}', "infinity"),
    "minus-infinity": (b'{"total_price": -Infinity}', "infinity"),
    "lone-high-surrogate": (b'{"name": "\\ud800"}', "surrogate"),
    "lone-low-surrogate": (b'{"name": "\\udc00"}', "surrogate"),
    "reversed-surrogate-pair": (b'{"name": "\\udc00\\ud800"}', "surrogate"),
    "lone-surrogate-in-key": (b'{"\\uDBFF": 1}', "surrogate"),
    "lone-surrogate-in-array": (b'{"tags": ["ok", "\\ud83d"]}', "surrogate"),
    "duplicate-key": (b'{"id": 1, "id": 2}', "duplicate key"),
    "duplicate-nested-key": (b'{"line_items": [{"sku": "A", "sku": "B"}]}', "duplicate key"),
    "empty": (b"", "empty"),
    "whitespace-only": (b" \r\n\t ", "empty"),
}


def malformed_cases() -> list[Case]:
    return [
        Case("json", name, Expect(400, "malformed_json", ("json", why)), source, body=fixed(data))
        for source in SOURCES
        for name, (data, why) in MALFORMED.items()
    ]


NOT_AN_ORDER: dict[str, tuple[Callable[[], bytes], str]] = {
    "array": (fixed(b"[1, 2, 3]"), "object"),
    "string": (fixed(b'"order #1001"'), "object"),
    "null": (fixed(b"null"), "object"),
    "number": (fixed(b"1001"), "object"),
    "true": (fixed(b"true"), "object"),
    "empty-object": (fixed(b"{}"), "id"),
    "id-as-text": (lambda: order(setting(id="abc")), "id"),
    "id-negative": (lambda: order(setting(id=-5)), "id"),
    "id-missing": (lambda: order(dropping("id")), "id"),
    "line-items-missing": (lambda: order(dropping("line_items")), "line_items"),
    "line-items-empty": (lambda: order(setting(line_items=[])), "line_items"),
    "line-items-an-object": (lambda: order(setting(line_items={"sku": "X"})), "line_items"),
    "line-item-a-string": (lambda: order(setting(line_items=["TEE-BLK-M"])), "line_items[0]"),
    "quantity-zero": (lambda: order(line(quantity=0)), "quantity"),
    "quantity-negative": (lambda: order(line(quantity=-3)), "quantity"),
    "quantity-as-text": (lambda: order(line(quantity="2")), "quantity"),
    "quantity-fractional": (lambda: order(line(quantity=1.5)), "quantity"),
    "quantity-absurd": (lambda: order(line(quantity=10**12)), "quantity"),
    "currency-a-number": (lambda: order(setting(currency=840)), "currency"),
    "name-a-number": (lambda: order(setting(name=1001)), "name"),
    "dates-missing": (lambda: order(dropping("created_at", "processed_at")), "processed_at"),
}


def not_an_order_cases() -> list[Case]:
    """Authentic, well-formed JSON that is no order: recorded, then rejected with the field."""
    cases = []
    for source in SOURCES:
        status = 422 if source == "partner" else 200  # partner: strict_answers = true
        cases += [
            Case("not-an-order", name, Expect(status, "rejected", (field,)), source, body=build)
            for name, (build, field) in NOT_AN_ORDER.items()
        ]
    return cases


def size_cases() -> list[Case]:
    over = Expect(413, "too_large", (str(MAX_BODY), "bytes"))
    variants: list[tuple[str, Expect, dict[str, Any]]] = [
        ("declared-one-byte-over", over, {"body": padded(MAX_BODY + 1)}),
        ("exactly-the-limit", CREATED, {"body": padded(MAX_BODY)}),
        ("chunked-under-the-limit", CREATED, {"chunk": 700}),
        ("chunked-in-one-byte-pieces", CREATED, {"chunk": 1}),
        ("chunked-exactly-the-limit", CREATED, {"body": padded(MAX_BODY), "chunk": 4096}),
        ("chunked-growing-past-it", over, {"body": padded(MAX_BODY + 2000), "chunk": 4096}),
    ]
    return [
        Case("size", name, expect, source, **kw)
        for source in SOURCES
        for name, expect, kw in variants
    ]


REFUSED_TYPES: dict[str, tuple[str | None, str]] = {
    "text-plain": ("text/plain", "application/json"),
    "text-plain-utf8": ("text/plain; charset=utf-8", "application/json"),
    "multipart": ("multipart/form-data; boundary=xyz", "application/json"),
    "xml": ("application/xml", "application/json"),
    "text-xml": ("text/xml", "application/json"),
    "missing": (None, "application/json"),
    "empty": ("", "application/json"),
    "form": ("application/x-www-form-urlencoded", "application/json"),
    "octet-stream": ("application/octet-stream", "application/json"),
    "text-json": ("text/json", "application/json"),
    "jsonx": ("application/jsonx", "application/json"),
    "json-seq": ("application/json-seq", "application/json"),
    "anything": ("*/*", "application/json"),
    "bare-json": ("json", "application/json"),
    "charset-latin-1": ("application/json; charset=latin-1", "utf-8"),
    "charset-iso-8859-1-quoted": ('application/json; charset="ISO-8859-1"', "utf-8"),
    "charset-utf-16": ("application/json; charset=utf-16", "utf-8"),
    "charset-windows-1252": ("application/json;charset=windows-1252", "utf-8"),
}
ACCEPTED_TYPES = {
    "upper-case": "APPLICATION/JSON",
    "charset-utf-8": "application/json; charset=utf-8",
    "charset-quoted-upper-case": 'application/json;charset="UTF-8"',
    "structured-suffix": "application/vnd.api+json",
    "mixed-case-utf8": "Application/Json ; Charset=UTF8",
    "other-parameter": "application/json; profile=order",
}


def content_type_cases() -> list[Case]:
    cases = []
    for source in SOURCES:
        for name, (content_type, says) in REFUSED_TYPES.items():
            expect = Expect(415, "unsupported_media_type", (says,))
            cases.append(Case("type", name, expect, source, content_type=content_type))
        cases += [
            Case("type", name, CREATED, source, content_type=content_type)
            for name, content_type in ACCEPTED_TYPES.items()
        ]
    form = "application/x-www-form-urlencoded"
    ping = Expect(200, "ping")
    refused = Expect(415, "unsupported_media_type", ("application/json",))
    pings: list[tuple[str, str, bytes, Expect]] = [
        ("woo", "ping", b"webhook_id=42", ping),
        ("woo", "ping-with-newline", b"webhook_id=42\n", ping),
        ("woo", "ping-not-a-number", b"webhook_id=abc", refused),
        ("woo", "ping-with-more-fields", b"webhook_id=1&topic=order.created", refused),
        ("woo", "ping-empty-form", b"", refused),
        ("shopify", "ping-to-a-shop-that-never-pings", b"webhook_id=42", refused),
    ]
    cases += [
        Case("type", name, expect, source, body=fixed(data), content_type=form, signed=False)
        for source, name, data, expect in pings
    ]
    as_json = Expect(401, "unauthorized", ("x-wc-webhook-signature",))
    ping_json = fixed(b'{"webhook_id": 42}')
    cases.append(Case("type", "ping-as-json", as_json, "woo", body=ping_json, signed=False))
    return cases


def route_cases() -> list[Case]:
    """Methods other than POST, and source names that are unknown or try to be paths."""
    bare: dict[str, Any] = {"body": fixed(b""), "content_type": None, "signed": False}
    cases = [
        Case("route", method, Expect(405, "method_not_allowed", (method,)), method=method, **bare)
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS")
    ]
    cases.append(Case("route", "HEAD", Expect(405, None), method="HEAD", **bare))
    get = Expect(405, "method_not_allowed", ("GET",))
    cases.append(Case("route", "GET-unknown", get, method="GET", path="/webhooks/x", **bare))
    no_route = Expect(404, "not_found", ("no route",))
    unknown = Expect(404, "unknown_source", ("no source",))
    paths = {
        "empty-name": ("/webhooks/", no_route),
        "no-name": ("/webhooks", no_route),
        "extra-segment": ("/webhooks/shopify/extra", no_route),
        "encoded-traversal": ("/webhooks/..%2f..%2fetc%2fpasswd", no_route),
        "encoded-slash": ("/webhooks/shopify%2fextra", no_route),
        "dot-dot": ("/webhooks/%2e%2e", unknown),
        "nul-byte": ("/webhooks/%00", unknown),
        "very-long-name": ("/webhooks/" + "a" * 3000, unknown),
        "unicode-name": ("/webhooks/caf%C3%A9", unknown),
        "invalid-utf8-name": ("/webhooks/%ff%fe", unknown),
        "upper-case-name": ("/webhooks/SHOPIFY", unknown),
        "trailing-space-name": ("/webhooks/shopify%20", unknown),
        "markup-name": ("/webhooks/%3Cscript%3Ealert(1)%3C%2Fscript%3E", no_route),
        "double-slash": ("//webhooks/shopify", no_route),
        "upper-case-prefix": ("/WEBHOOKS/shopify", no_route),
    }
    cases += [
        Case("route", name, expect, path=path, body=fixed(order()), signed=False)
        for name, (path, expect) in paths.items()
    ]
    unsigned = Expect(401, "unauthorized", ("x-shopify-hmac-sha256",))
    query = "/webhooks/shopify?source=partner"
    cases.append(Case("route", "query-string-ignored", unsigned, path=query, signed=False))
    return cases


def admin_cases() -> list[Case]:
    """Admin routes without the token, with a wrong one, and for things that do not exist."""
    refused = Expect(401, "unauthorized", ("bearer",))
    basic = base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()
    credentials: dict[str, Edit] = {
        "no-header": drop("authorization"),
        "wrong-token": put("authorization", "Bearer wrong"),
        "basic-auth-with-the-token": put("authorization", f"Basic {basic}"),
        "empty-bearer": put("authorization", "Bearer"),
        "token-prefix": put("authorization", f"Bearer {ADMIN_TOKEN[:-1]}"),
        "token-with-suffix": put("authorization", f"Bearer {ADMIN_TOKEN}x"),
        "token-upper-case": put("authorization", f"Bearer {ADMIN_TOKEN.upper()}"),
        "token-without-scheme": put("authorization", ADMIN_TOKEN),
        "token-with-latin-1": put("authorization", f"Bearer {ADMIN_TOKEN}\xe9"),
    }
    routes = [("GET", "/events"), ("GET", "/events/1"), ("POST", "/events/1/replay")]
    bare: dict[str, Any] = {"body": fixed(b""), "content_type": None, "signed": False}
    cases = [
        Case("admin", f"{method}-{path}-{name}", refused, method=method, path=path, edit=e, **bare)
        for method, path in routes
        for name, e in credentials.items()
    ]
    query = f"/events?token={ADMIN_TOKEN}"
    cases.append(Case("admin", "token-in-query", refused, method="GET", path=query, **bare))
    token = put("authorization", f"Bearer {ADMIN_TOKEN}")
    authorized: list[tuple[str, str, str, Expect]] = [
        ("unknown-event", "GET", "/events/987654321", Expect(404, "not_found", ("event",))),
        ("event-id-not-a-number", "GET", "/events/abc", Expect(404, "not_found")),
        ("event-id-negative", "GET", "/events/-1", Expect(404, "not_found")),
        ("replay-unknown", "POST", "/events/987654321/replay", Expect(404, "not_found")),
        ("bogus-status", "GET", "/events?status=bogus", Expect(400, "bad_request", ("status",))),
        ("limit-zero", "GET", "/events?limit=0", Expect(400, "bad_request", ("limit",))),
        ("limit-not-a-number", "GET", "/events?limit=ten", Expect(400, "bad_request", ("limit",))),
        ("limit-huge", "GET", "/events?limit=10000000", Expect(400, "bad_request", ("limit",))),
        ("delete-events", "DELETE", "/events", Expect(405, "method_not_allowed", ("DELETE",))),
        ("lower-case-scheme", "GET", "/events?limit=1", Expect(200, None)),
    ]
    edits = {"lower-case-scheme": put("authorization", f"bearer {ADMIN_TOKEN}")}
    cases += [
        Case("admin", name, expect, method=method, path=path, edit=edits.get(name, token), **bare)
        for name, method, path, expect in authorized
    ]
    return cases


def shop_cases() -> list[Case]:
    """A source with `allowed_shops`: authentic deliveries from other shops are refused."""
    other = Expect(403, "shop_not_allowed", ("shop",))
    evil = "evil.myshopify.com"
    variants: list[tuple[str, Expect, dict[str, Any]]] = [
        ("allowed-shop", CREATED, {}),
        ("allowed-shop-upper-case", CREATED, {"shop": SHOP.upper()}),
        ("allowed-shop-padded", CREATED, {"edit": mangle("x-shopify-shop-domain", " {} ".format)}),
        ("other-shop", Expect(403, "shop_not_allowed", (evil,)), {"shop": evil}),
        ("lookalike-shop", other, {"shop": SHOP + ".evil.example"}),
        ("no-shop-header", other, {"shop": None}),
        ("empty-shop-header", other, {"shop": ""}),
        ("other-shop-bad-signature", Expect(401, "unauthorized"), {"shop": evil, "secret": "x"}),
        ("other-shop-malformed-json", other, {"shop": evil, "body": fixed(b"{")}),
    ]
    return [Case("shop", name, expect, "guarded", **kw) for name, expect, kw in variants]


def precedence_cases() -> list[Case]:
    """Several faults at once: the first check in the documented order answers."""
    big, text, latin = padded(MAX_BODY + 1), "text/plain", "application/json; charset=latin-1"
    too_large, not_json = Expect(413, "too_large"), Expect(415, "unsupported_media_type")
    unsigned = Expect(401, "unauthorized")
    variants: list[tuple[str, Expect, dict[str, Any]]] = [
        ("unknown-source-too-large", Expect(404, "unknown_source"), {"path": "/webhooks/x"}),
        ("too-large-and-not-json", too_large, {"body": big, "content_type": text}),
        ("too-large-and-unsigned", too_large, {"body": big, "signed": False}),
        ("not-json-and-unsigned", not_json, {"content_type": text, "signed": False}),
        ("latin-1-and-unsigned", not_json, {"content_type": latin, "signed": False}),
        ("unsigned-and-malformed", unsigned, {"body": fixed(b"{"), "signed": False}),
        ("wrong-secret-and-empty", unsigned, {"body": fixed(b""), "secret": "x"}),
    ]
    return [Case("precedence", name, expect, **kw) for name, expect, kw in variants]


def _signed_raw(*extra: str, version: str = "1.1") -> Callable[[], bytes]:
    """A valid Shopify delivery written by hand, with `extra` headers."""

    def build() -> bytes:
        body = order()
        proof = SCHEMES["shopify-hmac"].sign(body, SECRETS["shopify"][1], shop=SHOP)
        signed = [f"{key}: {value}" for key, value in proof.items()]
        return raw(JSON, length(len(body)), *extra, *signed, body=body, version=version)()

    return build


def length(size: int) -> str:
    return f"content-length: {size}"


CHUNKED = "transfer-encoding: chunked"
EXPECT_100 = "expect: 100-continue"


def wire_cases() -> list[RawCase]:
    """Dishonest or slow framing: lengths that lie, bodies that trickle, clients that leave."""
    two, timeout = b"{}", ((408,), "timeout")
    big, unknown = ((413,), "too_large"), ((404,), "unknown_source")
    not_json, created = ((415,), "unsupported_media_type"), ((201,), "created")
    bad, unsigned = ((400,), "bad_request"), ((400, 401), "unauthorized")
    chunks = b"2\r\n{}\r\n0\r\n\r\n"
    Row = tuple[str, Callable[[], bytes], tuple[int, ...], str]
    answered: list[Row] = [
        ("declared-gigabyte-sends-nothing", raw(JSON, length(10**9)), *big),
        ("declared-megabyte-sends-nothing", raw(JSON, length(2**20)), *big),
        ("declared-over-limit-expecting-100", raw(JSON, length(2**20), EXPECT_100), *big),
        ("length-larger-than-body", raw(JSON, length(100), body=two), *timeout),
        ("chunked-body-stalls", raw(JSON, CHUNKED, body=b'5\r\n{"id"'), *timeout),
        ("slow-body-to-unknown-source", raw(JSON, length(99), path="/webhooks/x"), *unknown),
        ("slow-body-of-wrong-type", raw("content-type: text/plain", length(99)), *not_json),
        ("valid-expecting-100-continue", _signed_raw(EXPECT_100), *created),
        ("valid-over-http-1.0", _signed_raw(version="1.0"), *created),
    ]
    # Framing the HTTP parser may refuse itself, with a plain-text 400, before the bridge.
    refusable: list[Row] = [
        ("declared-beyond-64-bits", raw(JSON, length(10**23)), (400, 413), "too_large"),
        ("length-smaller-than-body", raw(JSON, length(2), body=b"{}GARBAGE"), *unsigned),
        ("negative-length", raw(JSON, length(-1), body=two), *bad),
        ("length-not-a-number", raw(JSON, "content-length: two", body=two), *bad),
        ("two-different-lengths", raw(JSON, length(2), length(3), body=two), *bad),
        ("length-and-chunked", raw(JSON, length(5), CHUNKED, body=chunks), *unsigned),
        ("bad-chunk-size", raw(JSON, CHUNKED, body=b"zz" + chunks[1:]), *bad),
        ("garbage-request-line", lambda: b"HELLO THERE\r\n\r\n", *bad),
    ]
    # The client leaves mid-body: nobody is left to answer, and nothing is recorded.
    hang_ups: list[tuple[str, Callable[[], bytes]]] = [
        ("length-larger-then-hang-up", raw(JSON, length(100), body=two)),
        ("headers-then-hang-up", raw(JSON, length(50))),
        ("chunked-then-hang-up", raw(JSON, CHUNKED, body=b"2\r\n{}\r\n")),
    ]
    trickles: list[tuple[str, Callable[[], bytes], bytes]] = [
        ("body-trickles", raw(JSON, length(400)), b" " * 400),
        ("chunks-trickle", raw(JSON, CHUNKED), b"1\r\n \r\n" * 60),
    ]
    return [
        *(RawCase("wire", *row) for row in answered),
        *(RawCase("wire", *row, parser_may_refuse=True) for row in refusable),
        *(
            RawCase("wire", name, head, (0, 400), "client_disconnected", then="half-close")
            for name, head in hang_ups
        ),
        *(
            RawCase("wire", name, head, *timeout, then="trickle", trickle=tail)
            for name, head, tail in trickles
        ),
    ]


CASES: list[Case] = [
    *signature_cases(),
    *standard_webhooks_cases(),
    *replay_cases(),
    *malformed_cases(),
    *not_an_order_cases(),
    *size_cases(),
    *content_type_cases(),
    *route_cases(),
    *admin_cases(),
    *shop_cases(),
    *precedence_cases(),
]
RAW_CASES: list[RawCase] = wire_cases()
