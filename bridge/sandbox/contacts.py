"""Contacts: created as `POST /contacts` does, and filtered as the contact lists are."""

from __future__ import annotations

import re
from typing import Any

from bridge.sandbox.listing import Filterable, as_text
from bridge.sandbox.rules import Errors, Reader, is_integer
from bridge.sandbox.state import Record, SandboxState, full_name, new_contact

_STRINGS = ("last_name", "phone_1", "phone_2", "receiving_bank_name", "receiving_bank_address")
_FLAGS = (
    "is_primary",
    "receive_quotation_pdf",
    "receive_purchase_order_pdf",
    "receive_purchase_order_invoice_pdf",
)
CONTACT_FIELDS = (
    "first_name",
    *_STRINGS,
    *_FLAGS,
    "company_id",
    "company_ids",
    "email",
    "tags",
    "password",
)
# Laravel's `email` rule is lenient too: one @, something on either side, no spaces.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def create_contact(state: SandboxState, body: dict[str, Any]) -> Record:
    """`POST /contacts`: a first name, an existing company, and an e-mail no one else has.

    Call with `state.lock` held.
    """
    errors = Errors()
    read = Reader(body, errors)
    first_name = read.string("first_name", required=True)
    values: dict[str, Any] = {key: read.string(key) for key in _STRINGS}
    flags = {key: bool(read.boolean(key)) for key in _FLAGS}
    companies = _companies(read, state)
    email = _email(read, state)
    password = read.string("password")
    if password is not None and len(password) < 8:
        read.fail("password", "The {} field must be at least 8 characters.")
    if password is not None and email is None and "email" not in errors:
        read.fail("email", "The {} field is required when password is present.")
    tag_names = list(dict.fromkeys(read.strings("tags") or []))
    read.refuse_unknown(CONTACT_FIELDS)
    errors.raise_if_any()
    assert first_name is not None and companies
    record = new_contact(state.next_id("contact"), companies, state.now())
    record.update(flags)
    record.update(
        first_name=first_name,
        last_name=values["last_name"],
        full_name=full_name(first_name, values["last_name"]),
        email=email,
        phone=values["phone_1"],
        phone_2=values["phone_2"],
        receiving_bank_name=values["receiving_bank_name"],
        receiving_bank_address=values["receiving_bank_address"],
        has_portal_login=password is not None,
        tags=[state.tag(name) for name in tag_names],
    )
    return state.add_contact(record)


def _companies(read: Reader, state: SandboxState) -> list[Record]:
    """`company_id` or `company_ids` (never both), every one an existing company."""
    given_one = read.data.get("company_id") is not None
    given_many = read.data.get("company_ids") is not None
    if given_one and given_many:
        read.fail("company_id", "The {} field prohibits company ids from being present.")
        return []
    if given_many:
        return _many(read, state)
    company_id = read.integer("company_id")
    if company_id is None:
        if "company_id" not in read.errors:
            read.fail("company_id", "The {} field is required when company ids is not present.")
        return []
    company = state.company(company_id)
    if company is None:
        read.fail("company_id", "The selected {} is invalid.")
        return []
    return [company]


def _many(read: Reader, state: SandboxState) -> list[Record]:
    raw = read.data["company_ids"]
    if not isinstance(raw, list) or not raw:
        read.fail("company_ids", "The {} field must be an array with at least 1 item.")
        return []
    found = []
    for index, value in enumerate(raw):
        key = f"company_ids.{index}"
        company = state.company(value) if is_integer(value) else None
        if company is None:
            read.fail(key, "The selected {} is invalid.")
        else:
            found.append(company)
    return found


def _email(read: Reader, state: SandboxState) -> str | None:
    email = read.string("email")
    if email is None:
        return None
    if not _EMAIL.fullmatch(email):
        read.fail("email", "The {} field must be a valid email address.")
        return None
    if state.contact_by_email(email) is not None:
        read.fail("email", "The {} has already been taken.")
        return None
    return email


def _single(key: str, *, fold: bool = False) -> Filterable:
    return Filterable(lambda record: [as_text(record.get(key))], fold=fold)


CONTACT_FILTERS: dict[str, Filterable] = {
    # Compared without case, as a database with a case-insensitive collation compares.
    "email": _single("email", fold=True),
    "first_name": _single("first_name"),
    "last_name": _single("last_name"),
    "full_name": _single("full_name"),
    "phone": _single("phone"),
    "status": _single("status"),
    "company_id": Filterable(
        lambda record: (
            [as_text(company["id"]) for company in record.get("companies", [])]
            or [as_text(own_company_id(record))]
        )
    ),
    "company.name": Filterable(lambda record: [as_text((record.get("company") or {}).get("name"))]),
}


def own_company_id(contact: Record) -> int | None:
    """The contact's own company; a contact kept in Luminous's nested shape has only `company`."""
    if contact.get("company_id") is not None:
        return int(contact["company_id"])
    company = contact.get("company")
    return int(company["id"]) if isinstance(company, dict) else None


def of_company(contact: Record, company_id: int) -> bool:
    """Whether the contact belongs to the company, as its own or one of several."""
    owners = {company["id"] for company in contact.get("companies", [])}
    return company_id == own_company_id(contact) or company_id in owners
