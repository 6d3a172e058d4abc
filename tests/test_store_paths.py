"""Where the SQLite store is, from a real shell: beside the configuration file whatever the
working folder, never created by a command that only reads, and never replaced by a new empty
one when an earlier release left it relative to the working folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import run_cli

CONFIG = '[store]\nurl = "sqlite:///data/bridge.db"\n'
ENV = {"SHOPIFY_WEBHOOK_SECRET": "s"}


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """An `etc` folder holding bridge.toml, and an unrelated working folder."""
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    (etc / "bridge.toml").write_text(CONFIG)
    return etc, elsewhere


def test_a_relative_path_is_beside_the_configuration_file(folders: tuple[Path, Path]) -> None:
    etc, elsewhere = folders
    config = str(etc / "bridge.toml")
    migrated = run_cli("migrate", "--config", config, env=ENV, cwd=elsewhere)
    assert migrated.returncode == 0, migrated.stderr
    assert (etc / "data" / "bridge.db").exists()
    assert list(elsewhere.iterdir()) == []
    # Another working folder, through $BRIDGE_CONFIG: the same store (a missing one exits 2).
    listed = run_cli("events", "list", env={**ENV, "BRIDGE_CONFIG": config}, cwd=etc.parent)
    assert listed.returncode == 0, listed.stderr
    assert "0 matching" in listed.stdout


@pytest.mark.parametrize("argv", [["events", "list"], ["events", "show", "1"], ["events", "purge"]])
def test_a_command_that_only_reads_never_creates_a_store(
    folders: tuple[Path, Path], argv: list[str]
) -> None:
    etc, elsewhere = folders
    done = run_cli(*argv, "--config", str(etc / "bridge.toml"), env=ENV, cwd=elsewhere)
    assert done.returncode == 2, done.stderr
    store = etc / "data" / "bridge.db"
    assert f"no store at {store}" in done.stderr
    assert "bridge migrate" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not store.exists() and not store.parent.exists()
    assert list(elsewhere.iterdir()) == []


def test_a_store_where_earlier_releases_put_it_is_never_replaced(
    folders: tuple[Path, Path],
) -> None:
    etc, elsewhere = folders
    # An earlier release, run from `elsewhere`, kept its store relative to the working folder.
    (elsewhere / "data").mkdir()
    earlier = run_cli("migrate", env=ENV, cwd=elsewhere / "data")
    assert earlier.returncode == 0, earlier.stderr
    old = elsewhere / "data" / "bridge.db"
    new = etc / "data" / "bridge.db"
    config = str(etc / "bridge.toml")
    for argv in (["migrate"], ["events", "list"], ["serve", "--sandbox", "--port", "1"]):
        refused = run_cli(*argv, "--config", config, env=ENV, cwd=elsewhere)
        assert refused.returncode == 2, (argv, refused.stderr)
        assert str(old) in refused.stderr and str(new) in refused.stderr
        assert "move" in refused.stderr
        assert not new.exists()
    # Moved as the message says, the same store is found.
    new.parent.mkdir()
    old.rename(new)
    moved = run_cli("events", "list", "--config", config, env=ENV, cwd=elsewhere)
    assert moved.returncode == 0, moved.stderr


def test_no_configuration_file_keeps_the_working_folder(tmp_path: Path) -> None:
    done = run_cli("migrate", env={**ENV, "BRIDGE_STORE__URL": "sqlite:///here.db"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "here.db").exists()
