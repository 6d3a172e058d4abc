"""Hypothesis helpers shared by the mapping tests: JSON of a mapping's own vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st


def scalars(samples: Sequence[str]) -> st.SearchStrategy[Any]:
    """JSON scalars of every kind, huge and non-finite numbers included, and `samples`."""
    return (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.decimals(allow_nan=True, allow_infinity=True)
        | st.text(max_size=12)
        | st.sampled_from(list(samples))
    )


def json_values(keys: Sequence[str], samples: Sequence[str]) -> st.SearchStrategy[Any]:
    """Any JSON, leaning on a mapping's field names and on strings it might half-understand."""
    return st.recursive(
        scalars(samples),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(list(keys)) | st.text(max_size=5), inner, max_size=6)
        ),
        max_leaves=25,
    )


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path below the root of a parsed JSON document."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found
