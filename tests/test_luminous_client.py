"""The outbound Luminous client, against an in-process mock of Luminous's HTTP API."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bridge import wire
from bridge.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    LeaseLost,
    LuminousError,
    NotFoundError,
    PermanentError,
    RetryableError,
    UnknownOutcome,
    ValidationError,
)
from bridge.invoice import InvoiceItem, InvoiceRequest
from bridge.luminous import USER_AGENT, LuminousClient, retry_after_seconds
from bridge.ratelimit import RateLimiter

BASE_URL = "https://acme.api.joinluminous.com/external/api/v1"
TOKEN = "lum-test-9f3c2a7e1b-SECRET"
BIG_ID = 2**63 - 1  # a 64-bit id that a float would round

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_client(handler: Handler, **options: Any) -> LuminousClient:
    options.setdefault("max_requests_per_second", None)
    return LuminousClient(
        options.pop("base_url", BASE_URL),
        TOKEN,
        transport=httpx.MockTransport(handler),
        **options,
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=wire.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def answering(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return httpx.Response(status, content=body, headers=headers)
        return json_response(status, body, headers)

    return handler


def raising(exc_type: type[httpx.HTTPError], message: str = "boom") -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        if issubclass(exc_type, httpx.RequestError):
            raise exc_type(message, request=request)
        raise exc_type(message)

    return handler


def invoice_request(**changes: Any) -> InvoiceRequest:
    fields: dict[str, Any] = {
        "company_id": BIG_ID,
        "order_date": dt.date(2025, 3, 14),
        "payment_terms": "Due on receipt",
        "customer_po_number": "#1001",
        "items": [
            InvoiceItem(quantity=Decimal(3), unit_price=Decimal("33.333333"), sku="MUG-1"),
        ],
        "total_shipping": Decimal("4.90"),
        "tax_amount": Decimal("0.10"),
    }
    fields.update(changes)
    return InvoiceRequest(**fields)


async def create(handler: Handler) -> LuminousError:
    async with make_client(handler) as client:
        with pytest.raises(LuminousError) as caught:
            await client.create_invoice(invoice_request())
    return caught.value


async def get(handler: Handler) -> LuminousError:
    async with make_client(handler) as client:
        with pytest.raises(LuminousError) as caught:
            await client.get_invoice(7)
    return caught.value


# --- request shape and answers ------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("base_url", [BASE_URL, BASE_URL + "/"])
async def test_create_invoice_sends_exact_json_with_headers(base_url: str) -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(201, {"data": {"id": 2**53 + 1, "total": Decimal("105.00")}})

    async with make_client(handler, base_url=base_url) as client:
        invoice = await client.create_invoice(invoice_request())

    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == BASE_URL + "/invoices"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("luminous-invoice-bridge/")
    raw = request.content
    assert b'"unit_price":33.333333' in raw
    assert b'"company_id":9223372036854775807' in raw
    assert b'"total_shipping":4.90' in raw
    assert wire.loads(raw) == {
        "company_id": BIG_ID,
        "order_date": "2025-03-14",
        "payment_terms": "Due on receipt",
        "customer_po_number": "#1001",
        "items": [{"quantity": 3, "unit_price": Decimal("33.333333"), "sku": "MUG-1"}],
        "total_shipping": Decimal("4.90"),
        "tax_amount": Decimal("0.10"),
    }
    assert invoice.id == 2**53 + 1
    assert invoice.total == Decimal("105.00")


@pytest.mark.anyio
async def test_requests_are_the_ones_httpx_s_client_would_build() -> None:
    # Built from what was merged once, each request is byte for byte httpx's own.
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.query:
            return json_response(200, {"data": [{"id": 1}], "meta": {"last_page": 1}})
        return json_response(200, {"data": {"id": 1}})

    async with make_client(handler) as client:
        await client.create_invoice(invoice_request())
        await client.create_invoice(invoice_request())  # its URL as kept by path
        await client.get_invoice(7)
        await client.find_invoices_by_custom_field("Order Ref", "shop/1 #2")
        await client._request("POST", "/invoices/7/void", "a bodyless POST")
        http = client._http
        expected = [
            http.build_request(
                "POST",
                "/invoices",
                content=wire.dumps(invoice_request().to_wire()),
                headers={"Content-Type": "application/json"},
            ),
            http.build_request(
                "POST",
                "/invoices",
                content=wire.dumps(invoice_request().to_wire()),
                headers={"Content-Type": "application/json"},
            ),
            http.build_request("GET", "/invoices/7"),
            http.build_request(
                "GET",
                httpx.URL(
                    "/invoices",
                    query=b"custom_fields.Order%20Ref%5Beq%5D=shop%2F1%20%232&per_page=100&page=1",
                ),
            ),
            http.build_request("POST", "/invoices/7/void"),
        ]
    assert len(seen) == len(expected)
    for sent, built in zip(seen, expected, strict=True):
        assert (sent.method, str(sent.url)) == (built.method, str(built.url))
        assert sent.content == built.content
        assert sent.headers.raw == built.headers.raw
        assert sent.extensions == built.extensions


@pytest.mark.anyio
async def test_a_cookie_luminous_sets_is_sent_back() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(200, {"data": {"id": 1}}, {"Set-Cookie": "lb=node-2; Path=/"})

    async with make_client(handler) as client:
        await client.get_invoice(1)
        await client.get_invoice(2)
    assert "Cookie" not in seen[0].headers
    assert seen[1].headers["Cookie"] == "lb=node-2"


@pytest.mark.anyio
async def test_answers_are_parsed_leniently() -> None:
    body = b'{"data": {"id": "123", "total": 45.10, "payment_status": "unpaid", "customer": {}}}'
    async with make_client(answering(200, body)) as client:
        invoice = await client.get_invoice(123)
    assert invoice.id == 123
    assert invoice.total == Decimal("45.10")
    assert invoice.model_extra == {"payment_status": "unpaid"}
    assert invoice.company is None  # the company is read from `customer.id` when present


@pytest.mark.anyio
async def test_get_invoice_is_a_bodyless_get_of_its_path() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(200, {"data": {"id": 55}})

    async with make_client(handler) as client:
        assert (await client.get_invoice(55)).id == 55
    assert seen[0].method == "GET"
    assert str(seen[0].url) == BASE_URL + "/invoices/55"
    assert seen[0].content == b""
    assert "Content-Type" not in seen[0].headers


@pytest.mark.anyio
async def test_check_token_reads_one_invoice_and_raises_when_refused() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(200, {"data": [], "meta": {"last_page": 1}})

    async with make_client(handler) as client:
        await client.check_token()
    assert seen[0].url.path == "/external/api/v1/invoices"
    assert dict(seen[0].url.params) == {"per_page": "1"}

    async with make_client(answering(401, {"message": "Unauthenticated."})) as client:
        with pytest.raises(AuthError, match="Unauthenticated"):
            await client.check_token()


@pytest.mark.anyio
async def test_a_403_blames_the_token_only_on_the_token_check() -> None:
    # A 403 on one endpoint forbids that request; only the token check speaks for the token.
    async with make_client(answering(403, {"message": "This action is unauthorized."})) as client:
        with pytest.raises(AuthError, match="token"):
            await client.check_token()
        with pytest.raises(ForbiddenError, match="forbids") as caught:
            await client.get_invoice(7)
    assert not isinstance(caught.value, AuthError)


@pytest.mark.anyio
async def test_one_deadline_covers_the_whole_request() -> None:
    # httpx times each phase; an answer that trickles in must still end at the deadline.
    async def trickle(request: httpx.Request) -> httpx.Response:
        async def body() -> Any:
            for _ in range(20):
                await asyncio.sleep(0.05)
                yield b" "

        return httpx.Response(201, content=body(), headers={"Content-Type": "application/json"})

    started = time.monotonic()
    async with make_client(trickle, timeout=0.3) as client:
        with pytest.raises(UnknownOutcome, match=r"within 0\.3 s"):
            await client.create_invoice(invoice_request())
    assert time.monotonic() - started < 0.9


@pytest.mark.anyio
async def test_a_guard_that_refuses_stops_the_send_before_it_is_written() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(201, {"data": {"id": 1}})

    async def lost() -> None:
        raise LeaseLost("taken over")

    async def held() -> None:
        return None

    async with make_client(handler) as client:
        with pytest.raises(LeaseLost):
            await client.create_invoice(invoice_request(), guard=lost)
        assert seen == []
        invoice = await client.create_invoice(invoice_request(), guard=held)
    assert invoice.id == 1
    assert len(seen) == 1


# --- pagination ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_find_invoices_follows_every_page_with_an_encoded_filter() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params["page"])
        rows = [{"id": page * 10 + n, "customer_po_number": "#1001"} for n in range(2)]
        return json_response(200, {"data": rows, "meta": {"current_page": page, "last_page": 3}})

    async with make_client(handler) as client:
        invoices = await client.find_invoices(customer_po_number="#1001")

    assert [invoice.id for invoice in invoices] == [10, 11, 20, 21, 30, 31]
    assert [request.url.params["page"] for request in seen] == ["1", "2", "3"]
    for request in seen:
        assert request.url.params["customer_po_number[eq]"] == "#1001"
        assert request.url.params["per_page"] == "100"
        assert b"customer_po_number%5Beq%5D=%231001" in request.url.query
        assert b"#" not in request.url.query


@pytest.mark.anyio
async def test_find_invoices_with_no_match_asks_once() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return json_response(200, {"data": [], "meta": {"current_page": 1, "last_page": 1}})

    async with make_client(handler) as client:
        assert await client.find_invoices(customer_po_number="EU-1 & co") == []
    assert calls == 1


@pytest.mark.anyio
async def test_find_invoices_without_meta_stops_at_a_short_page() -> None:
    pages: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        pages.append(request.url.params["page"])
        count = 100 if request.url.params["page"] == "1" else 3
        return json_response(200, {"data": [{"id": n} for n in range(count)]})

    async with make_client(handler) as client:
        found = await client.find_invoices(customer_po_number="#1")
    assert pages == ["1", "2"]
    assert len(found) == 103


@pytest.mark.anyio
async def test_find_invoices_refuses_a_row_without_id_as_retryable() -> None:
    handler = answering(200, {"data": [{"id": 1}, {"total": 3}], "meta": {"last_page": 1}})
    async with make_client(handler) as client:
        with pytest.raises(RetryableError) as caught:
            await client.find_invoices(customer_po_number="#1")
    assert type(caught.value) is RetryableError


# --- status codes --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, PermanentError),
        (401, AuthError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (405, PermanentError),
        (409, ConflictError),
        (413, PermanentError),
        (422, ValidationError),
        (429, RetryableError),
        (500, UnknownOutcome),
        (502, UnknownOutcome),
        (503, UnknownOutcome),
    ],
)
async def test_each_status_on_create_becomes_its_error(
    status: int, error_class: type[LuminousError]
) -> None:
    exc = await create(answering(status, {"message": "nope"}))
    assert type(exc) is error_class
    assert exc.status == status
    assert exc.body == {"message": "nope"}
    assert f"({status})" in str(exc)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_on_get_is_plainly_retryable(status: int) -> None:
    exc = await get(answering(status, b"<html>Bad Gateway</html>"))
    assert type(exc) is RetryableError
    assert exc.status == status
    assert exc.body == "<html>Bad Gateway</html>"


@pytest.mark.anyio
async def test_a_redirect_is_permanent_and_says_where() -> None:
    exc = await get(answering(302, b"", {"Location": "https://acme.joinluminous.com/login"}))
    assert type(exc) is PermanentError
    assert "redirected to https://acme.joinluminous.com/login" in str(exc)


@pytest.mark.anyio
async def test_validation_error_carries_luminous_field_messages() -> None:
    body = {
        "message": "The given data was invalid.",
        "errors": {"items.0.product": ["not found"], "company_id": ["invalid", "missing"]},
    }
    exc = await create(answering(422, body))
    assert isinstance(exc, ValidationError)
    assert exc.errors == {"items.0.product": ["not found"], "company_id": ["invalid", "missing"]}
    assert str(exc) == (
        "Luminous refused the invoice (422): "
        "items.0.product: not found; company_id: invalid, missing"
    )
    assert exc.body == body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "errors", "in_message"),
    [
        (
            {"message": "Bad SKU", "errors": {"sku": "unknown"}},
            {"sku": ["unknown"]},
            "sku: unknown",
        ),
        ({"errors": ["one", "two"]}, {"": ["one", "two"]}, "(422): one, two"),
        ({"message": "Only a message"}, {}, "Only a message"),
        ({"message": "x", "errors": {"a": [], "b": None}}, {}, "(422): x"),
        ({"errors": {"qty": [0, None, "must be > 0"]}}, {"qty": ["0", "must be > 0"]}, "qty: 0"),
        (["not", "an", "object"], {}, '["not","an","object"]'),
        (b"<html>Unprocessable</html>", {}, "<html>Unprocessable</html>"),
        (b"", {}, "Unprocessable Entity"),
    ],
)
async def test_validation_error_tolerates_odd_shapes(
    body: Any, errors: dict[str, list[str]], in_message: str
) -> None:
    exc = await create(answering(422, body))
    assert isinstance(exc, ValidationError)
    assert exc.errors == errors
    assert in_message in str(exc)


@pytest.mark.anyio
async def test_a_huge_error_answer_is_truncated() -> None:
    exc = await get(answering(400, b"x" * 100_000))
    assert isinstance(exc.body, str)
    assert len(exc.body) < 9_000
    assert exc.body.endswith("(100000 characters in all)")
    assert len(str(exc)) < 500


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "-3"}, 0.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
    ],
)
async def test_throttling_carries_retry_after_seconds(
    header: dict[str, str], expected: float | None
) -> None:
    exc = await get(answering(429, {"message": "Too Many Attempts."}, header))
    assert type(exc) is RetryableError
    assert exc.retry_after == expected


@pytest.mark.anyio
async def test_throttling_with_an_http_date_counts_seconds_from_now() -> None:
    header = {"Retry-After": email.utils.formatdate(time.time() + 120, usegmt=True)}
    exc = await create(answering(429, None, header))
    assert type(exc) is RetryableError
    assert exc.retry_after is not None
    assert 115 <= exc.retry_after <= 120


@pytest.mark.anyio
async def test_server_error_passes_on_retry_after() -> None:
    exc = await create(answering(503, None, {"Retry-After": "30"}))
    assert isinstance(exc, UnknownOutcome)
    assert exc.retry_after == 30.0


NOW = dt.datetime(2025, 3, 14, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Fri, 14 Mar 2025 12:01:30 GMT", 90.0),
        ("Fri, 14 Mar 2025 11:00:00 GMT", 0.0),
        ("Fri, 14 Mar 2025 12:00:10 -0000", 10.0),
        ("in a while", None),
        ("", None),
        (None, None),
        ("9" * 400, None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == expected


# --- transport failures --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc_type", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError]
)
async def test_a_request_that_never_left_is_plainly_retryable_even_for_post(
    exc_type: type[httpx.HTTPError],
) -> None:
    exc = await create(raising(exc_type))
    assert type(exc) is RetryableError
    assert isinstance(exc.__cause__, exc_type)
    assert exc.status is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc_type",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
    ],
)
async def test_a_post_lost_after_sending_has_an_unknown_outcome(
    exc_type: type[httpx.HTTPError],
) -> None:
    exc = await create(raising(exc_type))
    assert type(exc) is UnknownOutcome
    assert isinstance(exc.__cause__, exc_type)
    assert "may have taken effect" in str(exc)


@pytest.mark.anyio
@pytest.mark.parametrize("exc_type", [httpx.ReadTimeout, httpx.RemoteProtocolError])
async def test_a_get_lost_after_sending_is_plainly_retryable(
    exc_type: type[httpx.HTTPError],
) -> None:
    exc = await get(raising(exc_type))
    assert type(exc) is RetryableError
    assert isinstance(exc.__cause__, exc_type)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body", [b"<html>OK</html>", b'{"data": {"total": 1}}', b'{"data": []}', b'{"id": 5}', b"null"]
)
async def test_an_unusable_success_is_unknown_for_post_and_retryable_for_get(body: bytes) -> None:
    exc = await create(answering(201, body))
    assert type(exc) is UnknownOutcome
    assert exc.status == 201
    exc = await get(answering(200, body))
    assert type(exc) is RetryableError
    assert exc.status == 200


@pytest.mark.anyio
async def test_timeouts_are_configured_with_a_short_connect() -> None:
    seen: list[dict[str, float | None]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return json_response(200, {"data": {"id": 1}})

    async with make_client(handler, timeout=12.0) as client:
        await client.get_invoice(1)
    async with make_client(handler, timeout=2.0) as client:
        await client.get_invoice(1)
    assert seen[0] == {"connect": 5.0, "read": 12.0, "write": 12.0, "pool": 12.0}
    assert seen[1] == {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


# --- the token never leaks -----------------------------------------------------------------

ECHO = {"message": f"bad token Bearer {TOKEN}", "errors": {"auth": [f"token {TOKEN} revoked"]}}
LEAK_SCENARIOS: list[tuple[str, Handler]] = [
    ("401", answering(401, ECHO)),
    ("403", answering(403, ECHO)),
    ("404", answering(404, ECHO)),
    ("409", answering(409, ECHO)),
    ("422", answering(422, ECHO)),
    ("400", answering(400, f"plain text {TOKEN}")),
    ("429", answering(429, ECHO, {"Retry-After": "1"})),
    ("500", answering(500, ECHO)),
    ("huge", answering(500, f"{TOKEN} " * 5000)),
    ("not json", answering(200, f"<p>{TOKEN}</p>")),
    ("no id", answering(200, {"data": {"note": TOKEN}})),
    ("connect", raising(httpx.ConnectError, f"refused for {TOKEN}")),
    ("read timeout", raising(httpx.ReadTimeout)),
    ("protocol", raising(httpx.RemoteProtocolError, f"peer said {TOKEN}")),
]


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(("name", "handler"), LEAK_SCENARIOS, ids=[s[0] for s in LEAK_SCENARIOS])
async def test_the_token_appears_in_no_error_or_log(
    name: str, handler: Handler, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.luminous")
    exc = await (create(handler) if method == "POST" else get(handler))
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc)
    assert TOKEN not in repr(exc.body)
    assert TOKEN not in str(exc.args)
    assert TOKEN not in caplog.text
    assert caplog.records, "each request is logged"


def test_the_client_repr_and_config_errors_hide_the_token() -> None:
    client = LuminousClient(
        BASE_URL, TOKEN, transport=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    assert TOKEN not in repr(client)
    with pytest.raises(ConfigError) as caught:
        LuminousClient(BASE_URL, TOKEN + "\n")
    assert caught.value.key == "luminous.token_env"
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("base_url", "options", "key"),
    [
        ("acme.api.joinluminous.com", {}, "luminous.base_url"),
        ("ftp://acme/external/api/v1", {}, "luminous.base_url"),
        (BASE_URL, {"timeout": 0}, "luminous.timeout"),
        (BASE_URL, {"max_concurrency": 0}, "luminous.max_concurrency"),
        (BASE_URL, {"max_requests_per_second": -1}, "luminous.max_requests_per_second"),
    ],
)
def test_bad_settings_name_their_key(base_url: str, options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LuminousClient(base_url, TOKEN, **options)
    assert caught.value.key == key


# --- logging and lifetime ------------------------------------------------------------------


@pytest.mark.anyio
async def test_each_request_is_one_debug_line_without_bodies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.luminous")
    async with make_client(answering(201, {"data": {"id": 1, "secret_note": "xyzzy"}})) as client:
        await client.create_invoice(invoice_request())
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("POST /invoices -> 201 in ")
    assert record.getMessage().endswith(" ms")
    assert "xyzzy" not in caplog.text
    assert "MUG-1" not in caplog.text


@pytest.mark.anyio
async def test_leaving_the_context_closes_the_transport() -> None:
    class RecordingTransport(httpx.MockTransport):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    transport = RecordingTransport(lambda request: httpx.Response(200))
    async with LuminousClient(BASE_URL, TOKEN, transport=transport):
        pass
    assert transport.closed


# --- pacing: concurrency and rate ----------------------------------------------------------


@pytest.mark.anyio
async def test_no_more_requests_in_flight_than_max_concurrency() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return json_response(200, {"data": {"id": 1}})

    async with make_client(handler, max_concurrency=3) as client:
        await asyncio.gather(*(client.get_invoice(n) for n in range(15)))
    assert peak == 3


@pytest.mark.anyio
async def test_the_client_paces_a_backlog_to_its_rate() -> None:
    sent: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return json_response(200, {"data": {"id": 1}})

    rate = 40
    async with make_client(handler, max_concurrency=50, max_requests_per_second=rate) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.get_invoice(n) for n in range(50)))
    # A burst of `rate`, then the other 10 at `rate` per second: about a quarter second.
    assert time.monotonic() - started >= 0.2
    assert sum(1 for moment in sent if moment - started < 0.1) <= rate + 0.1 * rate + 1


class FakeClock:
    """Time that passes only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    granted: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        granted.append(clock.now)

    await asyncio.gather(*(take() for _ in range(8)))
    assert granted == pytest.approx([0, 0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


@pytest.mark.anyio
@pytest.mark.parametrize(("rate", "burst"), [(5, None), (0.5, None), (3, 10)])
async def test_rate_limiter_never_exceeds_its_bucket_under_concurrency(
    rate: float, burst: float | None
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, burst=burst, clock=clock, sleep=clock.sleep)
    granted: list[float] = []

    async def take(delay: float) -> None:
        await clock.sleep(delay)
        await limiter.acquire()
        granted.append(clock.now)

    await asyncio.gather(*(take((n % 7) * 0.01) for n in range(40)))
    assert len(granted) == 40
    bucket = limiter.burst
    for start in granted:
        for window in (0.5, 1.0, 3.0):
            count = sum(1 for moment in granted if start <= moment < start + window)
            assert count <= bucket + rate * window + 1e-9


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_use_up_a_token() -> None:
    clock = FakeClock()
    blocked = asyncio.Event()

    async def sleep_until_released(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()

    limiter = RateLimiter(1, clock=clock, sleep=sleep_until_released)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await blocked.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    clock.now = 1.0
    blocked.clear()
    await asyncio.wait_for(limiter.acquire(), timeout=1)
    assert not blocked.is_set()


def test_rate_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(5, burst=0.5)
