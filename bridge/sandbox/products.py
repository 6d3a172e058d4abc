"""Products: created, upserted and filtered as Luminous does, alternate SKUs included."""

from __future__ import annotations

from typing import Any

from bridge.sandbox.listing import Filterable, as_text
from bridge.sandbox.rules import Errors, Invalid, Reader
from bridge.sandbox.state import Record, SandboxState, new_product, product_skus

_PRICES = ("retail_price", "wholesale_price", "unit_cost")
_TEXTS = ("description", "upc")


def create_product(state: SandboxState, body: dict[str, Any]) -> Record:
    """`POST /products`: a new product; its SKU must not be any product's SKU or alternate."""
    errors = Errors()
    read = Reader(body, errors)
    name = read.string("name", required=True)
    sku = read.string("sku", required=True)
    fields = _optional_fields(read)
    if sku is not None and state.product_by_sku(sku) is not None:
        read.fail("sku", "The {} has already been taken.")
    errors.raise_if_any()
    assert name is not None and sku is not None
    now = state.now()
    record = new_product(state.next_id("product"), name, sku, now)
    record.update(fields)
    return state.add_product(record)


def upsert_product(state: SandboxState, body: dict[str, Any]) -> tuple[Record, bool]:
    """`PATCH /products`: update the product named by `id`, else by main SKU, else create.

    Returns the product and whether it was created.
    """
    errors = Errors()
    read = Reader(body, errors)
    product_id = read.integer("id")
    name = read.string("name")
    sku = read.string("sku", required=product_id is None and "id" not in errors)
    fields = _optional_fields(read)
    errors.raise_if_any()
    existing = _existing(state, product_id, sku)
    if existing is None:
        if product_id is not None:
            raise Invalid({"id": ["The selected id is invalid."]})
        body = {**body, "sku": sku, **({"name": name} if name else {})}
        return create_product(state, body), True
    if sku is not None and sku != existing["sku"]:
        owner = state.product_by_sku(sku)
        if owner is not None and owner["id"] != existing["id"]:
            raise Invalid({"sku": ["The sku has already been taken."]})
    updated = {**existing, **fields, "updated_at": state.now()}
    if name is not None:
        updated["name"] = name
    if sku is not None:
        updated["sku"] = sku
    return state.add_product(updated), False


def _existing(state: SandboxState, product_id: int | None, sku: str | None) -> Record | None:
    if product_id is not None:
        return state.product(product_id)
    found = state.product_by_sku(sku) if sku is not None else None
    return found if found is not None and found["sku"] == sku else None


def _optional_fields(read: Reader) -> dict[str, Any]:
    """The product fields the sandbox keeps besides name and SKU; others are ignored."""
    found: dict[str, Any] = {}
    for key in _TEXTS:
        if key in read.data:
            found[key] = read.text(key)
    for key in _PRICES:
        if key in read.data:
            found[key] = read.number(key, places=6)
    return found


PRODUCT_FILTERS: dict[str, Filterable] = {
    # Luminous's `sku` filter matches the main SKU and every alternate SKU.
    "sku": Filterable(product_skus),
    "name": Filterable(lambda record: [as_text(record["name"])]),
    "upc": Filterable(lambda record: [as_text(record["upc"])]),
}
