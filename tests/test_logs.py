"""Log lines: JSON for a collector, readable on a terminal, and `configure` picks by stderr."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge import logs
from bridge.store.base import CREATED, DEAD, Event

EVENT = Event(
    id=12,
    source="shopify",
    delivery_key="k",
    shop="acme.myshopify.com",
    topic="orders/create",
    status=CREATED,
    received_at=0.0,
    updated_at=0.0,
    order_id="820982911946154508",
    order_name="#1001",
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def log_two_transitions(stream: io.StringIO) -> list[str]:
    logs.configure(stream)
    log = logging.getLogger("bridge.worker")
    logs.transition(log, EVENT, CREATED, seconds=0.4321, invoice_id=5531, how="created")
    logs.transition(
        log, EVENT, DEAD, level=logging.WARNING, reason="unknown SKU NOPE-1", seconds=0.1
    )
    return stream.getvalue().splitlines()


def test_json_lines_when_stderr_is_not_a_terminal(restored: None) -> None:
    created, dead = (json.loads(line) for line in log_two_transitions(io.StringIO()))
    assert created == {
        "time": created["time"],
        "level": "info",
        "logger": "bridge.worker",
        "message": "event 12 created",
        "event_id": 12,
        "source": "shopify",
        "shop": "acme.myshopify.com",
        "order": "#1001",
        "status": "created",
        "seconds": 0.432,
        "invoice_id": 5531,
        "how": "created",
    }
    assert created["time"].endswith("Z")
    assert dead["level"] == "warning" and dead["reason"] == "unknown SKU NOPE-1"
    assert "invoice_id" not in dead  # what is not known is left out, not null


def test_readable_lines_on_a_terminal(restored: None) -> None:
    created, dead = log_two_transitions(Terminal())
    assert created.split(" ", 1)[1] == (
        "INFO bridge.worker event 12 created event_id=12 source=shopify "
        "shop=acme.myshopify.com order=#1001 status=created seconds=0.432 invoice_id=5531 "
        "how=created"
    )
    assert dead.endswith('reason="unknown SKU NOPE-1"') and " WARNING " in dead
    with pytest.raises(json.JSONDecodeError):
        json.loads(created)


def test_an_error_with_a_traceback_stays_one_json_line(restored: None) -> None:
    stream = io.StringIO()
    logs.configure(stream)
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        logging.getLogger("bridge.worker").exception("worker loop error")
    [line] = stream.getvalue().splitlines()
    parsed = json.loads(line)
    assert parsed["message"] == "worker loop error" and "RuntimeError: a bug" in parsed["error"]
