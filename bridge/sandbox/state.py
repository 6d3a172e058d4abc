"""The sandbox's data, its seeding, and its state file.

Records are kept in the shape the API answers, with money as `Decimal`, so a lookup is a
plain read and the state file is the same JSON the sandbox serves. The file is rewritten
whole after every change (temp file, fsync, rename): a killed sandbox keeps every invoice
it answered 201 for.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bridge import wire
from bridge.sandbox.seed import Seed, SeedCompany, SeedProduct

Record = dict[str, Any]
Clock = Callable[[], dt.datetime]

STATE_FORMAT = 1
DEFAULT_COMPANY_NAME = "Sandbox Customer"
_COLLECTIONS = ("products", "companies", "contacts")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with a `Z`, to the second, as Luminous writes it."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SandboxState:
    """Products, companies, contacts, invoices and tags, with their ID counters.

    Callers hold `lock` around a change and its `save()`; the critical sections never await,
    so a thread lock serialises them without tying the state to one event loop.
    """

    def __init__(self, path: Path | None = None, *, clock: Clock = utc_now) -> None:
        self.path = path
        self.clock = clock
        self.lock = threading.Lock()
        self.products: dict[int, Record] = {}
        self.companies: dict[int, Record] = {}
        self.contacts: dict[int, Record] = {}
        self.invoices: dict[int, Record] = {}
        self.tags: dict[str, Record] = {}
        self._sku_index: dict[str, int] = {}
        self._email_index: dict[str, int] = {}
        self._last_ids: dict[str, int] = {}
        self._encoded_invoices: dict[int, orjson.Fragment] = {}

    # ---- reading -------------------------------------------------------------------------

    def now(self) -> str:
        return timestamp(self.clock())

    def company(self, company_id: int) -> Record | None:
        return self.companies.get(company_id)

    def product(self, product_id: int) -> Record | None:
        return self.products.get(product_id)

    def contact_by_email(self, email: str) -> Record | None:
        """The contact with this e-mail address, compared without case."""
        contact_id = self._email_index.get(email.casefold())
        return None if contact_id is None else self.contacts[contact_id]

    def product_by_sku(self, sku: str) -> Record | None:
        """The product whose main SKU or an alternate SKU is `sku`."""
        product_id = self._sku_index.get(sku)
        return None if product_id is None else self.products[product_id]

    # ---- changing ------------------------------------------------------------------------

    def next_id(self, kind: str) -> int:
        """A fresh ID for `kind`, one more than the largest ever used."""
        self._last_ids[kind] = self._last_ids.get(kind, 0) + 1
        return self._last_ids[kind]

    def _saw_id(self, kind: str, used: int) -> None:
        self._last_ids[kind] = max(self._last_ids.get(kind, 0), used)

    def add_product(self, record: Record) -> Record:
        """Store (or replace) a product; the caller has checked that its SKUs are free."""
        self._saw_id("product", record["id"])
        for alternate in record["alternate_skus"]:
            self._saw_id("alternate_sku", alternate["id"])
        replaced = self.products.get(record["id"])
        if replaced is not None:
            for sku in product_skus(replaced):
                self._sku_index.pop(sku, None)
        self.products[record["id"]] = record
        for sku in product_skus(record):
            self._sku_index[sku] = record["id"]
        return record

    def add_company(self, record: Record) -> Record:
        self._saw_id("company", record["id"])
        self.companies[record["id"]] = record
        return record

    def add_contact(self, record: Record) -> Record:
        """Store a contact; the caller has checked that its e-mail address is free."""
        self._saw_id("contact", record["id"])
        self.contacts[record["id"]] = record
        if record["email"]:
            self._email_index[record["email"].casefold()] = record["id"]
        return record

    def add_invoice(self, record: Record) -> Record:
        """Store (or, after a change, store again) an invoice."""
        self._saw_id("invoice", record["id"])
        for item in record["items"]:
            self._saw_id("invoice_item", item["id"])
        self.invoices[record["id"]] = record
        if self.path is not None:
            # Encoded once here, so saving stays cheap however many invoices there are.
            self._encoded_invoices[record["id"]] = orjson.Fragment(wire.dumps(record))
        return record

    def tag(self, name: str) -> Record:
        """The tag called `name`, created on first use."""
        if name not in self.tags:
            tag_id = self.next_id("tag")
            self.tags[name] = {
                "id": tag_id,
                "name": name,
                "description": None,
                "icon": None,
                "color": None,
            }
        return dict(self.tags[name])

    # ---- seeding and persistence ---------------------------------------------------------

    def apply_seed(self, seed: Seed) -> None:
        now = self.now()
        for product in seed.products:
            self.add_product(self._seed_product(product, now))
        for company in seed.companies:
            self._seed_company(company, now)

    def _seed_product(self, seed: SeedProduct, now: str) -> Record:
        record = new_product(seed.id, seed.name, seed.sku, now)
        record["alternate_skus"] = [
            {"id": self.next_id("alternate_sku"), "sku": sku, "unit_conversion_rule_id": None}
            for sku in seed.alternate_skus
        ]
        return record

    def _seed_company(self, seed: SeedCompany, now: str) -> None:
        company = new_company(seed.id, seed.name, now)
        company["custom_fields"] = dict(seed.custom_fields)
        self.add_company(company)
        for contact in seed.contacts:
            record = new_contact(contact.id, [company], now)
            record.update(
                first_name=contact.first_name,
                last_name=contact.last_name,
                full_name=full_name(contact.first_name, contact.last_name),
                email=contact.email,
            )
            self.add_contact(record)

    def ensure_company(self, company_id: int) -> None:
        """Create the default company when no company exists at all."""
        if not self.companies:
            self.add_company(new_company(company_id, DEFAULT_COMPANY_NAME, self.now()))

    def load(self) -> None:
        """Read the state file over what the seed gave, if the file exists."""
        if self.path is None or not self.path.exists():
            return
        try:
            data = wire.loads(self.path.read_bytes())
        except (OSError, wire.MalformedJSON) as exc:
            raise ValueError(f"state file {self.path}: cannot be read ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"state file {self.path}: not a sandbox state file (format 1)")
        for record in data.get("products", []):
            self.add_product(record)
        for record in data.get("companies", []):
            self.add_company(record)
        for record in data.get("contacts", []):
            self.add_contact(record)
        for record in data.get("invoices", []):
            self.add_invoice(record)
        self.tags = {tag["name"]: tag for tag in data.get("tags", [])}
        for kind, used in data.get("last_ids", {}).items():
            self._saw_id(kind, used)

    def save(self) -> None:
        """Write everything to the state file atomically; a no-op without one."""
        if self.path is None:
            return
        snapshot: Record = {"format": STATE_FORMAT, "last_ids": self._last_ids}
        for name in _COLLECTIONS:
            snapshot[name] = list(getattr(self, name).values())
        snapshot["invoices"] = list(self._encoded_invoices.values())
        snapshot["tags"] = list(self.tags.values())
        write_atomically(self.path, wire.dumps(snapshot))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old file or the new, never half."""
    directory = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def product_skus(product: Record) -> list[str]:
    """A product's main SKU and its alternate SKUs."""
    return [product["sku"], *(alternate["sku"] for alternate in product["alternate_skus"])]


def new_product(product_id: int, name: str, sku: str, now: str) -> Record:
    """A product record with Luminous's fields, those the sandbox does not model left null."""
    return {
        "id": product_id,
        "name": name,
        "sku": sku,
        "description": None,
        "upc": None,
        "type": "PRODUCT",
        "retail_price": None,
        "wholesale_price": None,
        "unit_cost": None,
        "sellable": True,
        "discontinued": False,
        "alternate_skus": [],
        "tags": [],
        "custom_fields": {},
        "created_at": now,
        "updated_at": now,
    }


def new_company(company_id: int, name: str, now: str) -> Record:
    """A company record with Luminous's address fields left empty."""
    return {
        "id": company_id,
        "status": "active",
        "name": name,
        "type": None,
        "phone": None,
        "address": None,
        "address_line_2": None,
        "city": None,
        "state": None,
        "postal_code": None,
        "country": None,
        "full_address": None,
        "payment_term": None,
        "tax_exempt": False,
        "notes": None,
        "fein": None,
        "tags": [],
        "custom_fields": {},
        "shipping_addresses": [],
        "created_at": now,
        "updated_at": now,
    }


def new_contact(contact_id: int, companies: list[Record], now: str) -> Record:
    """A contact of `companies` (the first is its own), Luminous's other fields left empty."""
    refs = [{"id": company["id"], "name": company["name"]} for company in companies]
    return {
        "id": contact_id,
        "status": "active",
        "first_name": None,
        "last_name": None,
        "full_name": None,
        "email": None,
        "phone": None,
        "phone_2": None,
        "company_id": refs[0]["id"],
        "company": refs[0],
        "companies": refs,
        "is_primary": False,
        "receive_quotation_pdf": False,
        "receive_purchase_order_pdf": False,
        "receive_purchase_order_invoice_pdf": False,
        "has_portal_login": False,
        "tags": [],
        "created_at": now,
        "updated_at": now,
    }


def full_name(first_name: str | None, last_name: str | None) -> str:
    return " ".join(filter(None, (first_name, last_name)))
