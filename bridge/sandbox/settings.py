"""How a sandbox is started: its data files, its token and the faults it injects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SandboxSettings:
    """Everything `bridge sandbox` takes as flags; rates are shares of requests, 0 to 1."""

    seed: Path | None = None
    state: Path | None = None
    token: str | None = None
    auto_products: bool = False
    latency_ms: float = 0
    fail_rate: float = 0
    throttle_rate: float = 0
    timeout_after_commit_rate: float = 0
    fault_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate", "timeout_after_commit_rate"):
            rate = getattr(self, name)
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, not {self.latency_ms}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty (leave it unset to accept any token)")
