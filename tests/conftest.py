"""Shared fixtures: the anyio backend, and paths to the test data."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
