"""The seed file: the products and companies a sandbox starts with.

    {"products": [{"id", "sku", "name", "alternate_skus"?: ["..."]}],
     "companies": [{"id", "name", "contacts"?: [{"id", "email", "first_name", "last_name"}],
                    "custom_fields"?: {}}]}

A bad file raises `ValueError` naming the file, the entry and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import wire


@dataclass(frozen=True)
class SeedContact:
    id: int
    email: str
    first_name: str
    last_name: str | None = None


@dataclass(frozen=True)
class SeedProduct:
    id: int
    sku: str
    name: str
    alternate_skus: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SeedCompany:
    id: int
    name: str
    contacts: list[SeedContact] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Seed:
    products: list[SeedProduct]
    companies: list[SeedCompany]


class _SeedProblem(ValueError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def load_seed(path: Path) -> Seed:
    """Read and check a seed file; raise `ValueError` that says what is wrong and where."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"seed file {path}: cannot be read ({exc.strerror})") from exc
    try:
        data = wire.loads(text)
    except wire.MalformedJSON as exc:
        raise ValueError(f"seed file {path}: not valid JSON ({exc})") from exc
    try:
        return parse_seed(data)
    except _SeedProblem as exc:
        raise ValueError(f"seed file {path}: {exc}") from None


def parse_seed(data: object) -> Seed:
    """Check parsed seed data; raise `ValueError` naming the offending entry."""
    if not isinstance(data, dict):
        raise _SeedProblem("top level", "must be a JSON object")
    _known_keys(data, "top level", {"products", "companies"})
    products = [_product(entry, f"products[{i}]") for i, entry in _entries(data, "products")]
    companies = [_company(entry, f"companies[{i}]") for i, entry in _entries(data, "companies")]
    _unique([p.id for p in products], "products", "id")
    _unique([sku for p in products for sku in (p.sku, *p.alternate_skus)], "products", "SKU")
    _unique([c.id for c in companies], "companies", "id")
    _unique([contact.id for c in companies for contact in c.contacts], "contacts", "id")
    # Luminous refuses a second contact with the same address, whatever its case.
    emails = [contact.email.casefold() for c in companies for contact in c.contacts]
    _unique(emails, "contacts", "e-mail")
    return Seed(products, companies)


def _entries(data: dict[str, Any], key: str) -> list[tuple[int, Any]]:
    entries = data.get(key, [])
    if not isinstance(entries, list):
        raise _SeedProblem(key, "must be an array")
    return list(enumerate(entries))


def _known_keys(entry: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in entry:
        if key not in allowed:
            raise _SeedProblem(
                f"{where}.{key}", f"unknown key (expected {', '.join(sorted(allowed))})"
            )


def _object(entry: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _SeedProblem(where, "must be a JSON object")
    _known_keys(entry, where, allowed)
    return entry


def _identifier(entry: dict[str, Any], where: str) -> int:
    value = entry.get("id")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _SeedProblem(f"{where}.id", "must be a positive integer")
    return value


def _text(entry: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _SeedProblem(f"{where}.{key}", "must be a non-empty string")
    return value.strip()


def _product(entry: object, where: str) -> SeedProduct:
    product = _object(entry, where, {"id", "sku", "name", "alternate_skus"})
    alternates = product.get("alternate_skus", [])
    if not isinstance(alternates, list):
        raise _SeedProblem(f"{where}.alternate_skus", "must be an array of strings")
    alternate_skus = [
        _text({"sku": sku}, "sku", f"{where}.alternate_skus[{i}]")
        for i, sku in enumerate(alternates)
    ]
    return SeedProduct(
        id=_identifier(product, where),
        sku=str(_text(product, "sku", where)),
        name=str(_text(product, "name", where)),
        alternate_skus=[str(sku) for sku in alternate_skus],
    )


def _company(entry: object, where: str) -> SeedCompany:
    company = _object(entry, where, {"id", "name", "contacts", "custom_fields"})
    contacts = company.get("contacts", [])
    if not isinstance(contacts, list):
        raise _SeedProblem(f"{where}.contacts", "must be an array")
    custom_fields = company.get("custom_fields", {})
    if not isinstance(custom_fields, dict):
        raise _SeedProblem(f"{where}.custom_fields", "must be a JSON object")
    return SeedCompany(
        id=_identifier(company, where),
        name=str(_text(company, "name", where)),
        contacts=[_contact(c, f"{where}.contacts[{i}]") for i, c in enumerate(contacts)],
        custom_fields=custom_fields,
    )


def _contact(entry: object, where: str) -> SeedContact:
    contact = _object(entry, where, {"id", "email", "first_name", "last_name"})
    email = str(_text(contact, "email", where))
    if "@" not in email:
        raise _SeedProblem(f"{where}.email", f"{email!r} is not an e-mail address")
    return SeedContact(
        id=_identifier(contact, where),
        email=email,
        first_name=str(_text(contact, "first_name", where)),
        last_name=_text(contact, "last_name", where, required=False),
    )


def _unique(values: list[Any], collection: str, what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise _SeedProblem(collection, f"{what} {value!r} appears more than once")
        seen.add(value)
