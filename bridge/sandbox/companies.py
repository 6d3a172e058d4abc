"""Companies: created as `POST /companies` does, and filtered as `GET /companies` is."""

from __future__ import annotations

from typing import Any

from bridge.sandbox.listing import Filterable, as_text
from bridge.sandbox.rules import Errors, Reader
from bridge.sandbox.state import Record, SandboxState, new_company

ADDRESS_FIELDS = ("address", "address_line_2", "city", "state", "postal_code", "country")
_STRINGS = (*ADDRESS_FIELDS, "phone", "fein", "payment_term")
# Shipping addresses use the invoice's `address_1`/`zip` names, not the company's.
SHIPPING_FIELDS = (
    "address_1",
    "address_2",
    "city",
    "state",
    "country",
    "zip",
    "first_name",
    "last_name",
    "email",
    "phone",
)
COMPANY_FIELDS = (
    "name",
    *_STRINGS,
    "notes",
    "tax_exempt",
    "due_date_days",
    "parent_company_id",
    "client_type",
    "tags",
    "custom_fields",
    "shipping_addresses",
)


def create_company(state: SandboxState, body: dict[str, Any]) -> Record:
    """`POST /companies`: check every documented field, refuse unknown ones, store it.

    Call with `state.lock` held. Custom-field labels are taken as given: the sandbox keeps
    no custom-field definitions.
    """
    errors = Errors()
    read = Reader(body, errors)
    name = read.string("name", required=True)
    values: dict[str, Any] = {key: read.string(key) for key in _STRINGS}
    values["notes"] = read.text("notes")
    values["tax_exempt"] = bool(read.boolean("tax_exempt"))
    values["due_date_days"] = _days(read)
    values["custom_fields"] = read.custom_fields()
    parent_id = read.integer("parent_company_id")
    if parent_id is not None and state.company(parent_id) is None:
        read.fail("parent_company_id", "The selected {} is invalid.")
    client_type = _client_type(read)
    tag_names = list(dict.fromkeys(read.strings("tags") or []))
    addresses = _shipping_addresses(read)
    read.refuse_unknown(COMPANY_FIELDS)
    errors.raise_if_any()
    assert name is not None
    now = state.now()
    record = new_company(state.next_id("company"), name, now)
    record.update(values)
    record["type"] = client_type
    record["parent_company_id"] = parent_id
    record["full_address"] = full_address(record)
    record["tags"] = [state.tag(tag) for tag in tag_names]
    record["shipping_addresses"] = [
        {"id": state.next_id("shipping_address"), "company_id": record["id"], **address}
        for address in addresses
    ]
    return state.add_company(record)


def full_address(company: Record) -> str | None:
    """One line, as Luminous shows it: `123 Main St, Suite 500, Austin, TX 78701, USA`."""
    region = " ".join(filter(None, (company.get("state"), company.get("postal_code"))))
    parts = (company.get("address"), company.get("address_line_2"), company.get("city"))
    line = ", ".join(filter(None, (*parts, region, company.get("country"))))
    return line or None


def _days(read: Reader) -> int | None:
    days = read.integer("due_date_days")
    if days is not None and days < 0:
        read.fail("due_date_days", "The {} field must be at least 0.")
        return None
    return days


def _client_type(read: Reader) -> str | None:
    """`client_type` is `{id}` or `{name}`; the sandbox keeps only a name."""
    found = read.mapping("client_type")
    if found is None:
        return None
    kind = Reader(found, read.errors, "client_type.")
    type_id = kind.integer("id")
    type_name = kind.string("name")
    kind.refuse_unknown(("id", "name"))
    if type_id is None and type_name is None and "client_type.id" not in read.errors:
        read.fail("client_type", "The {} field must have an id or a name.")
    return type_name


def _shipping_addresses(read: Reader) -> list[dict[str, Any]]:
    raw = read.data.get("shipping_addresses")
    if raw is None:
        return []
    if not isinstance(raw, list):
        read.fail("shipping_addresses", "The {} field must be an array.")
        return []
    found = []
    for index, entry in enumerate(raw):
        prefix = f"shipping_addresses.{index}."
        if not isinstance(entry, dict):
            read.errors.add(prefix.rstrip("."), "The value must be an object.")
            continue
        address = Reader(entry, read.errors, prefix)
        clean: dict[str, Any] = {key: address.string(key) for key in SHIPPING_FIELDS}
        clean["is_default"] = bool(address.boolean("is_default"))
        address.refuse_unknown((*SHIPPING_FIELDS, "is_default"))
        found.append(clean)
    return found


def _single(key: str) -> Filterable:
    return Filterable(lambda record: [as_text(record.get(key))])


COMPANY_FILTERS: dict[str, Filterable] = {
    "name": _single("name"),
    "status": _single("status"),
    "city": _single("city"),
    "state": _single("state"),
    "country": _single("country"),
    "postal_code": _single("postal_code"),
    "phone": _single("phone"),
    "tag": Filterable(lambda record: [tag["name"] for tag in record.get("tags", [])]),
}


def company_filter(field: str) -> Filterable | None:
    """The filterable company field called `field`, including `custom_fields.<Label>`."""
    if field.startswith("custom_fields."):
        label = field.removeprefix("custom_fields.")
        return Filterable(lambda record: [as_text(record["custom_fields"].get(label))])
    return COMPANY_FILTERS.get(field)
