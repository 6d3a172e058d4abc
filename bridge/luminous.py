"""The outbound Luminous client: its answers as models, its failures as the bridge's errors.

Every call goes through `LuminousClient._request`, which paces it (concurrency and rate),
sends it, and translates what came back (see `bridge.luminous_errors`). Each query Luminous
does not document for its resource is marked [INFERRED] where it is built, one line to
change once checked against a live tenant.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import pydantic

import bridge
from bridge import wire
from bridge.catalog import Company, Contact, NewCompany, NewContact, Product
from bridge.errors import ConfigError
from bridge.invoice import Invoice, InvoiceRequest
from bridge.luminous_errors import Answer, ErrorTranslator, retry_after_seconds
from bridge.luminous_transport import AiohttpTransport
from bridge.ratelimit import RateLimiter

__all__ = ["USER_AGENT", "LuminousClient", "retry_after_seconds"]

_FALLBACK_VERSION = "0.1.0"
USER_AGENT = f"luminous-invoice-bridge/{getattr(bridge, '__version__', _FALLBACK_VERSION)}"

PAGE_SIZE = 100  # Luminous's maximum per_page
_MAX_PAGES = 100  # far beyond any real match; stops a server that never ends
_MAX_LIST_PAGES = 5_000  # a reconcile's date range: 500,000 invoices
_KEPT_URLS = 64  # merged URLs kept, by path; paths with an id in them are many
_LENGTH_WHEN_EMPTY = frozenset({"POST", "PUT", "PATCH"})  # httpx sends `Content-Length: 0`

# Sending these twice may do twice what they do, so a lost answer leaves the outcome unknown.
_NOT_IDEMPOTENT = frozenset({"POST", "PATCH"})
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")

Params = tuple[tuple[str, str], ...]
Model = TypeVar("Model", bound=pydantic.BaseModel)
# Awaited after the request has its slot and its turn, just before it is written: it raises
# (e.g. `LeaseLost`) to stop a send that must not happen any more.
Guard = Callable[[], Awaitable[None]]

log = logging.getLogger("bridge.luminous")


class LuminousClient:
    """One pooled httpx.AsyncClient per process, created by the app's lifespan."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_concurrency: int = 4,
        max_requests_per_second: float | None = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        on_answer: Callable[[str, str, float], None] | None = None,
    ) -> None:
        _check_settings(base_url, token, timeout, max_concurrency, max_requests_per_second)
        self._base_url = base_url
        # Told of every request: its endpoint ("POST /invoices/{id}/tags"), its outcome (the
        # HTTP status, or why there was none) and its seconds; the metrics' latency histogram.
        self._on_answer = on_answer or (lambda endpoint, outcome, seconds: None)
        self.deadline = timeout  # one whole request, however slowly its answer trickles in
        self._errors = ErrorTranslator(token)
        self._slots = asyncio.Semaphore(max_concurrency)
        # A burst of one paces requests evenly: no second ever sees more than the limit,
        # whichever way Luminous counts its window.
        self._rate = (
            RateLimiter(max_requests_per_second, burst=1) if max_requests_per_second else None
        )
        limits = httpx.Limits(
            max_connections=max_concurrency, max_keepalive_connections=max_concurrency
        )
        if transport is None and not _proxied(base_url):
            transport = AiohttpTransport(limits=limits)
        # The transport `_send` hands requests to itself; None while httpx's own serves the
        # proxy the environment names.
        self._transport = transport
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=limits,
            transport=transport,
        )
        # What httpx would merge into every request, merged once: its URL (by path, for
        # paths without a query), its headers, its timeouts.
        self._urls: dict[str, httpx.URL] = {}
        self._headers = self._http.headers
        self._json_headers = httpx.Headers(self._headers)
        self._json_headers["Content-Type"] = "application/json"
        self._timeouts = self._http.timeout.as_dict()
        self._cookies = False  # whether an answer has set a cookie, to send back from then on

    def __repr__(self) -> str:
        return f"LuminousClient({self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ---- invoices ------------------------------------------------------------------------

    async def create_invoice(
        self, request: InvoiceRequest, *, guard: Guard | None = None
    ) -> Invoice:
        """Create the invoice; a lost answer raises `UnknownOutcome` (look before resending).

        `guard` runs after any wait for a slot or the rate limit, right before the request
        is written, so a worker that lost its claim meanwhile sends nothing.
        """
        answer = await self._request(
            "POST", "/invoices", "the invoice", body=request.to_wire(), guard=guard
        )
        return self._one(Invoice, answer, "the invoice", repeatable=False)

    async def get_invoice(self, invoice_id: int) -> Invoice:
        """One invoice by its Luminous ID."""
        subject = f"the lookup of invoice {invoice_id}"
        answer = await self._request("GET", f"/invoices/{int(invoice_id)}", subject)
        return self._one(Invoice, answer, subject)

    async def find_invoices(self, *, customer_po_number: str) -> list[Invoice]:
        """Every invoice whose PO number is exactly this one, across all pages."""
        subject = f"the search for invoices with PO number {customer_po_number!r}"
        filters = (("customer_po_number[eq]", customer_po_number),)
        return await self._find(Invoice, "/invoices", subject, filters)

    async def find_invoices_by_custom_field(self, label: str, value: str) -> list[Invoice]:
        """Every invoice whose custom field `label` is exactly `value` (documented filter)."""
        subject = f"the search for invoices with {label} {value!r}"
        filters = ((f"custom_fields.{label}[eq]", value),)
        return await self._find(Invoice, "/invoices", subject, filters)

    async def find_invoices_by_order_date(self, first: str, last: str) -> list[Invoice]:
        """Every invoice dated from `first` to `last` (YYYY-MM-DD, inclusive), all pages."""
        subject = f"the list of invoices dated {first} to {last}"
        filters = (("order_date[gte]", first), ("order_date[lte]", last))
        return await self._find(Invoice, "/invoices", subject, filters, max_pages=_MAX_LIST_PAGES)

    async def add_invoice_tags(self, invoice_id: int, tags: list[str]) -> list[str]:
        """Attach tags to an invoice, keeping its others; returns all its tag names."""
        subject = f"the tags {tags!r} for invoice {invoice_id}"
        path = f"/invoices/{int(invoice_id)}/tags"
        # Attaching the same tags twice leaves them attached once, so a lost answer is harmless.
        # [INFERRED] POST (attach) is what Luminous's own CLI sends; only PUT is documented.
        answer = await self._request("POST", path, subject, body={"tags": tags}, repeatable=True)
        # Any 2xx means the tags are attached, as Luminous's own CLI reads it; the answer's
        # shape varies (the invoice, its tags, or nothing), so the list is read when present.
        body = answer.body.get("data", answer.body) if isinstance(answer.body, dict) else None
        names = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(names, list):
            return list(tags)
        return [_tag_name(tag) for tag in names if _tag_name(tag)]

    async def check_token(self) -> None:
        """Prove Luminous accepts our token with the cheapest authenticated read."""
        await self._request(
            "GET", "/invoices", "the token check", params=(("per_page", "1"),), probe=True
        )

    # ---- companies and contacts ----------------------------------------------------------

    async def find_companies_by_custom_field(self, label: str, value: str) -> list[Company]:
        """Every company whose custom field `label` is exactly `value`."""
        subject = f"the search for companies with {label} {value!r}"
        # [INFERRED] documented for invoices; assumed to work the same on companies.
        filters = ((f"custom_fields.{label}[eq]", value),)
        return await self._find(Company, "/companies", subject, filters)

    async def find_companies_by_name(self, name: str) -> list[Company]:
        """Every company called exactly `name`."""
        subject = f"the search for companies named {name!r}"
        # [INFERRED] the generic filter syntax on a field the companies list shows.
        filters = (("name[eq]", name),)
        return await self._find(Company, "/companies", subject, filters)

    async def find_contacts_by_email(self, email: str) -> list[Contact]:
        """Every contact with this e-mail address, in any company."""
        subject = f"the search for contacts with e-mail {email!r}"
        # [INFERRED] the global contacts list exists; its e-mail filter is not documented.
        filters = (("email[eq]", email),)
        return await self._find(Contact, "/contacts", subject, filters)

    async def get_company(self, company_id: int) -> Company:
        """One company by its Luminous ID; `NotFoundError` if there is none."""
        subject = f"the lookup of company {company_id}"
        answer = await self._request("GET", f"/companies/{int(company_id)}", subject)
        return self._one(Company, answer, subject)

    async def create_company(self, company: NewCompany) -> Company:
        """Create a company; a lost answer raises `UnknownOutcome` (look it up again)."""
        subject = f"the new company {company.name!r}"
        answer = await self._request("POST", "/companies", subject, body=company.to_wire())
        return self._one(Company, answer, subject, repeatable=False)

    async def create_contact(self, contact: NewContact) -> Contact:
        """Create a contact; a lost answer raises `UnknownOutcome` (look it up again)."""
        subject = f"the new contact for company {contact.company_id}"
        answer = await self._request("POST", "/contacts", subject, body=contact.to_wire())
        return self._one(Contact, answer, subject, repeatable=False)

    # ---- products ------------------------------------------------------------------------

    async def find_products_by_sku(self, sku: str) -> list[Product]:
        """Every product whose main SKU or one of whose alternate SKUs is `sku`."""
        subject = f"the search for products with SKU {sku!r}"
        filters = (("sku[eq]", sku),)
        return await self._find(Product, "/products", subject, filters)

    async def upsert_product(self, sku: str, name: str) -> Product:
        """Create the product with this main SKU, or rename the one that has it."""
        subject = f"the product with SKU {sku!r}"
        body = {"sku": sku, "name": name}
        # [INFERRED] that the upsert matches by SKU when no id is sent; keyed so, sending it
        # twice leaves one product, as sending it once does.
        answer = await self._request("PATCH", "/products", subject, body=body, repeatable=True)
        return self._one(Product, answer, subject, repeatable=True)

    # ---- plumbing ------------------------------------------------------------------------

    async def _find(
        self,
        model: type[Model],
        path: str,
        subject: str,
        filters: Params,
        *,
        max_pages: int = _MAX_PAGES,
    ) -> list[Model]:
        rows = await self._list_all(path, subject, filters, max_pages)
        return [self._parse(model, row, page, subject, repeatable=True) for page, row in rows]

    async def _list_all(
        self, path: str, subject: str, filters: Params, max_pages: int = _MAX_PAGES
    ) -> list[tuple[Answer, Any]]:
        """Every row of a paged list, each with the page that held it (for error reports)."""
        rows: list[tuple[Answer, Any]] = []
        page = 1
        while True:
            params = (*filters, ("per_page", str(PAGE_SIZE)), ("page", str(page)))
            answer = await self._request("GET", path, subject, params=params)
            data = answer.body.get("data") if isinstance(answer.body, dict) else None
            if not isinstance(data, list):
                raise self._errors.unusable(
                    subject, answer, "it holds no list of data", repeatable=True
                )
            rows.extend((answer, row) for row in data)
            last_page = _last_page(answer.body)
            more = page < last_page if last_page is not None else len(data) >= PAGE_SIZE
            if not more or not data:
                return rows
            if page >= max_pages:
                why = f"it runs past {max_pages} pages"
                raise self._errors.unusable(subject, answer, why, repeatable=True)
            page += 1

    def _one(
        self, model: type[Model], answer: Answer, subject: str, *, repeatable: bool = True
    ) -> Model:
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        return self._parse(model, data, answer, subject, repeatable=repeatable)

    def _parse(
        self, model: type[Model], data: Any, answer: Answer, subject: str, *, repeatable: bool
    ) -> Model:
        if not isinstance(data, dict) or data.get("id") is None:
            raise self._errors.unusable(subject, answer, "it has no data.id", repeatable=repeatable)
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            noun = model.__name__.lower()
            why = f"its {noun} does not parse ({exc.error_count()} problems)"
            raise self._errors.unusable(subject, answer, why, repeatable=repeatable) from exc

    async def _request(
        self,
        method: str,
        path: str,
        subject: str,
        *,
        params: Params = (),
        body: Any = None,
        repeatable: bool | None = None,
        guard: Guard | None = None,
        probe: bool = False,
    ) -> Answer:
        """Send one request within the limits; return its parsed 2xx answer or raise.

        `repeatable` defaults to whether the method is idempotent; name it for a request
        whose effect is the same however often it is sent. The whole request, answer
        included, has `deadline` seconds: httpx's own timeouts apply per phase, so a server
        that trickles its answer could otherwise hold a send far longer.
        """
        if repeatable is None:
            repeatable = method not in _NOT_IDEMPOTENT
        content = None if body is None else wire.dumps(body)
        async with self._slots:
            if self._rate is not None:
                await self._rate.acquire()
            if guard is not None:
                await guard()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.deadline):
                    response = await self._send(method, path, params, content)
            except TimeoutError as exc:
                self._answered(method, path, "deadline", started)
                lost = httpx.ReadTimeout(f"no whole answer within {self.deadline:g} s")
                raise self._errors.lost(lost, subject, repeatable=repeatable) from exc
            except httpx.HTTPError as exc:
                self._answered(method, path, type(exc).__name__, started)
                raise self._errors.lost(exc, subject, repeatable=repeatable) from exc
        self._answered(method, path, response.status_code, started)
        if not response.is_success:
            raise self._errors.refusal(response, subject, repeatable=repeatable, probe=probe)
        if not response.content.strip():  # a bare 204: callers that need data say so
            return Answer(response.status_code, None)
        try:
            return Answer(response.status_code, wire.loads(response.content))
        except wire.MalformedJSON as exc:
            answer = self._errors.unreadable(response)
            why = f"it is not JSON ({exc})"
            raise self._errors.unusable(subject, answer, why, repeatable=repeatable) from exc

    async def _send(
        self, method: str, path: str, params: Params, content: bytes | None
    ) -> httpx.Response:
        """One exchange, its answer read whole.

        This client's base URL, headers, timeouts, auth (none but the header) and redirects
        (never followed) are fixed, so on its own transport the request is built from what
        was merged once (`_build`), rather than by `AsyncClient.send`'s per-request merging
        and steps: the same request, for about half the client's CPU. Once an answer has set
        a cookie, httpx's `build_request` merges the jar into each request as it always did.
        Behind a proxy, httpx's own client sends it.
        """
        query = _query(params) if params else None
        headers = None if content is None else {"Content-Type": "application/json"}
        relative = httpx.URL(path, query=query) if query else path
        if self._transport is None:
            return await self._http.request(method, relative, content=content, headers=headers)
        request = None if self._cookies else self._build(method, path, query, content)
        if request is None:
            request = self._http.build_request(method, relative, content=content, headers=headers)
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            if "set-cookie" in response.headers:
                self._http.cookies.extract_cookies(response)
                self._cookies = True
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    def _build(
        self, method: str, path: str, query: bytes | None, content: bytes | None
    ) -> httpx.Request | None:
        """The request `build_request` would make, header for header, from what was merged
        once; None for a bodyless POST, PUT or PATCH (httpx adds its length elsewhere)."""
        if not content and method in _LENGTH_WHEN_EMPTY:
            return None
        url = self._url(path, query)
        raw = [(b"Host", url.netloc), *(self._json_headers if content else self._headers).raw]
        if content:
            raw.append((b"Content-Length", str(len(content)).encode()))
        request = httpx.Request(
            method,
            url,
            headers=raw,
            stream=httpx.ByteStream(content or b""),
            extensions={"timeout": dict(self._timeouts)},
        )
        request.read()  # its content, as httpx's own requests have it
        return request

    def _url(self, path: str, query: bytes | None) -> httpx.URL:
        """The request's URL under the base URL, as httpx merges it (kept by path)."""
        url = self._urls.get(path) if query is None else None
        if url is None:
            base = self._http.base_url  # it ends in "/"
            relative = httpx.URL(path, query=query)
            url = base.copy_with(raw_path=base.raw_path + relative.raw_path.lstrip(b"/"))
            if query is None and len(self._urls) < _KEPT_URLS:
                self._urls[path] = url
        return url

    def _answered(self, method: str, path: str, outcome: int | str, started: float) -> None:
        elapsed = time.perf_counter() - started
        log.debug("%s %s -> %s in %.1f ms", method, path, outcome, elapsed * 1000)
        self._on_answer(f"{method} {endpoint(path)}", str(outcome), elapsed)


def _proxied(base_url: str) -> bool:
    """Whether the environment names a proxy for `base_url`'s scheme. httpx's own transport
    honours HTTPS_PROXY, ALL_PROXY and NO_PROXY as it always did; the aiohttp one knows no
    proxies, so it is used only when none is set (the same lookup httpx makes)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in (httpx.URL(base_url).scheme, "all"))


def _query(params: Params) -> bytes:
    """A query string with every reserved character escaped and spaces as `%20`.

    `+` for a space is form encoding, which a server that splits the raw query itself (as
    `custom_fields.<Label>[eq]` suggests Luminous does) may keep as a plus.
    """
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="").encode()


def _check_settings(
    base_url: str,
    token: str,
    timeout: float,
    max_concurrency: int,
    max_requests_per_second: float | None,
) -> None:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError("luminous.base_url", f"{base_url!r} is not an http(s) URL")
    # An unprintable token would reach an HTTP library's error message verbatim.
    if not _TOKEN_SHAPE.fullmatch(token):
        raise ConfigError("luminous.token_env", "the token is empty or has spaces or controls")
    if not timeout > 0:
        raise ConfigError("luminous.timeout", f"must be positive, not {timeout!r}")
    if max_concurrency < 1:
        raise ConfigError("luminous.max_concurrency", f"must be 1 or more, not {max_concurrency}")
    if max_requests_per_second is not None and max_requests_per_second < 0:
        raise ConfigError(
            "luminous.max_requests_per_second",
            f"must be 0 (off) or more, not {max_requests_per_second}",
        )


def endpoint(path: str) -> str:
    """A path with its ids as `{id}`, so one endpoint is one metric label, whatever the id."""
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def _last_page(body: Mapping[str, Any]) -> int | None:
    meta = body.get("meta")
    value = meta.get("last_page") if isinstance(meta, dict) else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tag_name(tag: Any) -> str:
    """A tag as Luminous answers it (`{id, name, ...}`), or as a bare name."""
    name = tag.get("name") if isinstance(tag, dict) else tag
    return name if isinstance(name, str) else ""
