"""A comparison: a second side beside the lab, on the same traffic, differing only in its balancer.

The lab itself is the left side. `start` gives it a right side: its own toy
backends (the same names, knobs and weights, each its own process) and its
own balancer, started with the left balancer's settings and then the
settings chosen for the right. The one traffic generator is restarted with
both balancers as targets and one seed, so every arrival goes to both at the
same instant, from the same client (lab.traffic.generator). From then on:

- knob and backend commands (latency, errors, weights, kill, add, ...) run on
  both sides (their Action says `both_sides` in lab.web.commands);
- balancer commands take a `side` ("left", the default, or "right");
- each side's batches say which side they belong to (`"side"`), and the
  lab's `state` carries the right side whole under `compare.right`.

`stop` ends the right side's processes and sends the traffic to the left alone.

With `same_backends` it is not a comparison of two labs but one lab with two
balancers, as a site with many balancers has: the right balancer fronts the
left's own backend processes, and the generator shares the clients out
between the two balancers (client k to balancer k mod 2) instead of sending
every arrival to both. Each balancer knows only what it sent itself, so each
side's cards show that balancer's own view, and the backends' `served` counts
are what both sent. A backend command then acts on the processes once (the
left's), and the right balancer is given the backends as they now are.
"""

from __future__ import annotations

import random
from typing import Any

from lab.web import actions
from lab.web.fields import CommandError
from lab.web.records import BackendProcess

SIDES = ("left", "right")
# Settings a side may not choose: both sides have the same backends (the lab's own commands).
SHARED = ("backends", "listen", "admin", "seed", "events_queue")
MAX_SEED = 2**31 - 1


def start(
    lab: Any,
    left: dict | None = None,
    right: dict | None = None,
    seed: int | None = None,
    same_backends: bool = False,
):
    """Open a comparison (afresh, if one is open): `left` and `right` are balancer settings;
    `same_backends`: a second balancer in front of the lab's own backends, the clients split."""
    left, right = left or {}, right or {}
    for side, settings in (("left", left), ("right", right)):
        shared = sorted(set(settings) & set(SHARED))
        if shared:
            raise CommandError(f"{side}: {shared[0]} is the same on both sides and not a setting")
    if lab.traffic is None:
        raise CommandError(lab.traffic_error or "a comparison needs the traffic generator")
    traffic = lab.traffic_state() or {}
    if getattr(lab, "tls_backends", False) or traffic.get("tls"):  # lab.web.https
        raise CommandError("a comparison is plain HTTP: turn HTTPS off first (set_tls off)")
    if lab.right is not None:
        stop(lab, restart_traffic=False)
    if left:
        lab.put_config(left)
    from lab.web.right_side import RightSide  # it is a LabController: imported when used

    side = RightSide(lab, same_backends)
    try:
        side.start_side(right)
    except BaseException:
        side.close()
        raise
    lab.right = side
    if seed is None:
        seed = lab.settings.seed if lab.settings.seed is not None else random.randint(1, MAX_SEED)
    lab.compare_seed = seed
    lab.restart_traffic(seed)
    side.attach_to(lab)
    actions.reset(lab)  # both sides count from the same zero


def stop(lab: Any, restart_traffic: bool = True) -> None:
    """End the comparison: stop the right side's processes; the traffic goes to the left alone."""
    side, lab.right = lab.right, None
    if side is None:
        raise CommandError("no comparison is open")
    lab.changing()
    side.close()
    lab.compare_seed = None
    if restart_traffic:
        lab.restart_traffic(lab.settings.seed)


def follows(side: Any, action: Any) -> bool:
    """Whether a both-sides action runs on the right side too, or (same backends) the
    right balancer only needs the backends as they now are: the processes are the left's."""
    if not side.same_backends:
        return True
    touches_processes = "backends" in action.needs and "traffic" not in action.needs
    return not touches_processes  # reset (it needs everything) zeroes the right's counters


def end_compare(lab: Any) -> None:
    stop(lab)


def traffic_side(traffic: dict | None, index: int) -> dict | None:
    """The traffic generator's state as one side sees it: its own target, counts and times."""
    if traffic is None:
        return None
    sides = traffic.get("sides") or []
    if index >= len(sides):
        return None
    side = sides[index]
    return {**traffic, **{k: side[k] for k in ("target", "counters", "latency_ms", "distribution")}}


def describe(lab: Any) -> dict | None:
    """The `compare` part of the lab's state: None, or the seed and the right side whole."""
    side = lab.right
    if side is None:
        return None
    return {"seed": lab.compare_seed, "sides": list(SIDES), "right": side.snapshot()}


def copied_config(left: Any, backends: dict[str, BackendProcess]) -> dict:
    """The left balancer's settings as a PUT /config document, with our backends' addresses."""
    state = left.balancer_api().get("/state")
    document: dict[str, Any] = {
        "mode": state["mode"],
        "algorithm": state["algorithm"],
        "hash_key": state["hash_key"],
        "rules": state.get("rules", []),
        **state.get("settings", {}),
    }
    document["backends"] = [
        {
            "name": b["name"],
            "address": backends[b["name"]].address,
            "weight": b["weight"],
            **({"backup": True} if b.get("backup") else {}),
            **({"max_conns": b["max_conns"]} if b.get("max_conns") else {}),
        }
        for b in state["backends"]
        if b["name"] in backends
    ]
    pools = []
    for pool in state.get("pools", []):
        if pool["name"] == "default" and set(pool["backends"]) == set(backends):
            continue  # the default pool holds every backend: no need to say so
        spec = {"name": pool["name"], "backends": pool["backends"]}
        if pool.get("algorithm") and pool["algorithm"] != state["algorithm"]:
            spec["algorithm"] = pool["algorithm"]
        pools.append(spec)
    document["pools"] = pools
    return document
