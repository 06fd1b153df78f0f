"""Prometheus text exposition of the balancer's counters, per backend."""

from __future__ import annotations

from lab.balancer.backend import LATENCY_BUCKETS_MS
from lab.balancer.balancer import Balancer


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(balancer: Balancer) -> str:
    backends = list(balancer.backends.values())
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    per = [(f'{{backend="{_label(b.name)}"}}', b) for b in backends]
    family(
        "lb_requests_total",
        "counter",
        "Requests (http mode) or connections (tcp mode) routed to each backend.",
        [(labels, b.total) for labels, b in per],
    )
    family(
        "lb_active",
        "gauge",
        "Requests or connections in flight to each backend now.",
        [(labels, b.active) for labels, b in per],
    )
    family(
        "lb_failures_total",
        "counter",
        "Connect errors, resets and 5xx answers seen on real traffic, per backend.",
        [(labels, b.failures) for labels, b in per],
    )
    family(
        "lb_backend_healthy",
        "gauge",
        "1 if health checks (active and passive) find the backend fit for traffic, else 0.",
        [(labels, int(b.healthy)) for labels, b in per],
    )
    family(
        "lb_backend_draining",
        "gauge",
        "1 while the backend is draining (no new traffic), else 0.",
        [(labels, int(b.draining)) for labels, b in per],
    )
    family(
        "lb_backend_weight",
        "gauge",
        "Configured weight of each backend.",
        [(labels, b.weight) for labels, b in per],
    )

    out.append(
        "# HELP lb_response_seconds Response time per backend (time to first byte at Layer 4)."
    )
    out.append("# TYPE lb_response_seconds histogram")
    for b in backends:
        name = _label(b.name)
        running = 0
        for bound, count in zip(LATENCY_BUCKETS_MS, b.latency_buckets, strict=False):
            running += count
            out.append(
                f'lb_response_seconds_bucket{{backend="{name}",le="{bound / 1000:g}"}} {running}'
            )
        running += b.latency_buckets[-1]
        out.append(f'lb_response_seconds_bucket{{backend="{name}",le="+Inf"}} {running}')
        out.append(f'lb_response_seconds_sum{{backend="{name}"}} {b.latency_sum_ms / 1000:g}')
        out.append(f'lb_response_seconds_count{{backend="{name}"}} {running}')

    family(
        "lb_errors_total",
        "counter",
        "Requests the balancer answered itself (by status), retried or refused.",
        [(f'{{kind="{_label(kind)}"}}', n) for kind, n in sorted(balancer.errors.items())],
    )
    family(
        "lb_queue_waiting",
        "gauge",
        "Requests waiting for a max_conns slot, per pool.",
        [(f'{{pool="{_label(p.name)}"}}', len(p.queue)) for p in balancer.pools.values()],
    )
    udp = balancer.udp_counts
    family(
        "lb_udp_flows",
        "gauge",
        "UDP flows the balancer holds now (mode udp).",
        [("", len(balancer.flows))],
    )
    family(
        "lb_udp_flows_ended_total",
        "counter",
        "UDP flows that ended, by why: idle, evicted, backend-down, refused, answered, reset.",
        [
            (f'{{end="{_label(key[6:])}"}}', n)
            for key, n in sorted(udp.items())
            if key.startswith("ended_")
        ],
    )
    family(
        "lb_udp_datagrams_total",
        "counter",
        "UDP datagrams forwarded: up (client to backend) and down (replies).",
        [('{way="up"}', udp["datagrams_up"]), ('{way="down"}', udp["datagrams_down"])],
    )
    family(
        "lb_backend_datagrams_total",
        "counter",
        "UDP datagrams from clients forwarded to each backend.",
        [(labels, b.datagrams) for labels, b in per],
    )
    family(
        "lb_events_published_total",
        "counter",
        "Events published on /events.",
        [("", balancer.events.published)],
    )
    family(
        "lb_events_dropped_total",
        "counter",
        "Events dropped because an /events reader was slow.",
        [("", balancer.events.dropped)],
    )
    family(
        "lb_event_subscribers",
        "gauge",
        "Readers attached to /events now.",
        [("", len(balancer.events.subscribers))],
    )
    return "\n".join(out) + "\n"
