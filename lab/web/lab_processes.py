"""The lab's processes: start the backends, the balancer and the traffic generator, and watch them.

A part of LabController (lab.web.controller), kept apart because starting
children is its own concept: which flags each process gets from the lab's
settings (HTTPS, PROXY headers, a comparison's second target), the port it
asks for and the fallback when that port is taken, and the watchdog that
notices a process that exited on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from lab.balancer.config import BalancerConfig
from lab.certificates import runtime_certificates
from lab.lessons.settings import balancer_defaults
from lab.supervisor import StartError
from lab.web.commands import CommandError
from lab.web.https import https_flags
from lab.web.ports import port_or_any
from lab.web.records import EXITED, RUNNING, BackendProcess

WATCH_S = 0.5  # how often the controller checks that its processes still run

log = logging.getLogger(__name__)


def _one_by_one(jobs: list[Callable[[], object]]) -> None:
    for job in jobs:
        job()


class LabProcesses:
    """Start, stop, restart and watch the lab's child processes (a LabController's part)."""

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
