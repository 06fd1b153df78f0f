"""The lab controller: starts the lab's processes and steers them, only through their HTTP APIs.

It owns a `lab.supervisor.Supervisor` with toy backends b1..bN, one balancer
(admin API on loopback) and one traffic generator aimed at the balancer. The
page's `command`s arrive here (`handle`), are checked whole (lab.web.commands)
before anything changes, and after every change all browsers get a fresh
`state` (the shapes are documented in lab.web.app). Commands take turns per
process they need, so a slow balancer holds up only the commands that need it
(the guarantees are in lab.web.turns).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from lab.balancer.config import BalancerConfig
from lab.lessons.catalog import Catalog, Lesson
from lab.lessons.settings import DEFAULT_KNOBS, LabSetup, balancer_defaults
from lab.lessons.snippets import from_state, snippets
from lab.supervisor import StartError, Supervisor
from lab.web import snapshot
from lab.web.api import ApiError, JsonApi
from lab.web.commands import NEEDS, CommandError, parse_command
from lab.web.ports import port_or_any
from lab.web.records import EXITED, KILLED, RUNNING, BackendProcess, LabSettings
from lab.web.relay import EventRelay
from lab.web.turns import Turns

MAX_BACKENDS = 12
WATCH_S = 0.5  # how often the controller checks that its processes still run
KNOB_FLAGS = {
    "latency_ms": "--latency-ms",
    "jitter_ms": "--jitter-ms",
    "error_rate": "--error-rate",
    "max_concurrency": "--max-concurrency",
}
DRAIN_S = 3.0  # how long opening a lesson waits for requests in flight to finish

log = logging.getLogger(__name__)


def _one_by_one(jobs: list[Callable[[], object]]) -> None:
    for job in jobs:
        job()


def _quiet(*_: object) -> None:
    """Publish nowhere (until a web app attaches)."""


class LabController:
    """The whole lab: start it, steer it with commands, describe it, stop it."""

    def __init__(self, settings: LabSettings | None = None, lessons: Catalog | None = None) -> None:
        self.settings = settings or LabSettings()
        self._lessons = lessons
        self.lesson: Lesson | None = None  # the lesson whose settings were applied last
        self.supervisor = Supervisor()
        self.backends: dict[str, BackendProcess] = {}
        self.balancer: JsonApi | None = None
        self.traffic: JsonApi | None = None
        self.traffic_error = ""
        self.addresses: dict[str, str] = {}
        self.publish: Callable[[str, Any], None] = _quiet
        self.relay: EventRelay | None = None
        self.problem = ""  # set when a process the lab cannot do without has gone
        self.stopped = False
        self.turns = Turns()
        self._pollers: dict[str, JsonApi] = {}
        self._reads = itertools.count(1)  # numbers the balancer's /state readings, see _read
        self._sleep: Callable[[float], None] = time.sleep

    @property
    def lessons(self) -> Catalog:
        """The lessons this lab can open (the lab's own folder unless given one)."""
        if self._lessons is None:
            self._lessons = Catalog()
        return self._lessons

    # -- starting and stopping -----------------------------------------------------------

    def start(self, run_all: Callable[[list[Callable[[], object]]], object] | None = None) -> None:
        """Start backends, balancer and traffic; raise StartError if the lab cannot run.

        `run_all` runs a list of jobs and waits for them all (the eventlet server
        passes one that starts the backends side by side); by default, in turn.
        """
        settings = self.settings
        names = [f"b{number}" for number in range(1, settings.backends + 1)]
        for name in names:  # in name order, however the starts finish
            self.backends[name] = BackendProcess(name, "")
        try:
            (run_all or _one_by_one)([partial(self._start_backend, name) for name in names])
            self._start_balancer()
            self._start_traffic()
        except BaseException:
            self.close()
            raise

    def _start_backend(self, name: str, port: int | None = None) -> BackendProcess:
        record = self.backends.get(name) or BackendProcess(name, "")
        if port is None:
            first = self.settings.first_backend_port
            port = first + record.number - 1 if first and record.number else 0
        flags = []
        for knob, flag in KNOB_FLAGS.items():
            if record.knobs[knob]:
                flags += [flag, str(record.knobs[knob])]
        child = self._start_child(
            name, ["backend", "--name", name, "--host", self.settings.host, *flags], port
        )
        record.address, record.process = child.addresses["listen"], RUNNING
        self.backends[name] = record
        if record.other_knobs:
            JsonApi(record.address, name).call("PUT", "/_lab/knobs", record.other_knobs)
        return record

    def _start_balancer(self) -> None:
        settings = self.settings
        args = ["balancer", "--mode", settings.mode, "--algorithm", settings.algorithm]
        args += ["--admin", f"{settings.host}:0"]
        if settings.seed is not None:
            args += ["--seed", str(settings.seed)]
        for record in self.backends.values():
            args += ["--backend", f"{record.name}={record.address}"]
        child = self._start_child("balancer", args, settings.balancer_port, flag="--listen")
        self.addresses = {"listen": child.addresses["listen"], "admin": child.addresses["admin"]}
        self.balancer = JsonApi(self.addresses["admin"], "the balancer")
        # The lab's own defaults where they differ from a bare balancer's (active health
        # checks, so a killed backend shows as down even with no traffic to notice it).
        fresh = BalancerConfig().as_json()
        lab = {k: v for k, v in balancer_defaults().items() if fresh.get(k) != v}
        lab = {k: v for k, v in lab.items() if k not in ("mode", "algorithm", "hash_key")}
        if lab:
            self._put_config(lab)

    def _start_traffic(self) -> None:
        settings = self.settings
        args = ["traffic", "--target", f"http://{self.addresses['listen']}/"]
        args += ["--rate", str(settings.rate), "--clients", str(settings.clients)]
        args += ["--control", f"{settings.host}:0"]
        if settings.paused:
            args.append("--paused")
        if settings.seed is not None:
            args += ["--seed", str(settings.seed)]
        try:
            child = self.supervisor.start("traffic", args)
        except StartError as exc:
            # The page still works without it (commands that need it say so).
            self.traffic_error = f"the traffic generator did not start: {exc}"
            log.warning(self.traffic_error)
            return
        self.addresses["traffic"] = child.addresses["control"]
        self.traffic = JsonApi(self.addresses["traffic"], "the traffic generator")

    def _start_child(self, name: str, args: list[str], port: int, flag: str = "--port"):
        """Start a child on `port` if it is free now, else (or if that fails) on any free port."""
        host = self.settings.host
        wanted = port_or_any(host, port) if port else 0
        value = (lambda p: f"{host}:{p}") if flag == "--listen" else str
        try:
            return self.supervisor.start(name, [*args, flag, value(wanted)])
        except StartError:
            if wanted == 0:
                raise
            # Someone took the port between our probe and the child's bind.
            return self.supervisor.start(name, [*args, flag, value(0)])

    def attach(
        self,
        publish: Callable[[str, Any], None],
        start_task: Callable[..., object],
        sleep: Callable[[float], None],
    ) -> None:
        """Publish to browsers from now on, and start the relay and the watchdog tasks."""
        self.publish = publish
        self._sleep = sleep
        self.relay = EventRelay(self.addresses["admin"], publish, self.counters, sleep)
        start_task(self.relay.run)
        start_task(self._watch, sleep)

    def close(self) -> None:
        """Stop the relay and every process (safe to call twice)."""
        self.stopped = True
        if self.relay is not None:
            self.relay.stop()
        self.supervisor.stop_all()
        for api in [self.balancer, self.traffic, *self._pollers.values()]:
            if api is not None:
                api.close()

    def _watch(self, sleep: Callable[[float], None]) -> None:
        """Notice processes that exited on their own and tell the browsers."""
        while not self.stopped:
            sleep(WATCH_S)
            if self.stopped:
                return
            changed = False
            # No turn taken: a command stuck on a slow process must not hide a dead one.
            children = dict(self.supervisor.children)
            for record in list(self.backends.values()):
                child = children.get(record.name)
                if record.process == RUNNING and child is not None and not child.alive():
                    record.process, changed = EXITED, True
            balancer = children.get("balancer")
            if balancer is not None and not balancer.alive() and not self.problem:
                self.problem, changed = "the balancer process exited unexpectedly", True
            traffic = children.get("traffic")
            if self.traffic is not None and traffic is not None and not traffic.alive():
                # The lab goes on without traffic; the page greys out its controls.
                self.traffic, changed = None, True
                self.traffic_error = "the traffic generator exited unexpectedly"
            if changed and self.turns.changed_outside():
                self._publish_state()

    # -- commands ------------------------------------------------------------------------

    def handle(self, data: Any) -> dict:
        """Carry out one command from a browser; return its acknowledgement."""
        try:
            command = parse_command(data)
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        answer = {"ok": True}
        with self.turns.take(NEEDS[command.action]) as turn:
            try:
                getattr(self, f"_{command.action}")(**command.fields)
                turn.changed = True
            except (CommandError, ApiError, StartError) as exc:
                answer = {"ok": False, "error": str(exc)}
            except Exception:  # a bug: say so, and keep the lab (and this browser) going
                log.exception("%s failed", command.action)
                answer = {"ok": False, "error": f"{command.action} failed (the lab's log says why)"}
        if turn.announce:  # the last command out tells everyone, once nothing is waiting
            self._publish_state()
        return answer

    def run(self, action: str, **fields: Any) -> dict:
        """`handle` for Python callers: run("set_weight", name="b1", weight=3)."""
        return self.handle({"action": action, **fields})

    def _set_algorithm(self, algorithm: str) -> None:
        self._put_config({"algorithm": algorithm})

    def _set_hash_key(self, hash_key: str) -> None:
        self._put_config({"hash_key": hash_key})

    def _set_mode(self, mode: str) -> None:
        self._put_config({"mode": mode})
        self._reconnect_traffic()

    def _reconnect_traffic(self) -> None:
        """Close the traffic's idle keep-alive connections, so its next requests open new ones.

        An open connection keeps the mode it was accepted in; without this, a learner
        who switches Layer 4 -> 7 would see nothing change until a connection closed.
        """
        state = self._traffic_state()
        if state is not None and state["keep_alive"]:
            self._set_traffic(keep_alive=False)
            self._set_traffic(keep_alive=True)

    def _put_config(self, change: dict) -> None:
        self._balancer().call("PUT", "/config", change)

    def _add_backend(self) -> None:
        if len(self.backends) >= MAX_BACKENDS:
            raise CommandError(f"the lab runs at most {MAX_BACKENDS} backends")
        taken = {record.number for record in self.backends.values()}
        name = f"b{min(n for n in range(1, MAX_BACKENDS + 2) if n not in taken)}"
        record = self._start_backend(name)
        try:
            self._balancer().call(
                "POST", "/backends", {"name": name, "address": record.address, "weight": 1}
            )
        except ApiError:
            self.supervisor.stop(name)
            del self.backends[name]
            raise

    def _remove_backend(self, name: str) -> None:
        self._backend(name)
        self._balancer().call("DELETE", f"/backends/{name}")
        self.supervisor.stop(name)
        del self.backends[name]

    def _kill_backend(self, name: str) -> None:
        record = self._backend(name)
        if record.process != RUNNING:
            raise CommandError(f"{name} is not running ({record.process}); restart it first")
        self.supervisor.kill(name)
        record.process = KILLED

    def _restart_backend(self, name: str) -> None:
        record = self._backend(name)
        old = record.address
        if record.process == RUNNING:
            self.supervisor.stop(name)
        try:
            self._start_backend(name, port=int(old.rpartition(":")[2]))
        except StartError:
            record.process = EXITED
            raise
        if record.address != old:  # the old port was taken: tell the balancer where it went
            self._balancer().call("PUT", f"/backends/{name}", {"address": record.address})

    def _set_weight(self, name: str, weight: int) -> None:
        self._backend(name)
        self._balancer().call("PUT", f"/backends/{name}", {"weight": weight})

    def _set_latency(self, name: str, latency_ms: float, jitter_ms: float | None = None) -> None:
        knobs = {"latency_ms": latency_ms}
        if jitter_ms is not None:
            knobs["jitter_ms"] = jitter_ms
        self._turn_knobs(name, knobs)

    def _set_error_rate(self, name: str, error_rate: float) -> None:
        self._turn_knobs(name, {"error_rate": error_rate})

    def _set_healthy(self, name: str, healthy: bool) -> None:
        self._turn_knobs(name, {"healthy": healthy})

    def _drain_backend(self, name: str, draining: bool) -> None:
        self._backend(name)
        self._balancer().call("PUT", f"/backends/{name}", {"draining": draining})

    def _configure(self, settings: dict) -> None:
        lab_owned = sorted(set(settings) & {"backends", "mode"})
        if lab_owned:
            use = "add_backend and remove_backend" if lab_owned[0] == "backends" else "set_mode"
            raise CommandError(f"{lab_owned[0]} belongs to the lab: use {use}")
        self._put_config(settings)

    def _set_max_concurrency(self, name: str, max_concurrency: int) -> None:
        self._turn_knobs(name, {"max_concurrency": max_concurrency})

    def _turn_knobs(self, name: str, knobs: dict[str, Any]) -> None:
        record = self._backend(name)
        if record.process != RUNNING:
            raise CommandError(f"{name} is not running ({record.process}); restart it first")
        JsonApi(record.address, name).call("PUT", "/_lab/knobs", knobs)
        for knob, value in knobs.items():  # kept, so a restarted backend comes back the same
            (record.knobs if knob in KNOB_FLAGS else record.other_knobs)[knob] = value

    def _set_traffic(self, **changes: Any) -> None:
        self._traffic().call("PUT", "/config", changes)

    def _send(self, count: int) -> None:
        self._traffic().call("POST", "/send", {"count": count})

    def _pause(self) -> None:
        self._traffic().call("PUT", "/config", {"paused": True})

    def _resume(self) -> None:
        self._traffic().call("PUT", "/config", {"paused": False})

    def _reset(self) -> None:
        self._balancer().call("POST", "/reset")
        for record in self.backends.values():
            if record.process == RUNNING:
                JsonApi(record.address, record.name).call("POST", "/_lab/reset")
        if self.traffic is not None:
            self.traffic.call("POST", "/reset")
        if self.relay is not None:
            self.relay.reset_history()

    # -- lessons -------------------------------------------------------------------------

    def _open_lesson(self, slug: str) -> None:
        """Make the lab exactly what the lesson needs: backends, knobs, balancer, traffic."""
        lesson = self.lessons.get(slug)
        if lesson is None:
            known = ", ".join(item.slug for item in self.lessons.lessons()) or "none"
            raise CommandError(f"no lesson {slug!r} (lessons: {known})")
        self._quiet_traffic()
        setup = lesson.setup
        started = [name for name in setup.names if name not in self.backends]
        try:
            for wanted in setup.backends:
                self._lesson_backend(wanted.name, wanted.knobs)
            self._lesson_balancer(setup)
        except BaseException:
            for name in started:
                self.supervisor.stop(name)
                self.backends.pop(name, None)
            raise
        for name in [n for n in self.backends if n not in setup.names]:
            self.supervisor.stop(name)
            del self.backends[name]
        if self.traffic is not None:
            self._set_traffic(**{k: v for k, v in setup.traffic.items() if k != "paused"})
            self._reconnect_traffic()
        self._reset()
        if self.traffic is not None and not setup.traffic["paused"]:
            self._resume()
        self.lesson = lesson

    def _reset_lesson(self, slug: str) -> None:
        self._open_lesson(slug)

    def _lesson_balancer(self, setup: LabSetup) -> None:
        """Give the balancer the lesson's config, every backend and the algorithm afresh."""
        addresses = {name: self.backends[name].address for name in setup.names}
        document = setup.balancer_document(addresses)
        # As in a new balancer: no response times, rotation or tie-break memory carried
        # over from before, so a lesson's first decisions are the same every time.
        other = next(a for a in ("random", "round-robin") if a != document["algorithm"])
        self._put_config({**balancer_defaults(), "backends": [], "algorithm": other})
        self._put_config(document)

    def _lesson_backend(self, name: str, knobs: dict[str, Any]) -> None:
        """Have backend `name` running with exactly these knobs."""
        record = self.backends.get(name)
        if record is None:
            record = BackendProcess(name, "")
            self.backends[name] = record
            record.knobs.update({k: v for k, v in knobs.items() if k in KNOB_FLAGS})
            record.other_knobs = {
                k: v for k, v in knobs.items() if k not in KNOB_FLAGS and v != DEFAULT_KNOBS[k]
            }
            self._start_backend(name)
            return
        if record.process != RUNNING:
            self._restart_backend(name)
        current = {**DEFAULT_KNOBS, **record.knobs, **record.other_knobs}
        changed = {k: v for k, v in knobs.items() if current.get(k) != v}
        if changed:
            JsonApi(record.address, name).call("PUT", "/_lab/knobs", changed)
            for key, value in changed.items():
                (record.knobs if key in KNOB_FLAGS else record.other_knobs)[key] = value

    def _quiet_traffic(self) -> None:
        """Pause the traffic and give requests in flight a moment to finish."""
        if self.traffic is None:
            return
        self._pause()
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            state = self._traffic_state()
            if state is None or state["counters"]["in_flight"] == 0:
                return
            self._sleep(0.02)

    def _backend(self, name: str) -> BackendProcess:
        record = self.backends.get(name)
        if record is None:
            names = ", ".join(self.backends) or "none"
            raise CommandError(f"no backend named {name!r} (backends: {names})")
        return record

    def _balancer(self) -> JsonApi:
        if self.balancer is None:
            raise CommandError("the balancer is not running")
        return self.balancer

    def _traffic(self) -> JsonApi:
        if self.traffic is None:
            raise CommandError(self.traffic_error or "the traffic generator is not running")
        return self.traffic

    # -- describing ----------------------------------------------------------------------

    def _poller(self, key: str, address: str, who: str) -> JsonApi:
        # The relay polls from its own task: its own connections, never a command's.
        api = self._pollers.get(key)
        if api is None or api.address != address:
            api = self._pollers[key] = JsonApi(address, who, timeout=2.0)
        return api

    def counters(self) -> dict:
        """Exact counters now: the balancer's per backend, and the traffic generator's."""
        balancer = self._read(self._poller("balancer", self.addresses["admin"], "the balancer"))
        return snapshot.counters(balancer, self._traffic_state(poll=True))

    def _read(self, api: JsonApi) -> dict:
        """The balancer's /state, numbered in the order readings come back.

        A command's `state` and the relay's batches read the balancer apart, and a
        state can reach the page after a batch that read later; the number lets the
        page keep the newer counters (see `read` in lab.web.app).
        """
        state = api.get("/state")
        state["read"] = next(self._reads)
        return state

    def _traffic_state(self, poll: bool = False) -> dict | None:
        traffic = self.traffic
        if traffic is None:
            return None
        api = self._poller("traffic", traffic.address, "traffic") if poll else traffic
        try:
            return api.get("/state")
        except ApiError:
            return None

    def snapshot(self) -> dict:
        """The full `state` every browser gets on connect and after every change."""
        balancer = self._read(self._balancer())
        state = snapshot.snapshot(
            balancer,
            self._traffic_state(),
            sorted(self.backends.values(), key=lambda r: (r.number, r.name)),
            traffic_error=self.traffic_error,
            history=self.relay.history() if self.relay else [],
            problem=self.problem,
            max_backends=MAX_BACKENDS,
        )
        lesson = self.lesson
        state["lesson"] = {"slug": lesson.slug, "title": lesson.title} if lesson else None
        state["config_snippets"] = snippets(from_state(balancer))
        return state

    def describe(self) -> dict | None:
        """`snapshot`, or None (logged) when the balancer cannot say."""
        try:
            return self.snapshot()
        except (ApiError, CommandError) as exc:
            log.warning("could not describe the lab: %s", exc)
            return None

    def _publish_state(self) -> None:
        state = self.describe()
        if state is not None:
            self.publish("state", state)
