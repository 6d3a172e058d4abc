"""Command-line argument types, and a parser that says what is wrong in one line (exit 2)."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Callable
from typing import NoReturn

from bridge.inputs import MAX_EVENT_ID, storable, whole_number


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


def whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high`."""

    def parse(text: str) -> int:
        value = whole_number(text.strip(), low, high)
        if value is None:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}")
        return value

    return parse


event_id = whole(1, MAX_EVENT_ID)
port = whole(0, 65535)


def text(value: str) -> str:
    """Text a store, a header or a host name can take: UTF-8, no NUL."""
    if not storable(value):
        raise argparse.ArgumentTypeError("must be UTF-8 text without NUL characters")
    return value


def header_value(value: str) -> str:
    """A value sent in an HTTP header: printable ASCII."""
    if not (value.isascii() and value.isprintable()):
        raise argparse.ArgumentTypeError("must be printable ASCII (it is sent in a header)")
    return value


def rate(value: str) -> float:
    """A share of requests, from 0 to 1."""
    number = _number(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError("a rate is a number from 0 to 1")
    return number


def milliseconds(value: str) -> float:
    """A delay from 0 to one minute, in milliseconds."""
    number = _number(value)
    if not 0 <= number <= 60_000:
        raise argparse.ArgumentTypeError("expected milliseconds from 0 to 60000")
    return number


def http_url(value: str) -> str:
    """An absolute http:// or https:// URL."""
    import httpx

    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError("expected a URL such as http://127.0.0.1:8080")
    return value


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a number")
    return number


def moment(value: str) -> dt.datetime:
    """An ISO-8601 date or time (UTC unless it names an offset), or an age such as `3d`."""
    from bridge.config import MAX_DURATION_DAYS, parse_duration

    text = value.strip()
    try:
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        # In UTC too it must be a time a datetime can hold (year 1 to 9999).
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            "expected an ISO date or time (2026-11-01, 2026-11-01T08:00:00Z)"
            f" or an age like 3d (at most {MAX_DURATION_DAYS} days)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def positive(value: str) -> float:
    """A number above 0."""
    number = _number(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("expected a number above 0")
    return number


def days(value: str) -> float:
    """A number of days above 0, no more than a duration may be."""
    from bridge.config import MAX_DURATION_DAYS

    number = _number(value)
    if not 0 < number <= MAX_DURATION_DAYS:
        raise argparse.ArgumentTypeError(f"expected days above 0, at most {MAX_DURATION_DAYS}")
    return number


def duration(value: str) -> float:
    """A duration such as `1h`, `30m`, `90s`, or a number of seconds, as seconds."""
    from bridge.config import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError("a duration must be above 0")
    return seconds
