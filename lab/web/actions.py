"""What each command does to the lab: one handler per action, `handler(lab, **fields)`.

The command table (lab.web.commands) names the handler of every action, with
its fields, the parts of the lab it needs and its help. `lab` is the started
LabController; a handler steers its processes only through their HTTP APIs and
raises CommandError (or the APIs' ApiError, or StartError) when it cannot.
"""

from __future__ import annotations

from typing import Any

from lab.web.api import ApiError
from lab.web.fields import CommandError
from lab.web.records import KILLED, RUNNING

MAX_BACKENDS = 12


def on_side(lab: Any, side: str | None) -> Any:
    """The controller of a comparison's `side`: the lab itself for the left (or no side)."""
    if side in (None, "left"):
        return lab
    if lab.right is None:
        raise CommandError('no comparison is open: start one with {"action": "compare", ...}')
    return lab.right


def set_algorithm(lab: Any, algorithm: str, side: str | None = None) -> None:
    on_side(lab, side).put_config({"algorithm": algorithm})


def set_hash_key(lab: Any, hash_key: str, side: str | None = None) -> None:
    on_side(lab, side).put_config({"hash_key": hash_key})


def set_mode(lab: Any, mode: str, side: str | None = None) -> None:
    chosen = on_side(lab, side)
    chosen.put_config({"mode": mode})
    if chosen is lab and lab.traffic is not None:  # at udp the clients send datagrams
        set_traffic(lab, protocol=traffic_protocol(mode))
    reconnect_traffic(lab)


def traffic_protocol(mode: str) -> str:
    return "udp" if mode == "udp" else "http"


def reconnect_traffic(lab: Any) -> None:
    """Close the traffic's idle keep-alive connections, so its next requests open new ones.

    An open connection keeps the mode it was accepted in; without this, a learner
    who switches Layer 4 -> 7 would see nothing change until a connection closed.
    """
    state = lab.traffic_state()
    if state is not None and state["keep_alive"]:
        set_traffic(lab, keep_alive=False)
        set_traffic(lab, keep_alive=True)


def add_backend(lab: Any) -> None:
    if len(lab.backends) >= MAX_BACKENDS:
        raise CommandError(f"the lab runs at most {MAX_BACKENDS} backends")
    taken = {record.number for record in lab.backends.values()}
    name = f"b{min(n for n in range(1, MAX_BACKENDS + 2) if n not in taken)}"
    record = lab.start_backend(name)
    try:
        lab.balancer_api().call(
            "POST",
            "/backends",
            {"name": name, "address": lab.balancer_address(record), "weight": 1},
        )
    except ApiError:  # rolled back: the lab is as it was
        lab.stop_backend(name)
        raise


def remove_backend(lab: Any, name: str) -> None:
    lab.backend(name)
    lab.balancer_api().call("DELETE", f"/backends/{name}")
    lab.stop_backend(name)


def kill_backend(lab: Any, name: str) -> None:
    record = running(lab, name)
    lab.kill_backend(name)
    record.process = KILLED


def restart_backend(lab: Any, name: str) -> None:
    record = lab.backend(name)
    old, old_balancer = record.address, lab.balancer_address(record)
    if record.process == RUNNING:
        lab.stop_backend(name, forget=False)
    lab.start_backend(name, port=int(old.rpartition(":")[2]))
    # The old port was taken (or, for HTTPS, the TLS listener has a new one): say where.
    if lab.balancer_address(record) != old_balancer:
        lab.balancer_api().call(
            "PUT", f"/backends/{name}", {"address": lab.balancer_address(record)}
        )


def set_weight(lab: Any, name: str, weight: int) -> None:
    lab.backend(name)
    lab.balancer_api().call("PUT", f"/backends/{name}", {"weight": weight})


def set_latency(lab: Any, name: str, latency_ms: float, jitter_ms: float | None = None) -> None:
    knobs = {"latency_ms": latency_ms}
    if jitter_ms is not None:
        knobs["jitter_ms"] = jitter_ms
    turn_knobs(lab, name, knobs)


def set_error_rate(lab: Any, name: str, error_rate: float) -> None:
    turn_knobs(lab, name, {"error_rate": error_rate})


def set_healthy(lab: Any, name: str, healthy: bool) -> None:
    turn_knobs(lab, name, {"healthy": healthy})


def set_max_concurrency(lab: Any, name: str, max_concurrency: int) -> None:
    turn_knobs(lab, name, {"max_concurrency": max_concurrency})


def drain_backend(lab: Any, name: str, draining: bool) -> None:
    lab.backend(name)
    lab.balancer_api().call("PUT", f"/backends/{name}", {"draining": draining})


def configure(lab: Any, settings: dict, side: str | None = None) -> None:
    lab_owned = sorted(set(settings) & {"backends", "mode"})
    if lab_owned:
        use = "add_backend and remove_backend" if lab_owned[0] == "backends" else "set_mode"
        raise CommandError(f"{lab_owned[0]} belongs to the lab: use {use}")
    on_side(lab, side).put_config(settings)


def running(lab: Any, name: str) -> Any:
    record = lab.backend(name)
    if record.process != RUNNING:
        raise CommandError(f"{name} is not running ({record.process}); restart it first")
    return record


def turn_knobs(lab: Any, name: str, knobs: dict[str, Any]) -> None:
    record = running(lab, name)
    lab.backend_api(record).call("PUT", "/_lab/knobs", knobs)
    record.remember(knobs)  # kept, so a restarted backend comes back the same


def set_traffic(lab: Any, **changes: Any) -> None:
    lab.traffic_api().call("PUT", "/config", changes)


def send(lab: Any, count: int) -> None:
    lab.traffic_api().call("POST", "/send", {"count": count})


def pause(lab: Any) -> None:
    lab.traffic_api().call("PUT", "/config", {"paused": True})


def resume(lab: Any) -> None:
    lab.traffic_api().call("PUT", "/config", {"paused": False})


def reset(lab: Any) -> None:
    lab.balancer_api().call("POST", "/reset")
    for record in lab.backends.values():
        if record.process == RUNNING:
            lab.backend_api(record).call("POST", "/_lab/reset")
    if lab.traffic is not None:
        lab.traffic.call("POST", "/reset")
    if lab.relay is not None:
        lab.relay.reset_history()
