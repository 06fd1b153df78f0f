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

Starting and watching the processes is in lab.web.lab_processes, describing
the lab to browsers in lab.web.lab_state; LabController brings them together.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lab.certificates import LabCertificates
from lab.supervisor import StartError, Supervisor
from lab.web import compare
from lab.web.api import ApiError, JsonApi
from lab.web.client_addresses import by_proxy
from lab.web.commands import COMMANDS, CommandError, parse_command
from lab.web.lab_processes import LabProcesses
from lab.web.lab_state import LabState
from lab.web.records import BackendProcess, LabSettings
from lab.web.relay import EventRelay
from lab.web.room import BROADCAST_S, Room
from lab.web.turns import Turns

BACKEND_TIMEOUT_S = 2.0  # a toy backend answers its /_lab/ API in milliseconds

if TYPE_CHECKING:
    from lab.lessons.catalog import Catalog, Lesson

log = logging.getLogger(__name__)


def _quiet(*_: object) -> None:
    """Publish nowhere (until a web app attaches)."""


class LabController(LabProcesses, LabState):
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

    # -- attaching and stopping -----------------------------------------------------------

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
