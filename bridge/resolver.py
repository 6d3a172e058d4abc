"""Resolution: the Luminous company for each customer and the product for each line.

A mapping names the customer (e-mail, the source's customer ID, name, address) and each
line's SKU; the resolver turns those into `company_id` and `product_id`, looking them up in
Luminous and creating what is missing when configured to. Lookups are cached with a bound
and a TTL, and each key is resolved by one task at a time (`KeyLocks`), so twenty
simultaneous orders from one new customer create one company, not twenty.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from bridge.catalog import Company, Contact, NewCompany, NewContact, Product
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
    """One holder per key at a time. In-process here; a shared store can lock across replicas."""

    def hold(self, key: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class LocalLocks:
    """Per-key asyncio locks, dropped once nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
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
    ) -> None:
        self.client = client
        self.locks: KeyLocks = locks or LocalLocks()
        self.companies: TTLCache[int] = TTLCache(cache_size, cache_ttl, clock)
        self.products: TTLCache[int] = TTLCache(cache_size, cache_ttl, clock)

    async def resolve(self, draft: Draft, options: InvoiceOptions) -> InvoiceRequest:
        """The request ready to send; `ResolutionError` when it cannot be, as configured."""
        company_id = await self.company_for(draft.customer, options)
        items = await self.items_for(draft.request.items, options)
        return draft.request.model_copy(update={"company_id": company_id, "items": items})

    # -- companies ----------------------------------------------------------------

    async def company_for(self, customer: CustomerRef | None, options: InvoiceOptions) -> int:
        if options.company == "fixed":
            if options.company_id is None:
                raise ResolutionError("no company: options.company_id is not set")
            return options.company_id
        email = (customer.email or "").strip().lower() if customer else ""
        customer_id = customer.customer_id if customer else None
        by_field = bool(options.company_custom_field and customer_id)
        if customer is None or not (email or by_field):
            return self._default(options, "a guest order")
        key = f"field:{customer_id}" if by_field else f"email:{email}"
        found = self.companies.get(key)
        if found is not None:
            return found
        async with self.locks.hold(f"company:{key}"):
            found = self.companies.get(key)  # another task may have just resolved it
            if found is None:
                found = await self._find_company(customer, email, options)
            if found is None:
                if not options.create_companies:
                    return self._default(options, f"no Luminous company for {email or key}")
                found = await self._create_company(customer, email, key, options)
            self.companies.put(key, found)
            return found

    def _default(self, options: InvoiceOptions, why: str) -> int:
        if options.default_company_id is None:
            raise ResolutionError(f"{why} and no options.default_company_id is set")
        return options.default_company_id

    async def _find_company(
        self, customer: CustomerRef, email: str, options: InvoiceOptions
    ) -> int | None:
        label = options.company_custom_field
        if label and customer.customer_id:
            matches = await self.client.find_companies_by_custom_field(label, customer.customer_id)
            if matches:
                return min(company.id for company in matches)
        if email:
            contacts = await self.client.find_contacts_by_email(email)
            linked = sorted(
                (contact for contact in contacts if contact.company_id is not None),
                key=lambda contact: contact.id,
            )
            if linked:
                return linked[0].company_id
        return None

    async def _create_company(
        self, customer: CustomerRef, email: str, key: str, options: InvoiceOptions
    ) -> int:
        address = customer.address
        custom_fields: dict[str, Any] | None = None
        if options.company_custom_field and customer.customer_id:
            custom_fields = {options.company_custom_field: customer.customer_id}
        company = await self.client.create_company(
            NewCompany(
                name=_company_name(customer),
                address=address.address_1 if address else None,
                address_line_2=address.address_2 if address else None,
                city=address.city if address else None,
                state=address.state if address else None,
                postal_code=address.zip if address else None,
                country=address.country if address else None,
                phone=customer.phone,
                custom_fields=custom_fields,
            )
        )
        # Remember it before the contact: if that fails, the retry must not make a second one.
        self.companies.put(key, company.id)
        if email:
            await self.client.create_contact(
                NewContact(
                    first_name=customer.first_name or email.split("@")[0],
                    last_name=customer.last_name,
                    email=email,
                    company_id=company.id,
                )
            )
        return company.id

    # -- products -----------------------------------------------------------------

    async def items_for(
        self, items: list[InvoiceItem], options: InvoiceOptions
    ) -> list[InvoiceItem]:
        resolved: list[InvoiceItem] = []
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
            product_id = await self.product_for(sku, item.description, options)
            if product_id is None:
                unknown.append(sku)
                continue
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
        return resolved

    async def product_for(
        self, sku: str, description: str | None, options: InvoiceOptions
    ) -> int | None:
        found = self.products.get(sku)
        if found is not None:
            return found
        async with self.locks.hold(f"product:{sku}"):
            found = self.products.get(sku)
            if found is None:
                product = _best_product(await self.client.find_products_by_sku(sku), sku)
                if product is None and options.unknown_sku == "create":
                    product = await self.client.upsert_product(sku, description or sku)
                if product is None:
                    return None  # not cached: the product may be created before a replay
                found = product.id
                self.products.put(sku, found)
            return found
