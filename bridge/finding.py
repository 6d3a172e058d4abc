"""Finding events: the filters people give, checked once for `bridge events` and `GET /events`.

A filter that names nothing the bridge knows (a status that does not exist, a source that is
neither configured nor recorded, a time that is not one) is refused with one line saying
what is wrong, rather than answered with an empty list that looks like "no such order".
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from bridge.config import MAX_DURATION_DAYS, Settings, parse_duration
from bridge.errors import BridgeError
from bridge.inputs import MAX_EVENT_ID, storable, whole_number
from bridge.shops import normalise_shop
from bridge.store.base import STATUSES, EventFilter, Store


class BadFilter(BridgeError):
    """A filter or an operator's argument that cannot be used (CLI exit 2, HTTP 400)."""


def moment(text: str, name: str) -> float:
    """An ISO date or time (UTC unless it says otherwise), or an age such as `2h`, as Unix time."""
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        # In UTC too it must be a time a datetime can hold (year 1 to 9999).
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise BadFilter(
            f"{name} {text[:40]!r} is neither an ISO time nor an age like 2h"
            f" (at most {MAX_DURATION_DAYS} days)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def status_of(text: str, name: str = "status", allowed: tuple[str, ...] = STATUSES) -> str:
    if text not in allowed:
        raise BadFilter(f"{name} must be one of {', '.join(allowed)}, not {text[:40]!r}")
    return text


@dataclass(frozen=True)
class Asked:
    """A filter as given: text, or None where it was left out."""

    status: str | None = None
    source: str | None = None
    shop: str | None = None
    order: str | None = None
    text: str | None = None
    since: str | None = None
    until: str | None = None
    before: str | None = None
    flagged: bool = False


async def event_filter(settings: Settings, store: Store, asked: Asked) -> EventFilter:
    """The store's filter for what was asked; `BadFilter` names the first thing wrong."""
    for name in ("status", "source", "shop", "order", "text", "since", "until", "before"):
        value = getattr(asked, name)
        if value is not None and not storable(value):
            raise BadFilter(f"{name} must be UTF-8 text without NUL characters")
    source = asked.source or None
    if source and source not in settings.sources and not await store.known_source(source):
        known = ", ".join(settings.sources) or "none"
        raise BadFilter(f"source {source[:40]!r} is neither configured ({known}) nor recorded")
    before = None
    if asked.before:
        before = whole_number(asked.before, 1, MAX_EVENT_ID)
        if before is None:
            raise BadFilter(f"before must be an event id from 1 to {MAX_EVENT_ID}")
    return EventFilter(
        status=status_of(asked.status) if asked.status else None,
        source=source,
        shop=normalise_shop(asked.shop) if asked.shop else None,
        order=asked.order.strip() or None if asked.order else None,
        text=asked.text.strip() or None if asked.text else None,
        since=moment(asked.since, "since") if asked.since else None,
        until=moment(asked.until, "until") if asked.until else None,
        before=before,
        flagged=asked.flagged,
    )
