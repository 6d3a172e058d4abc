"""Resolution: the Luminous company for each customer and the product for each line.

A mapping names the customer (e-mail, the source's customer ID, name, address) and each
line's SKU; the resolver turns those into `company_id` and `product_id`. `plan` only reads:
it makes every lookup and says what would be created (a company and its contact, products),
or raises `ResolutionError`. `apply` makes those creations. `resolve` does both, in that
order, so an order that cannot be sent leaves nothing behind in Luminous.

Lookups are cached with a bound and a TTL, and each key is resolved and created by one task
at a time (`KeyLocks`), so twenty simultaneous orders from one new customer create one
company, not twenty. A customer's key carries its source and shop (the namespace) and the
field it is matched by: customer 123 of one shop is not customer 123 of another. Creating
also holds the e-mail alone, which Luminous keeps one contact for whatever the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import pydantic

from bridge.catalog import (
    Company,
    Contact,
    ContactDetails,
    NewCompany,
    NewContact,
    NewProduct,
    Product,
)
from bridge.errors import InvoiceError
from bridge.invoice import InvoiceItem, InvoiceRequest
from bridge.mapping import CustomerRef, Draft, InvoiceOptions

V = TypeVar("V")


class ResolutionError(InvoiceError):
    """The order cannot be resolved as configured (unknown SKUs, no company to use)."""


class CatalogClient(Protocol):
    """The Luminous lookups the resolver makes (see `bridge.luminous.LuminousClient`)."""

    async def find_companies_by_custom_field(self, label: str, value: str) -> list[Company]: ...

    async def find_contacts_by_email(self, email: str) -> list[Contact]: ...

    async def create_company(self, company: NewCompany) -> Company: ...

    async def create_contact(self, contact: NewContact) -> Contact: ...

    async def find_products_by_sku(self, sku: str) -> list[Product]: ...

    async def upsert_product(self, sku: str, name: str) -> Product: ...


class KeyLocks(Protocol):
    """One holder per key at a time. In-process here; a shared store can lock across replicas.

    `hold` takes several keys in sorted order, so two holders of overlapping keys cannot each
    hold one the other waits for.
    """

    def hold(self, *keys: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class LocalLocks:
    """Per-key asyncio locks, dropped once nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as held:
            for key in sorted(set(keys)):
                await held.enter_async_context(self._hold(key))
            yield

    @contextlib.asynccontextmanager
    async def _hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class TTLCache(Generic[V]):
    """A bounded mapping whose entries expire; the least recently used go first."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class CustomerQuery:
    """How one customer is found in Luminous: by its company custom field, then its e-mail."""

    namespace: str  # the source and shop the customer belongs to
    email: str  # lower-cased; "" when the order names none
    field: tuple[str, str] | None = None  # (company custom field label, customer ID)

    @property
    def key(self) -> str:
        """The cache and lock key: namespace, the field matched by, and its value."""
        by = (
            ["custom_fields." + self.field[0], self.field[1]]
            if self.field
            else ["email", self.email]
        )
        return json.dumps(["company", self.namespace, *by])

    @property
    def creating(self) -> tuple[str, ...]:
        """The keys held while its company is created: its own, and its e-mail's alone.

        Luminous holds one contact per e-mail whatever the source, so a new customer with one
        address arriving from two sources at once must make one company, not one each.
        """
        return (self.key, json.dumps(["contact", self.email])) if self.email else (self.key,)

    def describe(self) -> str:
        if self.email or self.field is None:
            return self.email
        return f"customer {self.field[1]}"


@dataclass(frozen=True)
class NewCustomer:
    """A company to create for a customer Luminous does not know, and the contact that finds it."""

    query: CustomerQuery
    company: NewCompany
    contact: ContactDetails | None


@dataclass(frozen=True)
class Plan:
    """An order resolved by reading only: the request with every ID found, and what must be
    created before it can be sent (`company_id` or a `product_id` is unset until then)."""

    request: InvoiceRequest
    new_customer: NewCustomer | None = None
    new_products: tuple[NewProduct, ...] = ()

    def creations(self) -> dict[str, Any]:
        """What `apply` would create, as JSON-ready request bodies."""
        customer = self.new_customer
        return {
            "company": customer.company.to_wire() if customer else None,
            "contact": customer.contact.to_wire() if customer and customer.contact else None,
            "products": [product.to_wire() for product in self.new_products],
        }


@dataclass(frozen=True)
class Known:
    """A request resolved from the caches alone, and the cache hits that resolved it."""

    request: InvoiceRequest
    lookups: tuple[str, ...]


def _customer_query(
    customer: CustomerRef | None, options: InvoiceOptions, namespace: str
) -> CustomerQuery | None:
    if customer is None:
        return None
    email = (customer.email or "").strip().lower()
    label = options.company_custom_field
    field = (label, customer.customer_id) if label and customer.customer_id else None
    if not (email or field):
        return None
    return CustomerQuery(namespace, email, field)


def _new_customer(customer: CustomerRef, query: CustomerQuery) -> NewCustomer:
    """The company and contact to create, checked now so a bad field creates nothing."""
    address = customer.address
    email = query.email
    try:
        company = NewCompany(
            name=_company_name(customer),
            address=address.address_1 if address else None,
            address_line_2=address.address_2 if address else None,
            city=address.city if address else None,
            state=address.state if address else None,
            postal_code=address.zip if address else None,
            country=address.country if address else None,
            phone=customer.phone,
            custom_fields=dict([query.field]) if query.field else None,
        )
        contact = (
            ContactDetails(
                first_name=customer.first_name or email.split("@")[0],
                last_name=customer.last_name,
                email=email,
            )
            if email
            else None
        )
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ResolutionError(
            f"cannot create a Luminous company for {query.describe()}: {problems}"
        ) from exc
    return NewCustomer(query, company, contact)


def _company_name(customer: CustomerRef) -> str:
    full = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    return customer.name or full or customer.email or f"Customer {customer.customer_id}"


def _best_product(products: list[Product], sku: str) -> Product | None:
    # The SKU filter also matches alternate SKUs: prefer the product whose own SKU it is.
    for product in products:
        if product.sku == sku:
            return product
    for product in products:
        if sku in product.alternate_skus:
            return product
    return products[0] if products else None


def _product_key(sku: str) -> str:
    return f"product:{sku}"


class Resolver:
    """Fills `company_id` and each item's `product_id` on a draft's invoice request."""

    def __init__(
        self,
        client: CatalogClient,
        *,
        locks: KeyLocks | None = None,
        cache_size: int = 10_000,
        cache_ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.client = client
        # Told of each company or product lookup and whether the cache answered it (metrics).
        self.on_lookup = on_lookup or (lambda kind, hit: None)
        self.locks: KeyLocks = locks or LocalLocks()
        self.companies: TTLCache[int] = TTLCache(cache_size, cache_ttl, clock)
        # Customers a lookup just did not find: the plans of a burst of orders from one new
        # customer skip their lookups, and `apply` looks again before it creates anything.
        self.not_found: TTLCache[bool] = TTLCache(cache_size, cache_ttl, clock)
        self.products: TTLCache[int] = TTLCache(cache_size, cache_ttl, clock)

    async def resolve(
        self, draft: Draft, options: InvoiceOptions, *, namespace: str
    ) -> InvoiceRequest:
        """The request ready to send; `ResolutionError` when it cannot be, as configured.

        `namespace` names where the customer comes from (the worker passes "source/shop").
        """
        return await self.apply(await self.plan(draft, options, namespace=namespace))

    def known(self, draft: Draft, options: InvoiceOptions, *, namespace: str) -> Known | None:
        """The request `resolve` would return, when what is known already settles it.

        None when any lookup, creation or refusal is due: `resolve` then does, or says, it.
        Never awaits, so a caller may do it before a write without holding anything.
        """
        lookups: list[str] = []
        if options.company == "fixed":
            company_id = options.company_id
        else:
            query = _customer_query(draft.customer, options, namespace)
            if draft.customer is None or query is None:
                company_id = options.default_company_id
            else:
                company_id = self.companies.get(query.key)
                lookups.append("company")
        if company_id is None:
            return None
        items = []
        for item in draft.request.items:
            if item.product_id is not None:
                items.append(item)
                continue
            sku = item.sku or options.fallback_sku
            product_id = self.products.get(sku) if sku else None
            if product_id is None:
                return None
            lookups.append("product")
            items.append(item.model_copy(update={"sku": sku, "product_id": product_id}))
        request = draft.request.model_copy(update={"company_id": company_id, "items": items})
        return Known(request, tuple(lookups))

    def hits(self, known: Known) -> None:
        """Count a known request's cache hits, as `plan` counts them, once it is used."""
        for kind in known.lookups:
            self.on_lookup(kind, True)

    async def plan(self, draft: Draft, options: InvoiceOptions, *, namespace: str) -> Plan:
        """Every lookup the order needs, and what it would create; creates nothing."""
        company_id, new_customer = await self._plan_company(draft.customer, options, namespace)
        items, new_products = await self._plan_items(draft.request.items, options)
        request = draft.request.model_copy(update={"company_id": company_id, "items": items})
        return Plan(request, new_customer, new_products)

    async def apply(self, plan: Plan) -> InvoiceRequest:
        """Make the plan's creations and return the request that uses them.

        Products go first: one left behind by a failure after it names no customer.
        """
        created: dict[str | None, int] = {
            product.sku: await self._create_product(product) for product in plan.new_products
        }
        items = [
            item
            if item.product_id is not None
            else item.model_copy(update={"product_id": created[item.sku]})
            for item in plan.request.items
        ]
        company_id = plan.request.company_id
        if plan.new_customer is not None:
            company_id = await self._create_customer(plan.new_customer)
        return plan.request.model_copy(update={"company_id": company_id, "items": items})

    # -- companies ----------------------------------------------------------------

    async def _plan_company(
        self, customer: CustomerRef | None, options: InvoiceOptions, namespace: str
    ) -> tuple[int | None, NewCustomer | None]:
        if options.company == "fixed":
            if options.company_id is None:
                raise ResolutionError("no company: options.company_id is not set")
            return options.company_id, None
        query = _customer_query(customer, options, namespace)
        if customer is None or query is None:
            return self._default(options, "a guest order"), None
        found = self.companies.get(query.key)
        self.on_lookup("company", found is not None)
        if found is None:
            async with self.locks.hold(query.key):
                found = await self._known_company(query, recent=options.create_companies)
        if found is not None:
            return found, None
        if not options.create_companies:
            return self._default(options, f"no Luminous company for {query.describe()}"), None
        return None, _new_customer(customer, query)

    def _default(self, options: InvoiceOptions, why: str) -> int:
        if options.default_company_id is None:
            raise ResolutionError(f"{why} and no options.default_company_id is set")
        return options.default_company_id

    async def _known_company(self, query: CustomerQuery, *, recent: bool = False) -> int | None:
        """The cached company, else the one Luminous has; call with the query's key held.

        `recent`: a lookup that just found none stands in for a new one.
        """
        found = self.companies.get(query.key)  # another task may have just resolved it
        if found is None and not (recent and self.not_found.get(query.key)):
            found = await self._find_company(query)
            if found is None:
                self.not_found.put(query.key, True)
            else:
                self.companies.put(query.key, found)
        return found

    async def _find_company(self, query: CustomerQuery) -> int | None:
        if query.field:
            matches = await self.client.find_companies_by_custom_field(*query.field)
            if matches:
                return min(company.id for company in matches)
        if query.email:
            contacts = sorted(
                await self.client.find_contacts_by_email(query.email),
                key=lambda contact: contact.id,
            )
            owners = [contact.owner_id for contact in contacts if contact.owner_id is not None]
            if owners:
                return owners[0]
            if contacts:
                # Luminous would refuse a second contact with this address.
                raise ResolutionError(
                    f"Luminous contact {contacts[0].id} has the e-mail {query.email} "
                    "but names no company; give it one, then replay"
                )
        return None

    async def _create_customer(self, new: NewCustomer) -> int:
        async with self.locks.hold(*new.query.creating):
            # Another task, or another replica, may have created it since the plan looked.
            found = await self._known_company(new.query)
            if found is not None:
                return found
            company = await self.client.create_company(new.company)
            # Remember it before the contact: if that fails, the retry must not make a second one.
            self.companies.put(new.query.key, company.id)
            if new.contact is not None:
                details = new.contact.model_dump()
                await self.client.create_contact(NewContact(**details, company_id=company.id))
            return company.id

    # -- products -----------------------------------------------------------------

    async def _plan_items(
        self, items: list[InvoiceItem], options: InvoiceOptions
    ) -> tuple[list[InvoiceItem], tuple[NewProduct, ...]]:
        resolved: list[InvoiceItem] = []
        to_create: dict[str, NewProduct] = {}
        unknown: list[str] = []
        missing_sku: list[int] = []
        for index, item in enumerate(items):
            if item.product_id is not None:
                resolved.append(item)
                continue
            sku = item.sku or options.fallback_sku
            if not sku:
                missing_sku.append(index)
                continue
            product_id = await self._find_product(sku)
            if product_id is None:
                if options.unknown_sku != "create":
                    unknown.append(sku)
                    continue
                to_create.setdefault(sku, NewProduct(sku=sku, name=item.description or sku))
            resolved.append(item.model_copy(update={"sku": sku, "product_id": product_id}))
        problems = []
        if unknown:
            problems.append(
                "unknown SKU " + ", ".join(dict.fromkeys(unknown)) + " (not in Luminous; "
                "create the product, then replay, or set unknown_sku = 'create')"
            )
        if missing_sku:
            lines = ", ".join(str(index) for index in missing_sku)
            problems.append(f"line {lines} has no SKU and no options.fallback_sku is set")
        if problems:
            raise ResolutionError("; ".join(problems))
        return resolved, tuple(to_create.values())

    async def _find_product(self, sku: str) -> int | None:
        found = self.products.get(sku)
        self.on_lookup("product", found is not None)
        if found is None:
            async with self.locks.hold(_product_key(sku)):
                found = await self._known_product(sku)
        return found

    async def _known_product(self, sku: str) -> int | None:
        """The cached product, else the one Luminous has; call with the SKU's key held."""
        found = self.products.get(sku)
        if found is None:
            product = _best_product(await self.client.find_products_by_sku(sku), sku)
            if product is None:
                return None  # not cached: the product may be created before a replay
            found = product.id
            self.products.put(sku, found)
        return found

    async def _create_product(self, new: NewProduct) -> int:
        async with self.locks.hold(_product_key(new.sku)):
            found = await self._known_product(new.sku)
            if found is None:
                found = (await self.client.upsert_product(new.sku, new.name)).id
                self.products.put(new.sku, found)
            return found
