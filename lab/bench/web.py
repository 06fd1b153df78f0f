"""`lb-lab bench --web`: the whole lab under load, with its page open in headless Chromium.

It starts a real `lb-lab serve` on free ports (lab.bench.served_lab), opens the page, turns the
traffic up through the page's own `command` path, and measures what the issue
asks of the web lab: frames per second, decision-to-screen delay, the web
process's CPU, start-up time, and whether the page's counters end exactly at
the balancer's `/state` totals. Every process it starts is stopped at the end,
and the report says so (or names the pids left running).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lab.bench.admin import AdminError, get_json, split_address
from lab.bench.browser import (
    COMMAND,
    HEALTHY_BACKENDS,
    SHOWN_COUNTERS,
    START_DELAYS,
    START_FRAME_COUNTER,
    STOP_DELAYS,
    STOP_FRAME_COUNTER,
    VIEWPORT,
    BrowserError,
    chromium,
    find_chromium,
)
from lab.bench.procs import alive, cpu_by_role, descendants, machine_busy_s
from lab.bench.runner import stderr_line
from lab.bench.served_lab import STOP_TIMEOUT_S, LabProcess, WebBenchError
from lab.bench.stats import percentile
from lab.bench.web_report import WebReport, format_web

START_TIMEOUT_S = 20.0  # generous: the figure is measured, the timeout only stops a hung lab
WARMUP_S = 2.0  # the generator ramps up and the page fills with dots before measuring
SETTLE_TIMEOUT_S = 10.0
POLL_S = 0.1


# The right side's balancer admin address, from the page's state (a comparison's).
RIGHT_ADMIN = 'document.querySelector("[data-lab]").lab.store.state.compare.right.balancer.admin'


@dataclass(frozen=True)
class WebPlan:
    rate: float
    seconds: float
    backends: int
    chromium: str
    compare: tuple[str, str] | None = None  # a comparison: the rate is each side's


def wait_until(condition: Callable[[], object], timeout: float) -> object:
    """Poll `condition` until it is truthy (returned) or `timeout` passes (returns None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result or None
        time.sleep(POLL_S)


def balancer_totals(state: dict) -> dict:
    """The balancer's /state in the shape of the page's counters."""
    backends = {
        b["name"]: {"total": b["total"], "failures": b["failures"]} for b in state["backends"]
    }
    return {
        "backends": backends,
        "routed": sum(b["total"] for b in backends.values()),
        "failures": sum(b["failures"] for b in backends.values()),
    }


class WebBench:
    """One run: start the lab and the browser, measure, stop everything, report."""

    def __init__(self, plan: WebPlan, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.say = say
        self.report = WebReport(
            settings={
                "rate": plan.rate,
                "seconds": plan.seconds,
                "backends": plan.backends,
                "browser": plan.chromium,
                "cpus": os.cpu_count(),
                "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}",
                **({"compare": ",".join(plan.compare)} if plan.compare else {}),
            }
        )
        self.problems: list[str] = []  # console errors of the page
        self.launched = 0.0  # wall clock when `lb-lab serve` was launched

    def run(self) -> WebReport:
        started: set[int] = set()
        with chromium(self.plan.chromium) as browser:
            context = browser.new_context(viewport=VIEWPORT)
            try:
                page = context.new_page()
                page.on("console", lambda m: self._console(m.type, m.text))
                page.on("pageerror", lambda e: self._console("error", str(e)))
                with self._lab() as lab:
                    self._start_up(page, lab)
                    started = descendants(os.getpid())  # lab, its children, Chromium, driver
                    self._under_load(page, lab)
                    if self.plan.compare:
                        self._sides_apart(page, lab)
                    self._settle(page, lab)
                    if self.plan.compare:
                        self._sides_settled(page, lab)
            finally:
                context.close()
        still = [pid for pid in sorted(started) if alive(pid)]
        if still:  # give exiting processes a moment before calling them left over
            wait_until(lambda: not any(alive(pid) for pid in still), STOP_TIMEOUT_S)
        self.report.started = sorted(started)
        self.report.leftover = [pid for pid in still if alive(pid)]
        self.report.notes += [f"page console: {text}" for text in self.problems[:5]]
        return self.report

    def _console(self, kind: str, text: str) -> None:
        if kind == "error":
            self.problems.append(text)

    @contextlib.contextmanager
    def _lab(self) -> Iterator[LabProcess]:
        self.launched = time.time()
        lab = LabProcess(self.plan.backends, self.plan.compare)
        try:
            lab.wait_for(lab.printed_url, "its URL", START_TIMEOUT_S)
            yield lab
        finally:
            lab.stop()

    def _start_up(self, page, lab: LabProcess) -> None:
        """From launching `lb-lab` to the page showing every backend up and healthy.

        The page is opened as soon as the URL is printed, as a learner would click it.
        """
        page.goto(lab.url)
        shown = page.wait_for_function(
            HEALTHY_BACKENDS, arg=self.plan.backends, timeout=START_TIMEOUT_S * 1000
        ).json_value()
        self.report.figures["startup_s"] = round(shown - self.launched, 3)
        self.report.figures["startup_url_s"] = round(lab.url_at - self.launched, 3)
        self.say(
            f"start-up: URL printed after {lab.url_at - self.launched:.2f} s, "
            f"{self.plan.backends} healthy backends shown after {shown - self.launched:.2f} s"
        )
        lab.wait_for(lab.printed_all, "the addresses of its parts", START_TIMEOUT_S)

    def _command(self, page, **data) -> None:
        """Send a command the way the page's controls do, through its Socket.IO `command`."""
        answer = page.evaluate(COMMAND, data)
        if not answer.get("ok"):
            raise WebBenchError(f"the lab refused {data}: {answer.get('error')}")

    def _under_load(self, page, lab: LabProcess) -> None:
        plan, figures = self.plan, self.report.figures
        self._command(page, action="set_traffic", rate=plan.rate)
        warm_up = min(WARMUP_S, plan.seconds / 2)
        self.say(f"traffic set to {plan.rate:g} req/s; warming up for {warm_up:g} s")
        time.sleep(warm_up)
        cpu_before, machine_before = cpu_by_role(lab.pid), machine_busy_s()
        state_before = lab.balancer_state()
        page.evaluate(START_DELAYS)
        page.evaluate(START_FRAME_COUNTER)
        began = time.monotonic()
        self.say(f"measuring for {plan.seconds:g} s")
        time.sleep(plan.seconds)
        frames = page.evaluate(STOP_FRAME_COUNTER)
        delays = page.evaluate(STOP_DELAYS)
        window = time.monotonic() - began
        state_after = lab.balancer_state()
        cpu_after, machine_after = cpu_by_role(lab.pid), machine_busy_s()
        figures.update(self._cpu(cpu_before, cpu_after, machine_before, machine_after, window))
        before, after = balancer_totals(state_before), balancer_totals(state_after)
        figures.update(
            window_s=round(window, 3),
            window_requests=after["routed"] - before["routed"],
            window_failures=after["failures"] - before["failures"],
            achieved_rps=round((after["routed"] - before["routed"]) / window, 1),
            frames=frames["frames"],
            frame_window_s=round(frames["ms"] / 1000, 3),
            fps=round(frames["frames"] / (frames["ms"] / 1000), 1),
            worst_frame_ms=round(frames["worst_ms"], 1),
        )
        figures.update(self._delays(delays))

    @staticmethod
    def _cpu(before: dict, after: dict, machine_before, machine_after, window: float) -> dict:
        """Each role's share of one core over the window; and what the rest of the machine did."""
        figures = {}
        for role, used in after.items():
            figures[f"{role}_cpu_percent"] = round((used - before.get(role, 0.0)) / window * 100, 1)
        if "web" in after:
            figures["web_cpu_s"] = round(after["web"] - before.get("web", 0.0), 3)
        if machine_before is not None and machine_after is not None:
            # The figures depend on what else ran: report it (a process that exited within
            # the window is counted as someone else's).
            ours = sum(after.values()) - sum(before.get(role, 0.0) for role in after)
            busy = machine_after - machine_before
            figures["machine_busy_percent"] = round(busy / window * 100, 1)
            figures["others_cpu_percent"] = round(max(busy - ours, 0.0) / window * 100, 1)
        return figures

    @staticmethod
    def _delays(seconds: list[float]) -> dict:
        if not seconds:
            return {"delay_samples": 0, "delay_p95_ms": None}
        ordered = sorted(s * 1000 for s in seconds)
        return {
            "delay_samples": len(ordered),
            "delay_p50_ms": round(percentile(ordered, 50), 1),
            "delay_p95_ms": round(percentile(ordered, 95), 1),
            "delay_max_ms": round(ordered[-1], 1),
            "delay_min_ms": round(ordered[0], 1),
        }

    def _right_admin(self, page) -> str:
        return page.evaluate(f"() => {RIGHT_ADMIN}")

    def _sides_apart(self, page, lab: LabProcess, reads: int = 20) -> None:
        """How far apart the two sides' routed counts are while the traffic runs.

        Each reading takes the generator's in-flight counts, then both balancers' totals,
        then the in-flight counts again: a request routed on one side and not yet on the
        other is one the generator has sent and not seen answered, so the gap is at most
        what is in flight (the larger of the two readings, as the totals are read between).
        """
        right = split_address(self._right_admin(page))
        worst_gap, worst_in_flight, within = 0, 0, True
        for _ in range(reads):
            before = get_json(*split_address(lab.traffic), "/state")
            left_total = balancer_totals(lab.balancer_state())["routed"]
            right_total = balancer_totals(get_json(*right, "/state"))["routed"]
            after = get_json(*split_address(lab.traffic), "/state")
            in_flight = max(
                sum(side["counters"]["in_flight"] for side in reading["sides"])
                for reading in (before, after)
            )
            gap = abs(left_total - right_total)
            within = within and gap <= in_flight
            if gap >= worst_gap:
                worst_gap, worst_in_flight = gap, in_flight
            time.sleep(POLL_S)
        self.report.figures.update(
            compare_reads=reads,
            compare_worst_gap=worst_gap,
            compare_in_flight_then=worst_in_flight,
            compare_within_in_flight=within,
        )
        self.say(f"sides apart by at most {worst_gap} routed ({worst_in_flight} in flight then)")

    def _sides_settled(self, page, lab: LabProcess) -> None:
        """Once the traffic stopped and every answer is in, both sides routed exactly as many."""
        right = split_address(self._right_admin(page))

        def equal() -> dict | None:
            left_total = balancer_totals(lab.balancer_state())["routed"]
            right_total = balancer_totals(get_json(*right, "/state"))["routed"]
            traffic = get_json(*split_address(lab.traffic), "/state")
            sent = [side["counters"]["sent"] for side in traffic["sides"]]
            same = left_total == right_total == sent[0] == sent[-1]
            return {"left": left_total, "right": right_total, "sent": sent[0]} if same else None

        totals = wait_until(equal, SETTLE_TIMEOUT_S)
        self.report.figures["compare_final_equal"] = totals is not None
        if totals is not None:
            self.report.figures.update(compare_final_requests=totals["left"])

    def _settle(self, page, lab: LabProcess) -> None:
        """Stop the traffic, wait for the balancer to be still, then compare with the page."""
        self._command(page, action="pause")
        stopped = time.monotonic()
        last: list[dict] = []

        def still() -> dict | None:
            state = lab.balancer_state()
            traffic = get_json(*split_address(lab.traffic), "/state")
            quiet = traffic["counters"]["in_flight"] == 0 and all(
                b["active"] == 0 for b in state["backends"]
            )
            totals = balancer_totals(state)
            same = last and last[-1] == totals
            last.append(totals)
            return totals if quiet and same else None

        expected = wait_until(still, SETTLE_TIMEOUT_S)
        if expected is None:
            self.report.notes.append("the balancer was still busy after the traffic stopped")
            expected = last[-1]
        shown = wait_until(lambda: page.evaluate(SHOWN_COUNTERS) == expected, 5.0)
        page_view = page.evaluate(SHOWN_COUNTERS)
        self.report.counters = {"page": page_view, "balancer": expected}
        self.report.figures["counters_equal"] = page_view == expected
        if shown:
            self.report.figures["settle_s"] = round(time.monotonic() - stopped, 3)


# `lb-lab bench --web` with no rate or backend count of its own runs both of the issue's
# cases: the everyday one, and a dozen backends under heavy traffic.
STANDARD_RUNS = ((3, 2000.0), (12, 5000.0))
DEFAULT_RATE, DEFAULT_BACKENDS = STANDARD_RUNS[0][1], STANDARD_RUNS[0][0]


def plans(options: argparse.Namespace) -> list[WebPlan]:
    """The runs asked for: the standard pair, or the one run the options describe."""
    chromium_path = find_chromium(options.chromium)
    standard = options.web_rate == DEFAULT_RATE and options.backends == DEFAULT_BACKENDS
    compare = getattr(options, "web_compare", None)
    if compare:
        return [WebPlan(options.web_rate, options.web_seconds, options.backends, chromium_path,
                        tuple(compare))]  # fmt: skip
    runs = STANDARD_RUNS if standard else ((options.backends, options.web_rate),)
    return [WebPlan(rate, options.web_seconds, backends, chromium_path) for backends, rate in runs]


def main(options: argparse.Namespace) -> int:
    reports = []
    try:
        for plan in plans(options):
            reports.append(WebBench(plan, stderr_line).run())
    except (BrowserError, WebBenchError, AdminError) as exc:
        print(f"lb-lab bench --web: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "lb-lab bench --web: interrupted; every process it started is stopped", file=sys.stderr
        )
        return 130
    if options.json:
        shown = [report.to_json() for report in reports]
        print(json.dumps(shown[0] if len(shown) == 1 else {"runs": shown}, indent=2))
    else:
        print("\n\n".join(format_web(report) for report in reports))
    return 0
