"""What the benchmark found: tables of medians, the ratios the issue sets targets for, JSON."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from lab.bench.stats import LATENCY, THROUGHPUT, Summary


@dataclass(frozen=True, slots=True)
class Goal:
    """A figure the issue asks lb-lab to reach, and how to compute it from two targets."""

    name: str
    ours: str
    theirs: str
    phase: str
    kind: str  # "ratio" (ours / theirs req/s, higher is better) or "added" (p50 ms, lower)
    limit: float


GOALS = (
    Goal("L7 keep-alive throughput", "lb-http", "nginx", THROUGHPUT, "ratio", 0.8),
    Goal("L4 throughput", "lb-tcp", "haproxy-tcp", THROUGHPUT, "ratio", 0.8),
    Goal("added median latency", "lb-http", "direct", LATENCY, "added", 0.3),
)
# Shown for reading the others, with no target of their own.
CONTEXT = (
    Goal("L7 vs HAProxy", "lb-http", "haproxy-http", THROUGHPUT, "ratio", 0.0),
    Goal("nginx added latency", "nginx", "direct", LATENCY, "added", 0.0),
    Goal("HAProxy L7 added latency", "haproxy-http", "direct", LATENCY, "added", 0.0),
)


@dataclass(slots=True)
class Verdict:
    """One goal's figure: the median over rounds of the paired per-round figures."""

    goal: Goal
    value: float | None = None
    per_round: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None or not self.goal.limit:
            return None
        if self.goal.kind == "ratio":
            return self.value >= self.goal.limit
        return self.value < self.goal.limit

    def describe(self) -> str:
        g = self.goal
        if g.kind == "ratio":
            formula, unit, fmt = f"{g.ours} / {g.theirs} req/s", "", "{:.2f}"
        else:
            formula, unit, fmt = f"{g.ours} p50 - {g.theirs} p50", " ms", "{:+.3f}"
        if self.value is None:
            return f"{g.name}: {formula}: not measured ({self.note})"
        rounds = " ".join(fmt.format(v) for v in self.per_round)
        text = f"{g.name}: {formula} = {fmt.format(self.value)}{unit} (per round: {rounds})"
        if g.limit:
            sign = ">=" if g.kind == "ratio" else "<"
            text += f"  target {sign} {g.limit:g}{unit}  {'PASS' if self.passed else 'MISS'}"
        return text

    def to_json(self) -> dict:
        return {
            **asdict(self.goal),
            "value": None if self.value is None else round(self.value, 4),
            "per_round": [round(v, 4) for v in self.per_round],
            "passed": self.passed,
            "note": self.note,
        }


def judge(
    goal: Goal, summaries: dict[tuple[str, str], Summary], skipped: dict[str, str]
) -> Verdict:
    """Pair the two targets round by round (both saw the same noise) and take the median."""
    ours = summaries.get((goal.phase, goal.ours))
    theirs = summaries.get((goal.phase, goal.theirs))
    if ours is None or theirs is None:
        missing = goal.ours if ours is None else goal.theirs
        return Verdict(goal, note=skipped.get(missing, f"no {goal.phase} result for {missing}"))
    figure: Callable[[int], float]
    if goal.kind == "ratio":

        def figure(r: int) -> float:
            theirs_rps = theirs.per_round[r].rps
            return ours.per_round[r].rps / theirs_rps if theirs_rps else 0.0
    else:

        def figure(r: int) -> float:
            return ours.per_round[r].p50_ms - theirs.per_round[r].p50_ms

    rounds = sorted(set(ours.per_round) & set(theirs.per_round))
    if not rounds:
        return Verdict(goal, note="no round measured both")
    per_round = [figure(r) for r in rounds]
    return Verdict(goal, statistics.median(per_round), per_round)


@dataclass
class Report:
    """Everything a run of `lb-lab bench` prints."""

    settings: dict
    abouts: dict[str, str]  # target -> what it is (program, version, layer)
    summaries: dict[tuple[str, str], Summary]
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why it was not run
    notes: list[str] = field(default_factory=list)
    memory_kb: dict[str, int] = field(default_factory=dict)
    events: dict[str, dict] = field(default_factory=dict)  # lb target -> lines read, dropped

    def verdicts(self, goals: tuple[Goal, ...] = GOALS) -> list[Verdict]:
        return [judge(goal, self.summaries, self.skipped) for goal in goals]

    def to_json(self) -> dict:
        return {
            "settings": self.settings,
            "targets": self.abouts,
            "results": [s.to_json() for s in self.summaries.values()],
            "samples": [
                sample.to_json() for s in self.summaries.values() for sample in s.per_round.values()
            ],
            "skipped": self.skipped,
            "goals": [v.to_json() for v in self.verdicts()],
            "context": [v.to_json() for v in self.verdicts(CONTEXT)],
            "memory_kb": self.memory_kb,
            "events": self.events,
            "notes": self.notes,
        }


def format_text(report: Report) -> str:
    s = report.settings
    lines = [
        f"lb-lab bench: {s['rounds']} round(s), {s['duration']:g} s per run, {s['backends']} "
        f"backend(s); targets run in a rotated order each round, medians across rounds shown.",
        "",
        f"Throughput: closed loop, {s['connections']} keep-alive connections, "
        f"numbers by {s['throughput_tool']}",
        *_table(report, THROUGHPUT),
    ]
    if any(phase == LATENCY for phase, _ in report.summaries):
        lines += [
            "",
            f"Latency: open loop at a fixed {s['rate']:g} req/s over {s['rate_connections']} "
            f"connections, numbers by {s['latency_tool']}",
            *_table(report, LATENCY),
        ]
    lines += [
        "  cpu/req: CPU time of the target's own process per request (lb-lab, the nginx worker,",
        "  HAProxy; backend b1 for direct); busy: that process's CPU use, 100% = one full core.",
        "",
        "Targets:",
    ]
    lines += [f"  {name:<13} {about}" for name, about in report.abouts.items()]
    lines += [f"  {name:<13} skipped: {why}" for name, why in report.skipped.items()]
    lines += _extras(report)
    lines += ["", "Summary:"]
    lines += [f"  {v.describe()}" for v in report.verdicts()]
    context = [v for v in report.verdicts(CONTEXT) if v.value is not None]
    if context:
        lines += ["  for reference:", *(f"    {v.describe()}" for v in context)]
    return "\n".join(lines)


def _table(report: Report, phase: str) -> list[str]:
    direct = report.summaries.get((phase, "direct"))
    header = f"  {'target':<13} {'req/s':>9} {'(min-max)':>17} {'p50 ms':>8} {'p90 ms':>8} "
    header += f"{'p99 ms':>8} {'errors':>7} {'cpu/req':>9} {'busy':>5}"
    rows = [header + ("  added p50" if phase == LATENCY else "")]
    for (p, target), summary in report.summaries.items():
        if p != phase:
            continue
        spread = f"{summary.rps_min:,.0f}-{summary.rps_max:,.0f}"
        row = f"  {target:<13} {summary.rps:>9,.0f} {spread:>17} {summary.p50_ms:>8.3f} "
        row += f"{summary.p90_ms:>8.3f} {summary.p99_ms:>8.3f} {summary.errors:>7} "
        cost, busy = summary.cpu_us_per_request, summary.cpu_percent
        row += f"{'-' if cost is None else f'{cost:.0f} us':>9} "
        row += f"{'-' if busy is None else f'{busy:.0f}%':>5}"
        if phase == LATENCY and direct is not None and target != "direct":
            row += f"  {summary.p50_ms - direct.p50_ms:+.3f} ms"
        rows.append(row)
    return rows


def _extras(report: Report) -> list[str]:
    lines = []
    for target, seen in report.events.items():
        dropped = seen.get("dropped")
        rate = (
            f"{seen['per_request']:.2f} per request"
            if target == "lb-http"
            else "Layer 4 events are per connection"
        )
        lines.append(
            f"  /events on {target}: a subscriber read {seen['lines']:,} events during its runs "
            f"({rate}); the balancer reports "
            + ("no dropped counter" if dropped is None else f"{dropped:,} dropped")
        )
    if report.memory_kb:
        sizes = ", ".join(f"{name} {kb / 1024:.1f} MiB" for name, kb in report.memory_kb.items())
        lines.append(f"  memory (RSS after the runs): {sizes}")
    lines += [f"  note: {note}" for note in report.notes]
    return ["", "Observed:", *lines] if lines else []
