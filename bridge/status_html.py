"""The status page's HTML: plain markup, inline CSS and SVG, one small script; no build step.

Everything the store holds is escaped: a reason quotes whatever a payload or Luminous said.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.responses import HTMLResponse

from bridge.inputs import MAX_EVENT_ID, whole_number
from bridge.store.base import (
    DEAD,
    DISMISSED,
    FINISHED,
    REJECTED,
    STATUSES,
    UNFINISHED,
    Event,
    utc,
)

REFRESH_SECONDS = 30
HOURS_SHOWN = 24
MAX_REASON_SHOWN = 500
FAILED = frozenset({DEAD, REJECTED, DISMISSED})
SETTLED = FINISHED - FAILED

# What a form's outcome says, by the code the redirect carries; nothing else is shown.
NOTICES = {
    "replayed": ("ok", "Event {event} replayed: a worker takes it up again."),
    "dismissed": ("ok", "Event {event} dismissed."),
    "reason_needed": ("bad", "Event {event} not dismissed: say why, in a few words."),
    "not_found": ("bad", "There is no event {event}."),
    "not_replayable": ("bad", "Event {event} was not replayed: it is no longer a failure."),
    "not_dismissable": (
        "bad",
        "Event {event} was not dismissed: it is no longer dead or rejected.",
    ),
    "unreachable": ("bad", "Event {event} unchanged: the store is unreachable."),
}

STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem 1.5rem;
color:#1d2330;background:#f6f7f9}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.muted{color:#667}.notice{padding:.6rem .9rem;border-radius:6px;margin:.8rem 0}
.ok{background:#dff3e4}.bad{background:#fde2e1}
.counts{display:flex;flex-wrap:wrap;gap:.6rem;list-style:none;padding:0;margin:0}
.counts li{background:#fff;border:1px solid #dde;border-radius:6px;padding:.4rem .8rem;
min-width:6rem}.counts b{display:block;font-size:1.5rem}
.counts .dead b,.counts .rejected b{color:#b3261e}.counts .dismissed b{color:#7a5b00}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e5ea;padding:.4rem .5rem;text-align:left;vertical-align:top}
td.reason{max-width:28rem;overflow-wrap:anywhere;font-family:ui-monospace,monospace;
font-size:.85rem}form{display:inline-flex;gap:.3rem;margin:0 .3rem .3rem 0}
input[type=text]{width:13rem}svg{background:#fff;border:1px solid #dde;border-radius:6px}
.settled{fill:#3a7d44}.failed{fill:#b3261e}.unfinished{fill:#c9a227}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem}
.legend .settled{background:#3a7d44}.legend .failed{background:#b3261e}
.legend .unfinished{background:#c9a227}
"""

# Reload unless the operator is typing a reason; a notice is shown once, not on every reload.
SCRIPT = """
setInterval(function () {
  var typing = Array.prototype.some.call(document.querySelectorAll("input[type=text]"),
    function (input) { return input.value || input === document.activeElement; });
  if (!typing) { location.replace(location.pathname); }
}, %d000);
"""


@dataclass(frozen=True)
class Notice:
    kind: str
    text: str

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Notice | None:
        known = NOTICES.get(query.get("notice", ""))
        event = whole_number(query.get("event", ""), 1, MAX_EVENT_ID)
        if known is None or event is None:
            return None
        kind, text = known
        return cls(kind, text.format(event=event))


@dataclass(frozen=True)
class Glance:
    """What the page shows, read from the store at `now`; `unreachable` when it could not be."""

    now: float
    first_hour: float
    unreachable: bool = False
    counts: Mapping[str, int] = field(default_factory=dict)
    hours: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    oldest: Event | None = None
    failures: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    body: str
    script_nonce: str

    def response(self, status: int) -> HTMLResponse:
        csp = (
            "default-src 'none'; style-src 'unsafe-inline'; "
            f"script-src 'nonce-{self.script_nonce}'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        return HTMLResponse(
            self.body,
            status_code=status,
            headers={
                "Content-Security-Policy": csp,
                "X-Frame-Options": "DENY",
                "Cache-Control": "no-store",
                "Referrer-Policy": "same-origin",  # no-referrer would make form posts Origin: null
                "X-Content-Type-Options": "nosniff",
            },
        )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def age(seconds: float) -> str:
    """A duration for people: `42 s`, `5 min`, `3 h 12 min`, `2 d 4 h`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def _counts(counts: Mapping[str, int]) -> str:
    items = "".join(
        f'<li class="{status}" data-status="{status}"><b>{counts.get(status, 0)}</b>{status}</li>'
        for status in STATUSES
    )
    return f'<ul class="counts" id="counts">{items}</ul>'


def _bars(glance: Glance) -> str:
    """One stacked bar per hour, oldest left: settled, failed, still unfinished."""
    width, height, gap, axis = 24, 90, 4, 16
    tallest = max((sum(by.values()) for by in glance.hours.values()), default=0) or 1
    bars = []
    for hour in range(HOURS_SHOWN):
        by_status = glance.hours.get(hour, {})
        parts = (
            ("settled", sum(n for s, n in by_status.items() if s in SETTLED)),
            ("failed", sum(n for s, n in by_status.items() if s in FAILED)),
            ("unfinished", sum(n for s, n in by_status.items() if s in UNFINISHED)),
        )
        x, bottom = hour * (width + gap) + gap, float(height)
        start = utc(glance.first_hour + hour * 3600) or ""
        label = f"{start[11:16]} UTC: " + ", ".join(f"{n} {kind}" for kind, n in parts)
        if hour % 6 == 0:
            bars.append(
                f'<text x="{x}" y="{height + axis - 3}" font-size="11" fill="#667">'
                f"{start[11:16]}</text>"
            )
        for kind, n in parts:
            if n:
                tall = max(1.0, n / tallest * (height - 10))
                bottom -= tall
                bars.append(
                    f'<rect class="{kind}" x="{x}" y="{bottom:.1f}" width="{width}" '
                    f'height="{tall:.1f}"><title>{_e(label)}</title></rect>'
                )
    total = HOURS_SHOWN * (width + gap) + gap
    tall = height + axis
    return (
        f'<svg id="hours" role="img" aria-label="events received per hour, last 24 h" '
        f'width="{total}" height="{tall}" viewBox="0 0 {total} {tall}">{"".join(bars)}</svg>'
        '<div class="legend muted"><span class="settled"></span>settled'
        '<span class="failed"></span>dead, rejected or dismissed'
        '<span class="unfinished"></span>unfinished · hours in UTC; hover a bar for its '
        "numbers</div>"
    )


def _oldest(glance: Glance) -> str:
    event = glance.oldest
    if event is None:
        return '<p id="oldest">Nothing is waiting: every event is finished.</p>'
    order = _e(event.order_ref or "no order named")
    return (
        f'<p id="oldest">Event <b>{event.id}</b> ({_e(event.source)}, order {order}), '
        f"{_e(event.status)}, received {age(glance.now - event.received_at)} ago "
        f'<span class="muted">({utc(event.received_at)})</span>.</p>'
    )


def _forms(event: Event, nonce: str, csrf: str) -> str:
    hidden = (
        f'<input type="hidden" name="nonce" value="{_e(nonce)}">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="event_id" value="{event.id}">'
    )
    return (
        f'<form method="post" action="/">{hidden}'
        '<button name="action" value="replay">Replay</button></form>'
        f'<form method="post" action="/">{hidden}'
        '<input type="text" name="reason" required maxlength="1000" '
        'placeholder="why it is settled by hand" aria-label="reason">'
        '<button name="action" value="dismiss">Dismiss</button></form>'
    )


def _failures(glance: Glance, nonce: str, csrf: str) -> str:
    if not glance.failures:
        return '<p id="failures">No dead or rejected events.</p>'
    rows = []
    for event in glance.failures:
        reason = (event.reason or "")[:MAX_REASON_SHOWN]
        rows.append(
            f'<tr data-event="{event.id}"><td>{event.id}</td>'
            f'<td class="status">{_e(event.status)}</td><td>{_e(event.source)}</td>'
            f'<td>{_e(event.order_ref or "")}</td><td class="reason">{_e(reason)}</td>'
            f"<td>{age(glance.now - event.updated_at)} ago</td>"
            f"<td>{_forms(event, nonce, csrf)}</td></tr>"
        )
    return (
        '<table id="failures"><thead><tr><th>event</th><th>status</th><th>source</th>'
        "<th>order</th><th>reason</th><th>failed</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render(
    glance: Glance, notice: Notice | None, *, nonce: str, csrf: str, script_nonce: str
) -> Page:
    """The whole page for what `glance` read."""
    parts = [
        f'<p class="muted">As of {utc(glance.now)}; reloads every {REFRESH_SECONDS} s.</p>',
    ]
    if notice is not None:
        parts.append(f'<p class="notice {notice.kind}" id="notice">{_e(notice.text)}</p>')
    if glance.unreachable:
        parts.append(
            '<p class="notice bad" id="unreachable">The store is unreachable: the bridge '
            "cannot read its events right now. This page tries again by itself.</p>"
        )
    else:
        parts += [
            "<h2>Events by status</h2>",
            _counts(glance.counts),
            "<h2>Received in the last 24 hours</h2>",
            _bars(glance),
            "<h2>Oldest unfinished event</h2>",
            _oldest(glance),
            "<h2>Latest failures</h2>",
            _failures(glance, nonce, csrf),
        ]
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript>'
        f"<title>Bridge status</title><style>{STYLE}</style></head><body>"
        "<h1>Luminous invoice bridge</h1>"
        f"{''.join(parts)}"
        f'<script nonce="{script_nonce}">{SCRIPT % REFRESH_SECONDS}</script>'
        "</body></html>"
    )
    return Page(body, script_nonce)
