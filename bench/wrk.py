"""wrk, the load generator: pre-signed requests as Lua, one run, its answers counted by status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.posting import Delivery
from bench.services import Service

CHUNK = 10_000  # requests per Lua function

# wrk's Lua: each thread walks its own stride of the prepared requests (once, then only
# GET /healthz, when `once`), counts answers by status, and prints the run as one JSON line.
# Lua's % is floored, so a negative index still picks a request.
WRK_SCRIPT = """
local requests = dofile("%(requests)s")
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("first", counter)
  table.insert(threads, thread)
end
function init(args)
  stride = %(threads)d
  -- wrk calls the first thread's request() once before the run to check it, and drops it
  index = first == 1 and first - stride or first
  once = %(once)s
  statuses = {}
end
function request()
  if once and index > #requests then return wrk.format("GET", "/healthz") end
  local r = requests[((index - 1) %% #requests) + 1]
  index = index + stride
  return wrk.format("POST", r[1], r[2], r[3])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do table.insert(parts, string.format('"%%s": %%d', status, n)) end
  io.write(string.format(
    'WRK {"requests": %%d, "seconds": %%f, "p50_ms": %%f, "p99_ms": %%f, '
      .. '"errors": %%d, "statuses": {%%s}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ", ")))
end
"""


@dataclass
class Load:
    """What wrk measured: answers per second and latency."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    statuses: dict[str, int]
    cpu: float = 0.0  # CPU seconds of the measured process during the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def ok(self, status: str) -> int:
        return self.statuses.get(status, 0)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "wrk"


def lua_string(text: str) -> str:
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def write_requests(path: Path, deliveries: list[Delivery], target: str) -> Path:
    """The prepared requests as a Lua file wrk loads: {path, headers, body} each.

    LuaJIT allows 65,536 constants per function, so each chunk of requests is built by a
    function of its own.
    """
    with path.open("w") as out:
        out.write("local all = {}\n")
        for first in range(0, len(deliveries), CHUNK):
            out.write("for _, r in ipairs((function() return {\n")
            for delivery in deliveries[first : first + CHUNK]:
                headers = ", ".join(
                    f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in delivery.headers.items()
                )
                body = lua_string(delivery.content.decode())
                out.write(f"{{{lua_string(target)}, {{{headers}}}, {body}}},\n")
            out.write("} end)()) do all[#all + 1] = r end\n")
        out.write("return all\n")
    return path


def run_wrk(
    wrk: str,
    url: str,
    requests: Path,
    seconds: float,
    connections: int,
    watched: Service,
    until: Callable[[], bool] | None = None,
) -> Load:
    """wrk for `seconds`; with `until`, each request is sent once and wrk stops when it holds."""
    script = requests.with_suffix(".wrk.lua")
    once = "true" if until else "false"
    script.write_text(WRK_SCRIPT % {"requests": requests, "threads": 2, "once": once})
    before = watched.cpu_seconds()
    argv = [wrk, "-t2", f"-c{connections}", f"-d{round(seconds)}s", "--timeout=30s"]
    proc = subprocess.Popen(
        [*argv, f"-s{script}", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if until is not None:
        while proc.poll() is None and not until():
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT, as after -d
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {stderr or stdout}")
    cpu = watched.cpu_seconds() - before
    lines = [row for row in stdout.splitlines() if row.startswith("WRK ")]
    if not lines:
        raise SystemExit(f"wrk printed no summary:\n{stdout}{stderr}")
    return Load(**json.loads(lines[0][4:]), cpu=cpu)
