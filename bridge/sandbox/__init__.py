"""A local, strict stand-in for Luminous's API, for trying the bridge, its tests and benchmarks."""

from bridge.sandbox.app import API_PREFIX, Sandbox, create_sandbox_app
from bridge.sandbox.faults import ConnectionDropped
from bridge.sandbox.settings import SandboxSettings

__all__ = ["API_PREFIX", "ConnectionDropped", "Sandbox", "SandboxSettings", "create_sandbox_app"]
