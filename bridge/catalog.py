"""Luminous's companies, contacts and products, as the resolver reads and creates them.

Answers are lenient like `bridge.invoice.Invoice`: extra fields are kept, IDs that arrive as
strings are accepted (Luminous's own contact examples send them so), and alternate SKUs are
read from either shape Luminous uses. Requests are strict: an unknown field is a bug here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bridge.invoice import LenientId

__all__ = [
    "Company",
    "CompanyRef",
    "Contact",
    "ContactDetails",
    "NewCompany",
    "NewContact",
    "NewProduct",
    "Product",
]


def _alternate_skus(value: Any) -> Any:
    # The list shape gives strings, the export shape {id, sku, unit_conversion_rule_id}.
    if value is None:
        return []
    if not isinstance(value, list):
        return value
    found = []
    for entry in value:
        sku = entry.get("sku") if isinstance(entry, dict) else entry
        if isinstance(sku, str) and sku.strip():
            found.append(sku)
    return found


def _custom_fields(value: Any) -> Any:
    # Documented as an object keyed by label; a list of {label, value} pairs is read too.
    if value is None:
        return {}
    if isinstance(value, list):
        pairs = (entry for entry in value if isinstance(entry, dict))
        return {
            str(entry.get("label", entry.get("name"))): entry.get("value")
            for entry in pairs
            if entry.get("label", entry.get("name")) is not None
        }
    return value


def _optional_id(value: Any) -> Any:
    return None if value == "" else value


AlternateSkus = Annotated[list[str], BeforeValidator(_alternate_skus)]
CustomFields = Annotated[dict[str, Any], BeforeValidator(_custom_fields)]
OptionalId = Annotated[LenientId | None, BeforeValidator(_optional_id)]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Company(_Answer):
    """A Luminous company (a customer); `custom_fields` is keyed by the field's label."""

    id: LenientId
    name: str | None = None
    custom_fields: CustomFields = Field(default_factory=dict)


class CompanyRef(_Answer):
    """The `{id, name}` of the company a contact belongs to."""

    id: LenientId
    name: str | None = None


class Contact(_Answer):
    """A person at a company; Luminous keeps e-mail addresses here, not on companies."""

    id: LenientId
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_id: OptionalId = None
    company: CompanyRef | None = None

    @property
    def owner_id(self) -> int | None:
        """The contact's company, whichever of the two fields Luminous filled in."""
        if self.company_id is not None:
            return self.company_id
        return self.company.id if self.company is not None else None


class Product(_Answer):
    """A product; `alternate_skus` lists the other SKUs Luminous resolves to it."""

    id: LenientId
    sku: str | None = None
    name: str | None = None
    alternate_skus: AlternateSkus = Field(default_factory=list)

    @property
    def skus(self) -> list[str]:
        """Its main SKU, then its alternates."""
        return [*([self.sku] if self.sku else []), *self.alternate_skus]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready body, nulls left out."""
        return self.model_dump(mode="python", exclude_none=True)


Text = Annotated[str, Field(max_length=255)]


class NewCompany(_Request):
    """The body of `POST /companies`: note `address`/`postal_code`, not `address_1`/`zip`."""

    name: Annotated[str, Field(min_length=1, max_length=255)]
    address: Text | None = None
    address_line_2: Text | None = None
    city: Text | None = None
    state: Text | None = None
    postal_code: Text | None = None
    country: Text | None = None
    phone: Text | None = None
    custom_fields: dict[str, Any] | None = None


class ContactDetails(_Request):
    """A contact's own fields, checked before the company it will belong to exists."""

    first_name: Annotated[str, Field(min_length=1, max_length=255)]
    last_name: Text | None = None
    email: Text | None = None


class NewContact(ContactDetails):
    """The body of `POST /contacts`; Luminous requires a first name and a company."""

    company_id: int


class NewProduct(_Request):
    """A product to create for an unknown SKU (the `PATCH /products` upsert's SKU and name)."""

    sku: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
