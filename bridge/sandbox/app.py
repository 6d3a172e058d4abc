"""The sandbox as a web API: Luminous's routes over the sandbox's state, and its app factory."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from bridge.sandbox.companies import company_filter, create_company
from bridge.sandbox.contacts import CONTACT_FILTERS, create_contact, of_company
from bridge.sandbox.endpoint import Endpoint, Handler, Refused, answer, json_object, message
from bridge.sandbox.faults import DroppedResponse, FaultInjector
from bridge.sandbox.invoices import build_invoice, invoice_filter
from bridge.sandbox.listing import Filterable, conditions, page_request, paginate, select
from bridge.sandbox.products import PRODUCT_FILTERS, create_product, upsert_product
from bridge.sandbox.rules import Errors, Invalid, Reader
from bridge.sandbox.seed import load_seed
from bridge.sandbox.settings import SandboxSettings
from bridge.sandbox.state import Clock, Record, SandboxState, utc_now
from bridge.sandbox.totals import invoice_totals
from bridge.sandbox.validation import validate_invoice

API_PREFIX = "/external/api/v1"
STATS_PATH = "/_sandbox/stats"
REQUESTS_KEPT = 20_000  # recent API requests listed by the stats route


class Sandbox:
    """A Luminous stand-in: its data, its rules and its faults, usable with or without HTTP."""

    DEFAULT_COMPANY_ID: int = 1

    def __init__(self, settings: SandboxSettings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.state = SandboxState(settings.state, clock=clock)
        if settings.seed is not None:
            self.state.apply_seed(load_seed(settings.seed))
        self.state.load()
        self.state.ensure_company(self.DEFAULT_COMPANY_ID)
        self.faults = FaultInjector(settings)
        self.stall_seconds: float = 60
        self.drop_share: float = 0.5  # of timeout-after-commit faults: drop, else stall
        # Faults hit what the bridge's client sends and retries; setting up a catalogue or
        # replacing tags by hand is spared, so a test's own setup does not fail at random.
        self._unfaulted: set[Handler] = {self._post_product, self._replace_tags}
        # (arrival Unix time, method, path, status) of recent API requests, for the stats
        # route: tests read the pace and the answers the bridge got from outside its process.
        self.requests: deque[tuple[float, str, str, int]] = deque(maxlen=REQUESTS_KEPT)

    @property
    def invoices(self) -> dict[int, Record]:
        return self.state.invoices

    @property
    def products(self) -> dict[int, Record]:
        return self.state.products

    @property
    def companies(self) -> dict[int, Record]:
        return self.state.companies

    @property
    def contacts(self) -> dict[int, Record]:
        return self.state.contacts

    @property
    def fault_counts(self) -> dict[str, int]:
        return self.faults.counts

    def create_invoice(self, body: dict[str, Any]) -> Record:
        """Validate and store an invoice as `POST /invoices` does; raise `Invalid` if refused."""
        with self.state.lock:
            request = validate_invoice(body, self.state, auto_products=self.settings.auto_products)
            totals = invoice_totals(body)
            record = build_invoice(
                request, totals, self.state, auto_products=self.settings.auto_products
            )
            self.state.add_invoice(record)
            self.state.save()
        return record

    def create_company(self, body: dict[str, Any]) -> Record:
        """Validate and store a company as `POST /companies` does; raise `Invalid` if refused."""
        with self.state.lock:
            record = create_company(self.state, body)
            self.state.save()
        return record

    def create_contact(self, body: dict[str, Any]) -> Record:
        """Validate and store a contact as `POST /contacts` does; raise `Invalid` if refused."""
        with self.state.lock:
            record = create_contact(self.state, body)
            self.state.save()
        return record

    def routes(self) -> list[BaseRoute]:
        """Luminous's API, relative to `/external/api/v1`; unmatched paths answer a JSON 404."""
        return [
            self._route("/invoices", GET=self._list_invoices, POST=self._post_invoice),
            self._route("/invoices/{invoice_id:int}", GET=self._get_invoice),
            self._route(
                "/invoices/{invoice_id:int}/tags",
                GET=self._get_tags,
                POST=self._attach_tags,
                PUT=self._replace_tags,
            ),
            self._route(
                "/products", GET=self._list_products, POST=self._post_product, PATCH=self._upsert
            ),
            self._route("/products/{product_id:int}", GET=self._get_product),
            self._route("/companies", GET=self._list_companies, POST=self._post_company),
            self._route("/companies/{company_id:int}", GET=self._get_company),
            self._route("/companies/{company_id:int}/contacts", GET=self._company_contacts),
            self._route("/contacts", GET=self._list_contacts, POST=self._post_contact),
            self._route("/contacts/{contact_id:int}", GET=self._get_contact),
            Route("/{path:path}", Endpoint(self._serve)),
        ]

    def _route(self, path: str, **handlers: Handler) -> Route:
        endpoint = Endpoint(self._serve)
        for method, handler in handlers.items():
            endpoint.on(method, handler)
        return Route(path, endpoint)

    def stats(self) -> dict[str, Any]:
        """Faults injected and recent requests since this sandbox started."""
        return {
            "faults": dict(self.faults.counts),
            "invoices": len(self.state.invoices),
            "requests": [
                {"at": at, "method": method, "path": path, "status": status}
                for at, method, path, status in self.requests
            ],
        }

    async def _serve(self, request: Request, handler: Handler) -> Response:
        arrived = time.time()
        response = await self._answer(request, handler)
        self.requests.append((arrived, request.method, request.url.path, response.status_code))
        return response

    async def _answer(self, request: Request, handler: Handler) -> Response:
        await self.faults.delay()
        if not self._authorised(request):
            return message(401, "Unauthenticated.")
        if handler not in self._unfaulted:
            refusal = self.faults.refusal()
            if refusal is not None:
                return refusal
        try:
            return await handler(request)
        except Invalid as exc:
            return answer(422, exc.body())
        except Refused as exc:
            return exc.response()

    def _authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self.settings.token is None:
            return True
        return hmac.compare_digest(token.encode(), self.settings.token.encode())

    # ---- invoices ------------------------------------------------------------------------

    async def _post_invoice(self, request: Request) -> Response:
        record = self.create_invoice(await json_object(request))
        return await self._created("/invoices", record)

    async def _created(self, path: str, record: Record) -> Response:
        """The 201 for a stored record, unless a timeout-after-commit fault loses it."""
        created = answer(201, {"data": record})
        if path not in self.settings.timeout_after_commit_paths:
            return created
        lost = self.faults.after_commit(drop_share=self.drop_share)
        if lost == "drop":
            return DroppedResponse(created)
        if lost == "stall":
            await asyncio.sleep(self.stall_seconds)
        return created

    async def _list_invoices(self, request: Request) -> Response:
        return self._list(request, self.state.invoices, invoice_filter)

    async def _get_invoice(self, request: Request) -> Response:
        return answer(200, {"data": self._invoice(request)})

    def _invoice(self, request: Request) -> Record:
        found = self.state.invoices.get(request.path_params["invoice_id"])
        if found is None:
            raise Refused(404, "Not found.")
        return found

    async def _get_tags(self, request: Request) -> Response:
        return answer(200, {"data": self._invoice(request)["tags"]})

    async def _attach_tags(self, request: Request) -> Response:
        return await self._change_tags(request, replace=False)

    async def _replace_tags(self, request: Request) -> Response:
        return await self._change_tags(request, replace=True)

    async def _change_tags(self, request: Request, *, replace: bool) -> Response:
        invoice = self._invoice(request)
        errors = Errors()
        names = Reader(await json_object(request), errors).strings("tags", required=True)
        errors.raise_if_any()
        with self.state.lock:
            kept = [] if replace else [tag["name"] for tag in invoice["tags"]]
            wanted = list(dict.fromkeys([*kept, *(names or [])]))
            invoice["tags"] = [self.state.tag(name) for name in wanted]
            invoice["updated_at"] = self.state.now()
            self.state.add_invoice(invoice)
            self.state.save()
        done = "replaced" if replace else "attached"
        return answer(200, {"message": f"Tags {done} successfully", "tags": invoice["tags"]})

    # ---- products ------------------------------------------------------------------------

    async def _list_products(self, request: Request) -> Response:
        return self._list(request, self.state.products, PRODUCT_FILTERS.get)

    async def _get_product(self, request: Request) -> Response:
        return self._one(self.state.products, request.path_params["product_id"])

    async def _post_product(self, request: Request) -> Response:
        body = await json_object(request)
        with self.state.lock:
            product = create_product(self.state, body)
            self.state.save()
        return answer(201, {"data": product})

    async def _upsert(self, request: Request) -> Response:
        body = await json_object(request)
        with self.state.lock:
            product, created = upsert_product(self.state, body)
            self.state.save()
        return answer(201 if created else 200, {"data": product})

    # ---- companies and contacts ----------------------------------------------------------

    async def _list_companies(self, request: Request) -> Response:
        return self._list(request, self.state.companies, company_filter)

    async def _get_company(self, request: Request) -> Response:
        return self._one(self.state.companies, request.path_params["company_id"])

    async def _post_company(self, request: Request) -> Response:
        record = self.create_company(await json_object(request))
        return await self._created("/companies", record)

    async def _list_contacts(self, request: Request) -> Response:
        return self._list(request, self.state.contacts, CONTACT_FILTERS.get)

    async def _company_contacts(self, request: Request) -> Response:
        """One company's contacts; this list pages with `limit`, not `per_page`."""
        company_id = request.path_params["company_id"]
        if self.state.company(company_id) is None:
            raise Refused(404, "Not found.")
        theirs = {
            contact_id: contact
            for contact_id, contact in self.state.contacts.items()
            if of_company(contact, company_id)
        }
        return self._list(request, theirs, CONTACT_FILTERS.get, size="limit")

    async def _get_contact(self, request: Request) -> Response:
        return self._one(self.state.contacts, request.path_params["contact_id"])

    async def _post_contact(self, request: Request) -> Response:
        record = self.create_contact(await json_object(request))
        return await self._created("/contacts", record)

    # ---- shared --------------------------------------------------------------------------

    def _list(
        self,
        request: Request,
        records: dict[int, Record],
        fields: Callable[[str], Filterable | None],
        *,
        size: str = "per_page",
    ) -> Response:
        params = request.query_params.multi_items()
        page, per_page = page_request(params, size=size)
        found = select(sorted(records.values(), key=_by_id), conditions(params), fields)
        return answer(200, paginate(found, page, per_page))

    def _one(self, records: dict[int, Record], record_id: int) -> Response:
        found = records.get(record_id)
        if found is None:
            raise Refused(404, "Not found.")
        return answer(200, {"data": found})


def _by_id(record: Record) -> int:
    return int(record["id"])


def create_sandbox_app(settings: SandboxSettings) -> Starlette:
    """A standalone sandbox: the API under `/external/api/v1`, `GET /healthz`, and
    `GET /_sandbox/stats` (faults injected, recent requests; unauthenticated, never faulted)."""
    sandbox = Sandbox(settings)

    async def healthz(request: Request) -> Response:
        return answer(200, {"status": "ok"})

    async def stats(request: Request) -> Response:
        return answer(200, sandbox.stats())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = "Not found." if exc.status_code == 404 else exc.detail
        return message(exc.status_code, text, exc.headers)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route(STATS_PATH, stats),
            Mount(API_PREFIX, routes=sandbox.routes()),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.sandbox = sandbox
    return app
