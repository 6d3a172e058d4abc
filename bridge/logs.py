"""Log lines: JSON when stderr is not a terminal (a collector parses them), readable on one.

An event's every transition is one line (`transition`) with the same fields, so a person can
follow an order and a collector can count outcomes: the event id, source, shop, order,
status, how long the step took and the invoice id. No line carries a payload or a secret:
the fields are chosen here, and a reason is the bridge's own text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

import orjson

from bridge.store.base import Event

_FIELDS = "fields"  # the LogRecord attribute that carries a line's structured fields
_second: tuple[int, str] = (-1, "")  # the last second formatted, as lines come many a second


def _moment(record: logging.LogRecord) -> str:
    global _second
    whole = int(record.created)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int(record.msecs):03d}Z"


def _dumps(line: dict[str, Any]) -> str:
    try:
        return orjson.dumps(line, default=str).decode()
    except TypeError:  # an integer past 64 bits, say: json writes it as it is
        return json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, _FIELDS, None)
    return fields if isinstance(fields, dict) else {}


class JSONLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _moment(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return _dumps(line)


class Readable(logging.Formatter):
    """`time LEVEL logger message key=value …`, values with blanks quoted."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_moment(record), record.levelname, record.name, record.getMessage()]
        for name, value in _fields(record).items():
            text = str(value)
            shown = json.dumps(text, ensure_ascii=False) if not text or " " in text else text
            parts.append(f"{name}={shown}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send the bridge's logs to `stream` (stderr), as JSON lines unless it is a terminal."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Readable() if stream.isatty() else JSONLines())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Each line is made on the event loop: skip what the formats never show (the logging
    # HOWTO's "Optimization": the caller's frame, thread, process names).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # One line per Luminous request is the client's own debug log; httpx's would repeat it.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def transition(
    logger: logging.Logger,
    event: Event,
    status: str,
    *,
    seconds: float | None = None,
    invoice_id: int | None = None,
    level: int = logging.INFO,
    **more: object,
) -> None:
    """The one line for an event reaching `status`; `more` adds a reason, a delay, …"""
    fields: dict[str, object] = {
        "event_id": event.id,
        "source": event.source,
        "shop": event.shop or None,
        "order": event.order_ref,
        "status": str(status),
        "seconds": None if seconds is None else round(seconds, 3),
        "invoice_id": invoice_id,
    }
    fields.update(more)
    line(logger, f"event {event.id} {status}", level=level, **fields)


def line(
    logger: logging.Logger, message: str, *, level: int = logging.INFO, **fields: object
) -> None:
    """A log line with structured fields (those that are None are left out)."""
    shown = {name: value for name, value in fields.items() if value is not None}
    logger.log(level, "%s", message, extra={_FIELDS: shown})
