"""The lab controller: starts the lab's processes and steers them, only through their HTTP APIs.

It owns a `lab.supervisor.Supervisor` with toy backends b1..bN, one balancer
(admin API on loopback) and one traffic generator aimed at the balancer. It
runs inside the lab service (lab.service), or in a test's own process. The
page's `command`s arrive here (`handle`), are checked whole (lab.web.commands)
before anything changes and run by their handler from the command table; after
every change all browsers get a fresh `state` (the shapes are documented in
lab.web.app), and after a command that failed part-way too, so the page shows
what it did change. Commands take turns per process they need, so a slow
balancer holds up only the commands that need it (lab.web.turns).
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from lab.balancer.config import BalancerConfig
from lab.certificates import LabCertificates, runtime_certificates
from lab.lessons.settings import balancer_defaults
from lab.lessons.snippets import from_state, snippets
from lab.supervisor import StartError, Supervisor
from lab.web import actions, compare, snapshot
from lab.web.api import ApiError, JsonApi
from lab.web.client_addresses import by_proxy
from lab.web.commands import COMMANDS, CommandError, parse_command
from lab.web.https import https_flags
from lab.web.ports import port_or_any
from lab.web.records import EXITED, RUNNING, BackendProcess, LabSettings
from lab.web.relay import EventRelay
from lab.web.room import BROADCAST_S, Room
from lab.web.turns import Turns

WATCH_S = 0.5  # how often the controller checks that its processes still run
BACKEND_TIMEOUT_S = 2.0  # a toy backend answers its /_lab/ API in milliseconds

if TYPE_CHECKING:
    from lab.lessons.catalog import Catalog, Lesson

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
        self.proxy_clients = by_proxy(self.settings.client_addresses)
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
        self.sleep: Callable[[float], None] = time.sleep
        self._progress = threading.local()  # did the command on this thread change anything?
        self.checks: Any = None  # live lesson checks (lab.web.lesson_checks), once asked for
        self.room = Room()  # the classroom: lab state, so every page on every front agrees
        self._checks_lock = threading.Lock()
        self.right: Any = None  # a comparison's right side while one is open (lab.web.compare)
        self.compare_seed: int | None = None
        self.start_task: Callable[..., object] | None = None  # set by `attach`
        # The lab's CA and leaf (lab.certificates), made at start-up in a private folder.
        self.certificates: LabCertificates | None = None
        # The balancer reaches the backends on their TLS listeners (passthrough, or
        # re-encryption): lab.web.https sets it, `balancer_address` reads it.
        self.tls_backends = False
        self.tls_mode = "off"  # the balancer's tls.mode, as set_tls left it (lab.web.https)

    @property
    def lessons(self) -> Catalog:
        """The lessons this lab can open (the lab's own folder unless given one)."""
        if self._lessons is None:
            from lab.lessons.catalog import Catalog  # markdown and YAML: not before it is needed

            self._lessons = Catalog()
        return self._lessons

    # -- starting and stopping -----------------------------------------------------------

    def start(self, run_all: Callable[[list[Callable[[], object]]], object] | None = None) -> None:
        """Start backends, balancer and traffic; raise StartError if the lab cannot run.

        `run_all` runs a list of jobs and waits for them all (the lab service passes
        one that starts the backends side by side, in threads); by default, in turn.
        """
        settings = self.settings
        names = [f"b{number}" for number in range(1, settings.backends + 1)]
        for name in names:  # in name order, however the starts finish
            self.backends[name] = BackendProcess(name, "")
        if self.certificates is None:
            self.certificates = runtime_certificates()
        try:
            (run_all or _one_by_one)([partial(self.start_backend, name) for name in names])
            self._start_balancer()
            self._start_traffic()
        except BaseException:
            self.close()
            raise

    def start_backend(self, name: str, port: int | None = None) -> BackendProcess:
        """Start backend `name` with the knobs the lab keeps for it (the lab's port if none)."""
        record = self.backends.get(name) or BackendProcess(name, "")
        if port is None:
            first = self.settings.first_backend_port
            port = first + record.number - 1 if first and record.number else 0
        args = ["backend", "--name", name, "--host", self.settings.host, *record.flags()]
        files = self.certificates
        if files is not None:  # a TLS listener too, for passthrough and re-encryption
            args += ["--tls-port", "0", "--tls-cert", str(files.certificate)]
            args += ["--tls-key", str(files.key)]
        try:
            child = self._start_child(name, args, port)
        except StartError:
            record.process = EXITED
            raise
        record.address, record.process = child.addresses["listen"], RUNNING
        record.tls_address = child.addresses.get("tls", "")
        self.backends[name] = record
        if record.other_knobs:
            self.backend_api(record).call("PUT", "/_lab/knobs", record.other_knobs)
        return record

    def stop_backend(self, name: str, forget: bool = True) -> None:
        """Stop backend `name`'s process; `forget` it too, unless it is to be restarted."""
        self.changing()
        self.supervisor.stop(name)
        if forget:
            self.backends.pop(name, None)

    def kill_backend(self, name: str) -> None:
        """SIGKILL backend `name`'s process."""
        self.changing()
        self.supervisor.kill(name)

    def _start_balancer(self) -> None:
        settings = self.settings
        args = ["balancer", "--mode", settings.mode, "--algorithm", settings.algorithm]
        args += ["--admin", f"{settings.host}:0"]
        if settings.seed is not None:
            args += ["--seed", str(settings.seed)]
        if self.proxy_clients:
            args.append("--accept-proxy")
        for record in self.backends.values():
            args += ["--backend", f"{record.name}={record.address}"]
        child = self._start_child("balancer", args, settings.balancer_port, flag="--listen")
        self.addresses = {"listen": child.addresses["listen"], "admin": child.addresses["admin"]}
        self.balancer = self._api(self.addresses["admin"], "the balancer")
        # The lab's own defaults where they differ from a bare balancer's (active health
        # checks, so a killed backend shows as down even with no traffic to notice it).
        fresh = BalancerConfig().as_json()
        lab = {k: v for k, v in balancer_defaults().items() if fresh.get(k) != v}
        lab = {k: v for k, v in lab.items() if k not in ("mode", "algorithm", "hash_key")}
        if lab:
            self.put_config(lab)

    def _start_traffic(self, seed: int | None = None, now: dict | None = None) -> None:
        """Start the traffic generator: at the lab's settings, or at `now` (its last state).

        During a comparison it sends every arrival to both balancers (lab.web.compare).
        """
        settings = self.settings
        seed = settings.seed if now is None else seed
        args = ["traffic", "--target", f"http://{self.addresses['listen']}/"]
        if self.right is not None:
            args += ["--target", f"http://{self.right.addresses['listen']}/"]
            if self.right.same_backends:  # two balancers, one set of clients shared out
                args.append("--split")
        rate, clients = (now["rate"], now["clients"]) if now else (settings.rate, settings.clients)
        args += ["--rate", str(rate), "--clients", str(clients)]
        args += ["--control", f"{settings.host}:0"]
        if settings.mode == "udp":
            args += ["--protocol", "udp"]
        if self.proxy_clients:
            args += ["--proxy-protocol", "v2"]
        if now["paused"] if now else settings.paused:
            args.append("--paused")
        if now is not None and not now["keep_alive"]:
            args += ["--keep-alive", "off"]
        if seed is not None:
            args += ["--seed", str(seed)]
        if self.certificates is not None:  # so a command can switch it to HTTPS later
            args += ["--ca-file", str(self.certificates.ca)]
            args += https_flags(now or {})
        try:
            child = self.supervisor.start("traffic", args)
        except StartError as exc:
            # The page still works without it (commands that need it say so).
            self.traffic_error = f"the traffic generator did not start: {exc}"
            log.warning(self.traffic_error)
            return
        self.addresses["traffic"] = child.addresses["control"]
        self.traffic = self._api(self.addresses["traffic"], "the traffic generator")

    def restart_traffic(self, seed: int | None) -> None:
        """Start the traffic generator afresh, at its settings now, with `seed` (a comparison's)."""
        now = self.traffic_state()
        traffic, self.traffic = self.traffic, None  # so the watchdog does not mourn it
        if traffic is not None:
            traffic.close()
        self.changing()
        self.supervisor.stop("traffic")
        self.addresses.pop("traffic", None)
        self._start_traffic(seed, now or self.settings_traffic())
        if self.traffic is None:
            raise CommandError(self.traffic_error)

    def settings_traffic(self) -> dict:
        settings = self.settings
        return {"rate": settings.rate, "clients": settings.clients,
                "paused": settings.paused, "keep_alive": True}  # fmt: skip

    def _start_child(self, name: str, args: list[str], port: int, flag: str = "--port"):
        """Start a child on `port` if it is free now, else (or if that fails) on any free port."""
        host = self.settings.host
        wanted = port_or_any(host, port) if port else 0
        value = (lambda p: f"{host}:{p}") if flag == "--listen" else str
        try:
            child = self.supervisor.start(name, [*args, flag, value(wanted)])
        except StartError:
            if wanted == 0:
                raise
            # Someone took the port between our probe and the child's bind.
            child = self.supervisor.start(name, [*args, flag, value(0)])
        self.changing()
        return child

    def attach(
        self,
        publish: Callable[[str, Any], None],
        start_task: Callable[..., object],
        sleep: Callable[[float], None],
    ) -> None:
        """Publish to browsers from now on, and start the relay and the watchdog tasks."""
        self.publish = publish
        self.sleep = sleep
        self.start_task = start_task
        self.relay = EventRelay(self.addresses["admin"], self._publish_batch, self.counters, sleep)
        self.relay.watch = self.room.saw  # a reveal waits for its request's decision
        start_task(self.relay.run)
        start_task(self._watch, sleep)
        start_task(self._broadcast_room, sleep)
        if self.right is not None:  # a comparison opened before (lb-lab serve --compare)
            self.right.attach_to(self)

    def _publish_batch(self, name: str, data: Any) -> None:
        """The relay's batches, marked as the left side's while a comparison is open."""
        if self.right is not None:
            data = {**data, "side": "left"}
        self.publish(name, data)

    def close(self) -> None:
        """Stop the relay and every process (safe to call twice)."""
        self.stopped = True
        right, self.right = self.right, None
        if right is not None:
            right.close()
        if self.checks is not None:
            self.checks.close()
            self.checks = None
        if self.relay is not None:
            self.relay.stop()
        self.supervisor.stop_all()
        for api in [self.balancer, self.traffic, *self._pollers.values()]:
            if api is not None:
                api.close()
        if self.certificates is not None:  # no process uses them now (exit would remove them)
            shutil.rmtree(self.certificates.folder, ignore_errors=True)

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

    def _broadcast_room(self, sleep: Callable[[float], None]) -> None:
        """Send the classroom to every page when it changed (votes arrive in bursts)."""
        while not self.stopped:
            sleep(BROADCAST_S)
            try:
                if self.room.take_dirty():
                    self.publish("classroom", self.room.public())
            except Exception:  # one failed send must not end the classroom for every page
                log.exception("could not send the classroom")

    def classroom(self, data: Any) -> dict:
        """A viewer's answer or a web front's viewer count (lab.web.room): no command rights."""
        return self.room.take(data)

    # -- commands ------------------------------------------------------------------------

    def handle(self, data: Any) -> dict:
        """Carry out one command from a browser; return its acknowledgement."""
        checks = self._live_checks()  # they count in windows that commands begin
        if checks is not None:
            checks.before_command(data)
        answer = self._carry_out(data)
        if checks is not None:
            checks.after_command(data, answer)
        return answer

    def check(self, data: Any) -> dict:
        """Work out one of a lesson's `expect`s now, as the CI runner would (lesson_checks)."""
        checks = self._live_checks()
        if checks is None:
            return {"ok": False, "error": "the lab is not running yet"}
        return checks.check(data)

    def _live_checks(self) -> Any:
        """The live lesson checks, begun with the first command (its window starts there)."""
        with self._checks_lock:  # two first commands at once must not make two
            if self.checks is None and "traffic" in self.addresses and not self.stopped:
                from lab.web.lesson_checks import LiveChecks  # the lesson runner, once needed

                try:
                    self.checks = LiveChecks(self)
                except OSError as exc:
                    log.warning("live lesson checks are off: %s", exc)
            return self.checks

    def _carry_out(self, data: Any) -> dict:
        try:
            command = parse_command(data)
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        action = COMMANDS[command.action]
        answer: dict[str, Any] = {"ok": True}
        with self.turns.take(action.needs) as turn:
            self._progress.changed = False
            try:
                action.run(self, **command.fields)
                if action.both_sides and self.right is not None:
                    if compare.follows(self.right, action):  # knobs alike on both sides
                        action.run(self.right, **command.fields)
                    else:  # the same backend processes: the right balancer hears of them
                        self.right.follow_backends()
                turn.changed = action.announces
            except (CommandError, ApiError, StartError) as exc:
                answer = {"ok": False, "error": str(exc)}
            except Exception:  # a bug: say so, and keep the lab (and this browser) going
                log.exception("%s failed", command.action)
                answer = {"ok": False, "error": f"{command.action} failed (the lab's log says why)"}
            # Failed part-way: the page is told what did change.
            turn.changed = turn.changed or self._progress.changed
        if turn.announce:  # the last command out tells everyone, once nothing is waiting
            self._publish_state()
        return answer

    def changing(self) -> None:
        """Note that the command running on this thread has begun to change the lab."""
        self._progress.changed = True

    def run(self, action: str, **fields: Any) -> dict:
        """`handle` for Python callers: run("set_weight", name="b1", weight=3)."""
        return self.handle({"action": action, **fields})

    def put_config(self, change: dict, fresh: bool = False) -> None:
        """PUT /config; `fresh` builds every backend and pool anew (no memory carried over)."""
        if self.proxy_clients and (fresh or "proxy_protocol" in change):
            # The clients name themselves in PROXY headers: whatever a lesson or a learner
            # sets, the balancer keeps reading them, or every request would be refused.
            accept = {**change.get("proxy_protocol", {}), "accept": True}
            change = {**change, "proxy_protocol": accept}
        self.balancer_api().call("PUT", "/config?fresh=1" if fresh else "/config", change)

    def backend(self, name: str) -> BackendProcess:
        record = self.backends.get(name)
        if record is None:
            names = ", ".join(self.backends) or "none"
            raise CommandError(f"no backend named {name!r} (backends: {names})")
        return record

    def balancer_api(self) -> JsonApi:
        if self.balancer is None:
            raise CommandError("the balancer is not running")
        return self.balancer

    def traffic_api(self) -> JsonApi:
        if self.traffic is None:
            raise CommandError(self.traffic_error or "the traffic generator is not running")
        return self.traffic

    def balancer_address(self, record: BackendProcess) -> str:
        """Where the balancer reaches this backend: its TLS listener when HTTPS needs it."""
        if self.tls_backends and record.tls_address:
            return record.tls_address
        return record.address

    def ca_pem(self) -> str:
        """The lab CA's certificate, for the page's download link and curl --cacert."""
        if self.certificates is None:
            raise CommandError("the lab has made no certificates yet")
        return self.certificates.ca.read_text()

    def backend_api(self, record: BackendProcess) -> JsonApi:
        """A backend's /_lab/ API (a change through it counts as the command's)."""
        return self._api(record.address, record.name, BACKEND_TIMEOUT_S)

    def _api(self, address: str, who: str, timeout: float = 5.0) -> JsonApi:
        return JsonApi(address, who, timeout, on_change=self.changing)

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
        return snapshot.counters(balancer, self.traffic_state(poll=True))

    def _read(self, api: JsonApi) -> dict:
        """The balancer's /state, numbered in the order readings come back.

        A command's `state` and the relay's batches read the balancer apart, and a
        state can reach the page after a batch that read later; the number lets the
        page keep the newer counters (see `read` in lab.web.app).
        """
        state = api.get("/state")
        state["read"] = next(self._reads)
        return state

    def traffic_state(self, poll: bool = False) -> dict | None:
        """The traffic generator's state: what it sends here (the left side's, if comparing)."""
        traffic = self.traffic
        if traffic is None:
            return None
        api = self._poller("traffic", traffic.address, "traffic") if poll else traffic
        try:
            state = api.get("/state")
        except ApiError:
            return None
        return compare.traffic_side(state, 0) if self.right is not None else state

    def snapshot(self) -> dict:
        """The full `state` every browser gets on connect and after every change."""
        balancer = self._read(self.balancer_api())
        state = snapshot.snapshot(
            balancer,
            self.traffic_state(),
            sorted(self.backends.values(), key=lambda r: (r.number, r.name)),
            traffic_error=self.traffic_error,
            history=self.relay.history() if self.relay else [],
            problem=self.problem,
            max_backends=actions.MAX_BACKENDS,
        )
        lesson = self.lesson
        state["lesson"] = {"slug": lesson.slug, "title": lesson.title} if lesson else None
        state["config_snippets"] = snippets(from_state(balancer))
        state["classroom"] = self.room.public()
        state["compare"] = compare.describe(self)
        return state

    def describe(self) -> dict | None:
        """`snapshot`, or None (logged) when the balancer cannot say."""
        try:
            return self.snapshot()
        except (ApiError, CommandError) as exc:
            log.warning("could not describe the lab: %s", exc)
            return None

    def publish_state(self) -> None:
        """Send every browser the lab's state now (a comparison's right side calls this)."""
        self._publish_state()

    def _publish_state(self) -> None:
        state = self.describe()
        if state is not None:
            self.publish("state", state)
