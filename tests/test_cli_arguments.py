"""Whatever it is given, every `bridge` command answers with an exit code and, when it fails,
one line on stderr: bad input exits 2, a failed operation 1, and a closed pipe ends it quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.cli import build_parser, main
from bridge.config import StoreConfig
from bridge.errors import StoreError
from bridge.store import open_store
from bridge.store.base import REJECTED, NewDelivery
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "shopify-order.json"
# What a PostgreSQL store's failure can say: several lines.
STORE_DOWN = 'connection failed: FATAL: no pg_hba.conf entry\n\tIs the server running on "db"?'


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    return tmp_path


def run(argv: list[str]) -> tuple[int, str, str]:
    """`main(argv)` as the console script runs it: the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's own refusals and --help
            code = exit.code if isinstance(exit.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def check_one_line(code: int, err: str) -> None:
    assert code in (0, 1, 2), code
    if code:
        assert err.endswith("\n") and err.count("\n") == 1, err
        assert err.startswith("bridge"), err


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "show", "99999999999999999999"],
        ["events", "replay", "99999999999999999999"],
        ["events", "replay", "3", "9223372036854775808"],
        ["events", "show", "0"],
        ["events", "show", "²"],
        ["events", "list", "--limit", "-1"],
        ["events", "list", "--since", "yesterday"],
        ["events", "list", "--since", "99999999999999999999d"],
        ["events", "purge", "--status", "dead", "--before", "99999999999999999999999h"],
        ["events", "purge", "--status", "dead", "--before", "0001-01-01T00:00:00+01:00"],
        ["events", "purge", "--status", "dead", "--before", "9999-12-31T23:59:59-10:00"],
        ["backfill", "shopify", "--since", "99999999999999999999999d"],
        ["shop-sandbox", "shopify", "--days", "9999999999"],
        ["events", "purge", "--days", "1" + "0" * 400],
        ["serve", "--port", "65536"],
        ["sandbox", "--latency", "nan"],
        ["send", "shopify", str(EXAMPLE), "--url", "http://[::1"],
        ["send", "shopify", str(EXAMPLE), "--shop", "ünïcode.example"],
        ["map", "shopify", "no\x00such.json"],
        ["check-config", "--config", "."],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str]) -> None:
    assert main(["migrate"]) == 0
    code, _, err = run(argv)
    assert code == 2, err
    check_one_line(code, err)


def test_an_event_id_in_range_that_does_not_exist_is_a_failed_operation() -> None:
    assert main(["migrate"]) == 0
    code, _, err = run(["events", "show", "9223372036854775807"])
    assert (code, err) == (1, "bridge: no event 9223372036854775807\n")


def test_a_store_error_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(StoreConfig(url="memory://"), create=True)

    async def unreachable() -> None:
        raise StoreError(STORE_DOWN)

    monkeypatch.setattr(store, "schema_version", unreachable)
    monkeypatch.setattr(store, "migrate", unreachable)
    monkeypatch.setattr("bridge.events_cli.open_store", lambda config, create: store)
    monkeypatch.setattr("bridge.store.open_store", lambda config, create: store)
    for argv in (["events", "list"], ["events", "show", "1"], ["migrate"]):
        code, _, err = run(argv)
        assert code == 1, (argv, err)
        check_one_line(code, err)
        assert "pg_hba.conf" in err
    # `serve` prepares its store before it listens: a failure there is a line, not a server.
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "s")
    code, _, err = run(["serve", "--sandbox", "--port", "1"])
    assert code == 1 and "pg_hba.conf" in err
    check_one_line(code, err)


@pytest.mark.parametrize("where", ["a directory", "under a file"])
@pytest.mark.parametrize("argv", [["events", "list"], ["serve", "--sandbox", "--port", "1"]])
def test_a_store_sqlite_cannot_open_is_one_line_naming_it_and_exit_2(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, where: str, argv: list[str]
) -> None:
    (isolated / "a-file").write_text("")
    path = isolated if where == "a directory" else isolated / "a-file" / "bridge.db"
    (isolated / "bridge.toml").write_text(f'[store]\nurl = "sqlite:///{path}"\n')
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "s")
    code, _, err = run([*argv, "--config", "bridge.toml"])
    assert code == 2, err
    check_one_line(code, err)
    if argv[0] == "events" and where == "under a file":
        # A command that only reads finds no store there, and never tries to create one.
        assert f"no store at {path}" in err
    else:
        assert f"cannot open SQLite store {path}" in err


async def _rejected_events(database: Path, count: int) -> None:
    store = open_store(StoreConfig(url=f"sqlite:///{database}", durability="normal"), create=True)
    await store.migrate()
    reason = "the mapping refused the payload: " + "line_items is not a list; " * 10
    for number in range(count):
        delivery = NewDelivery("shopify", f"d{number}", "acme", "orders/create", {}, b"{}")
        event, _ = await store.record(delivery)
        claimed = await store.claim(event.id, "test", 60)
        assert claimed is not None
        assert await store.finish(event.id, claimed.generation, REJECTED, reason=reason)
    await store.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "replay", "--status", "rejected", "--dry-run"],
        ["events", "list", "--limit", "1000"],  # the default 100 rows could fit in the pipe
    ],
)
def test_output_into_a_closed_pipe_ends_quietly(isolated: Path, argv: list[str]) -> None:
    asyncio.run(_rejected_events(isolated / "bridge.db", 600))  # far more than a pipe holds
    reader = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"},
    )
    assert reader.stdout is not None and reader.stderr is not None
    head = [reader.stdout.readline() for _ in range(5)]  # as `| head -5` reads
    reader.stdout.close()
    err = reader.stderr.read()
    reader.stderr.close()
    assert reader.wait(timeout=30) == 1
    assert all(head), head
    assert err == b"", err.decode()


@pytest.mark.parametrize(
    "argv", [["mappings"], ["events", "list"], ["map", "shopify", str(EXAMPLE)], ["bogus"]]
)
def test_a_command_started_with_its_streams_closed_ends_without_a_traceback(
    argv: list[str],
) -> None:
    assert main(["migrate"]) == 0
    # `bridge … >&-`: stdout is closed before the command starts; stderr shows what it said.
    closed = subprocess.run(
        [sys.executable, "-m", "bridge.cli", *argv],
        capture_output=True,
        preexec_fn=lambda: os.close(1),
        timeout=60,
    )
    assert b"Traceback" not in closed.stderr, closed.stderr.decode()
    assert closed.returncode == (2 if argv == ["bogus"] else 0), closed.stderr.decode()


# -- any input ----------------------------------------------------------------------------

# Relative, so no example reads a device or a system file; a few that are not even text.
VALUES = st.one_of(
    st.text(max_size=30).filter(lambda text: not text.startswith("/")),
    st.integers().map(str),
    st.integers(min_value=2**62, max_value=2**80).map(str),  # past the store's 64 bits
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3),
    st.sampled_from(["\udcff", "a\x00b", "nan", "1e400", "2h", "-1", ".", ""]),
)
# Commands that run against the store or offline, with a value in each place they take one.
RUNNABLE = [
    lambda v: ["events", "show", v],
    lambda v: ["events", "replay", v],
    lambda v: ["events", "replay", "--status", v, "--dry-run"],
    lambda v: ["events", "list", "--limit", v],
    lambda v: ["events", "list", "--status", v],
    lambda v: ["events", "list", "--source", v, "--order", v],
    lambda v: ["events", "list", "--since", v],
    lambda v: ["events", "dismiss", v, "--reason", v],
    lambda v: ["events", "dismiss", "--status", v, "--source", v, "--reason", "r", "--dry-run"],
    lambda v: ["events", "dismiss", "--since", v, "--reason", "r", "--dry-run"],
    lambda v: ["events", "purge", "--days", v],
    lambda v: ["events", "purge", "--status", v, "--before", v],
    lambda v: ["events", "replay", "--source", v, "--since", v, "--dry-run"],
    lambda v: ["events", v],
    lambda v: ["map", v, str(EXAMPLE)],
    lambda v: ["map", "shopify", v],
    lambda v: ["map", "shopify", str(EXAMPLE), "--topic", v],
    lambda v: ["mappings", "--config", v],
    lambda v: ["migrate", "--config", v],
    lambda v: [v],
]
# Commands that would serve or post once their arguments are good: only parsed here.
PARSED = [
    lambda v: ["serve", "--port", v],
    lambda v: ["serve", "--host", v],
    lambda v: ["sandbox", "--port", v, "--latency", v],
    lambda v: ["sandbox", "--fail-rate", v, "--fault-seed", v],
    lambda v: ["send", "shopify", "f", "--url", v],
    lambda v: ["send", "shopify", "f", "--shop", v, "--topic", v, "--delivery-id", v],
]


@pytest.fixture
def migrated() -> Iterator[None]:
    assert main(["migrate"]) == 0
    yield


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("command", RUNNABLE, ids=lambda command: " ".join(command("V")))
def test_any_argument_gets_an_exit_code_and_at_most_one_line(
    migrated: None, command: Callable[[str], list[str]]
) -> None:
    @FUZZ
    @given(value=VALUES)
    def check(value: str) -> None:
        code, _, err = run(command(value))
        check_one_line(code, err)

    check()


@pytest.mark.parametrize("command", PARSED, ids=lambda command: " ".join(command("V")))
def test_any_argument_to_a_server_or_sender_parses_or_is_refused_in_one_line(
    command: Callable[[str], list[str]],
) -> None:
    @FUZZ
    @given(value=VALUES)
    def check(value: str) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                build_parser().parse_args(command(value))
            except SystemExit as exit:
                assert exit.code == 2
                check_one_line(2, err.getvalue())

    check()
