"""Run the lab service: start the lab, serve its API, stop everything on a signal or a broken lab.

The lab's blocking work (commands, the relay, the watchdog) runs in worker
threads; the API and the stream run on the asyncio loop of the main thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab.address import join_address, split_address
from lab.lifecycle import report_ready, run_daemon
from lab.recording.service import ServiceRecorder
from lab.service.api import ServiceConnection
from lab.service.options import compare_command, settings_from
from lab.service.stream import Stream
from lab.supervisor import StartError
from lab.web.access import is_loopback
from lab.web.controller import LabController

STOP_POLL_S = 0.2
PROBLEM_GRACE_S = 0.5  # a broken lab says so on its stream before the service exits


def side_by_side(jobs: list) -> None:
    """Run jobs in threads and wait for all; the first failure is raised."""
    with ThreadPoolExecutor(max(len(jobs), 1), thread_name_prefix="start") as pool:
        running = [pool.submit(job) for job in jobs]
    for job in running:
        job.result()


def in_thread(target: Any, *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


def run(options: argparse.Namespace) -> int:
    try:
        host, port = split_address(options.api)
    except ValueError as exc:
        options.parser.error(f"--api: {exc}")
    if not is_loopback(host):  # it has no login: whoever reaches it commands the lab
        options.parser.error(f"--api: the lab service listens on loopback only, got {host!r}")
    lab = LabController(settings_from(options))
    try:
        lab.start(side_by_side)
    except StartError as exc:
        print(f"error: could not start the lab: {exc}", file=sys.stderr, flush=True)
        return 1
    comparison = compare_command(options)
    if comparison is not None:
        answer = lab.handle(comparison)
        if not answer["ok"]:
            lab.close()
            print(f"error: could not open the comparison: {answer['error']}", file=sys.stderr)
            return 1
    broken: list[str] = []
    try:
        code = run_daemon(lambda stop: serve(lab, host, port, stop, broken))
    finally:
        lab.close()
    return 1 if broken else code


async def serve(
    lab: LabController, host: str, port: int, stop: asyncio.Event, broken: list[str]
) -> None:
    """Serve the API until `stop`, or until the lab breaks (a process it needs has gone)."""
    loop = asyncio.get_running_loop()
    stream = Stream(loop)
    where = {"address": ""}
    server = await loop.create_server(
        lambda: ServiceConnection(lab, stream, where["address"]), host, port
    )
    where["address"] = address = join_address(*server.sockets[0].getsockname()[:2])
    lab.attach(stream.publish, in_thread, time.sleep)
    lab.recorder = ServiceRecorder(lab, stream, loop)  # the `record` command (Record button)
    report_ready(f"lab service: http://{address}/", api=address)
    while not stop.is_set() and not lab.problem:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STOP_POLL_S)
    if lab.problem:
        broken.append(lab.problem)
        print(f"lb-lab: {lab.problem}; stopping", flush=True)
        await asyncio.sleep(PROBLEM_GRACE_S)
    server.close()
    lab.recorder.close()
