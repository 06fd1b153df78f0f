"""The lab's records of itself: how it starts, and each toy backend as the controller knows it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

BACKEND_NAME = re.compile(r"^b([1-9][0-9]?)$")
# A backend's process, as the page's `process` field says it (not its service state:
# whether the balancer sends it requests is the balancer's word, "up", "down", ...).
RUNNING, EXITED, KILLED = "running", "exited", "killed"  # exited: by itself; killed: by a command
# The knobs a backend takes as flags when it starts; any other is set through its API after.
KNOB_FLAGS = {
    "latency_ms": "--latency-ms",
    "jitter_ms": "--jitter-ms",
    "error_rate": "--error-rate",
    "max_concurrency": "--max-concurrency",
}


@dataclass(frozen=True)
class LabSettings:
    """How the lab starts. Port 0 means any free port; a busy preferred port falls back to 0."""

    host: str = "127.0.0.1"
    backends: int = 3
    mode: str = "http"
    algorithm: str = "round-robin"
    balancer_port: int = 8080
    first_backend_port: int = 9001
    rate: float = 2.0
    clients: int = 4
    paused: bool = False
    seed: int | None = None
    # How each simulated client's own address (127.0.0.k+1) reaches the balancer: "bind"
    # it, say it in a PROXY header ("proxy"), or "auto": bind where 127.0.0.2 can be
    # bound (Linux), else PROXY (macOS has only 127.0.0.1).
    client_addresses: str = "auto"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BackendProcess:
    """One toy backend as the lab knows it: its process, its state and the knobs we set."""

    name: str
    address: str
    process: str = RUNNING
    # Its TLS listener (lab.backend.tls), with the lab's certificate: what the balancer
    # connects to in passthrough or when it re-encrypts (lab.web.https); "" if none.
    tls_address: str = ""
    knobs: dict[str, float] = field(
        default_factory=lambda: {
            "latency_ms": 0.0,
            "jitter_ms": 0.0,
            "error_rate": 0.0,
            "max_concurrency": 0,
        }
    )
    # Knobs with no command-line flag (a lesson may set them): set through the API after start.
    other_knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        match = BACKEND_NAME.match(self.name)
        return int(match.group(1)) if match else 0

    def remember(self, knobs: dict[str, Any]) -> None:
        """Keep knobs just turned, so a restart brings the backend back the same."""
        for knob, value in knobs.items():
            (self.knobs if knob in KNOB_FLAGS else self.other_knobs)[knob] = value

    def flags(self) -> list[str]:
        """The command-line flags that start this backend with its knobs."""
        flags = []
        for knob, flag in KNOB_FLAGS.items():
            if self.knobs[knob]:
                flags += [flag, str(self.knobs[knob])]
        return flags
