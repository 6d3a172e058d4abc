"""Shared fixtures: the anyio backend, and paths to the test data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def postgres_unreachable(reason: str) -> NoReturn:
    """Skip a PostgreSQL test when no server is at hand; under CI (CI=true) that fails."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs every PostgreSQL test)")
    pytest.skip(reason)
