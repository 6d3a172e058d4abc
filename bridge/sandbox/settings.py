"""How a sandbox is started: its data files, its token and the faults it injects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The creations whose answer a timeout-after-commit fault may lose.
COMMIT_PATHS = frozenset({"/invoices", "/companies", "/contacts"})


@dataclass(frozen=True)
class SandboxSettings:
    """Everything `bridge sandbox` takes as flags; rates are shares of requests, 0 to 1.

    `timeout_after_commit_paths` has no flag: tests narrow with it which creations may lose
    their answer.
    """

    seed: Path | None = None
    state: Path | None = None
    token: str | None = None
    auto_products: bool = False
    latency_ms: float = 0
    fail_rate: float = 0
    throttle_rate: float = 0
    timeout_after_commit_rate: float = 0
    fault_seed: int | None = None
    timeout_after_commit_paths: frozenset[str] = COMMIT_PATHS

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate", "timeout_after_commit_rate"):
            rate = getattr(self, name)
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, not {self.latency_ms}")
        unknown = set(self.timeout_after_commit_paths) - COMMIT_PATHS
        if unknown:
            raise ValueError(
                f"timeout_after_commit_paths: {', '.join(sorted(unknown))} cannot lose answers "
                f"(choose from {', '.join(sorted(COMMIT_PATHS))})"
            )
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty (leave it unset to accept any token)")
