"""What GET /state answers: the balancer's whole picture, as JSON.

Mode, addresses, which build runs, every backend's numbers, the pools and the
rules as they stand, the settings a lesson reads, and the counters (errors, UDP,
events). The admin API (lab.balancer.admin) asks for it; the data plane never does.
"""

from __future__ import annotations

from lab.balancer import compiled
from lab.balancer.balancer import Balancer
from lab.balancer.flows import udp_state


def snapshot(self: Balancer) -> dict:
    config = self.config
    settings = config.as_json()
    return {
        "mode": config.mode,
        "listen": self.listen_address,
        "admin": self.admin_address,
        "algorithm": self.default_pool.algorithm.name,
        "hash_key": config.hash_key,
        "build": compiled.describe(),  # compiled with mypyc, or pure Python and why
        "backends": [b.snapshot() for b in self.backends.values()],
        "pools": [
            {
                "name": pool.name,
                "algorithm": pool.algorithm.name,
                "backends": [b.name for b in pool.members],
                "candidates": [b.name for b in pool.candidates],
                "panic": pool.panic,
                "note": pool.note,
                "queued": len(pool.queue),
            }
            for pool in self.pools.values()
        ],
        "rules": [rule.as_json() for rule in config.rules],
        "settings": {
            key: settings[key]
            for key in (
                "health",
                "passive",
                "retries",
                "sticky",
                "timeouts",
                "proxy_protocol",
                "panic_threshold",
                "slow_start_s",
                "max_queue",
                "udp",
                "tls",
            )
        },  # fmt: skip
        "udp": udp_state(self.flows, self.udp_counts),
        "errors": dict(self.errors),
        "events": {
            "subscribers": len(self.events.subscribers),
            "published": self.events.published,
            "dropped": self.events.dropped,
        },
    }
