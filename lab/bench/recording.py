"""`lb-lab bench --recording`: how large a recording of a busy lab is, and how fast it plays.

It starts a real `lb-lab serve` on free ports, turns the traffic up to the rate
asked (2,000 req/s by default) through the lab service, records it for the
seconds asked (60 by default) as `lb-lab record` does, and reports the file's
size against its 5 MB bound. Then it exports the recording and opens the
export in headless Chromium from file:// with the network blocked, and reports
how long after navigation the player started playing (the page's own
performance mark), and how long a seek to the middle takes (the picture
rebuilt from the first state). Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.bench.browser import BrowserError, chromium, find_chromium
from lab.bench.served_lab import LabProcess, WebBenchError
from lab.recording.export import export
from lab.recording.format import MAX_BYTES, Recorder, RecordingError, made, read
from lab.recording.record import follow

START_TIMEOUT_S = 30.0
WARMUP_S = 3.0  # the generator reaches its rate before recording begins
PLAYING = "document.body.dataset.player === 'playing' || document.body.dataset.player === 'ended'"


@dataclass
class RecordingReport:
    rate_asked: float
    rate_seen: float  # requests per second the traffic generator sent while recording
    seconds: float
    requests: int  # routed by the balancer while recording (its exact counters)
    failed: int  # requests the traffic generator got no answer to while recording
    messages: int
    omitted: int
    bytes: int
    bound: int
    open_ms: float  # navigation start to the player's first play
    seek_ms: float  # a seek to the middle: the picture rebuilt from the first state
    counters_exact: bool  # after playing to the end, the page's counters are the last batch's


def measure(options: argparse.Namespace, say) -> RecordingReport:
    lab = LabProcess(options.backends)
    try:
        lab.wait_for(lab.printed_all, "its addresses", START_TIMEOUT_S)
        found = re.search(r"service: +(http://\S+/)", "".join(lab.output))
        if not found:
            raise WebBenchError("lb-lab serve did not print its service URL")
        from lab.web.link import ServiceLink, service_address

        service = service_address(found.group(1))
        link = ServiceLink(service)
        answer = link.handle({"action": "set_traffic", "rate": options.web_rate})
        if not answer.get("ok"):
            raise WebBenchError(f"the lab refused the rate: {answer.get('error')}")
        say(f"recording: {options.web_rate:g} req/s for {options.recording_seconds:g} s ...")
        time.sleep(WARMUP_S)
        header = made("lb-lab bench --recording", "lb-lab bench --recording",
                      link.processes().get("settings"), options.recording_seconds)  # fmt: skip
        recorder = Recorder(header)
        follow(service, recorder.add, options.recording_seconds, time.monotonic)
        data = recorder.finish()
    finally:
        lab.stop()
    recording = read(data)
    readings = sorted(
        (m["data"]["counters"] for m in recording.messages if "counters" in m["data"]),
        key=lambda c: c["read"],
    )
    sent = [c["traffic"]["sent"] for c in readings if c.get("traffic")]
    failed = [c["traffic"]["failed"] for c in readings if c.get("traffic")]
    seconds = recording.header["duration_s"]
    say(f"recorded {len(data) / 1e6:.2f} MB; opening the export in Chromium ...")
    open_ms, seek_ms, exact = play(data, find_chromium(options.chromium), recording)
    return RecordingReport(
        rate_asked=options.web_rate,
        rate_seen=round((sent[-1] - sent[0]) / seconds, 1) if sent and seconds else 0.0,
        seconds=seconds,
        requests=readings[-1]["total"] - readings[0]["total"],
        failed=failed[-1] - failed[0] if failed else 0,
        messages=len(recording.messages),
        omitted=recording.omitted,
        bytes=len(data),
        bound=MAX_BYTES,
        open_ms=open_ms,
        seek_ms=seek_ms,
        counters_exact=exact,
    )


def play(data: bytes, executable: str, recording) -> tuple[float, float, bool]:
    """(ms to the first play, ms for a seek to the middle, counters exact at the end)."""
    with tempfile.TemporaryDirectory(prefix="lb-lab-bench-recording-") as folder:
        export(data, Path(folder) / "player")
        url = (Path(folder) / "player" / "index.html").as_uri()
        with chromium(executable) as browser:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.route(
                "**/*",
                lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort(),
            )
            page = context.new_page()
            page.goto(url)
            page.wait_for_function(PLAYING, timeout=30000)
            open_ms = page.evaluate("performance.getEntriesByName('lb-lab-playing')[0].startTime")
            lab = "document.querySelector('[data-lab]').lab"
            seek_ms = page.evaluate(
                f"""(t) => {{
                  const start = performance.now();
                  {lab}.player.seek(t);
                  return performance.now() - start;
                }}""",
                recording.header["duration_s"] / 2,
            )
            page.evaluate(f"{lab}.player.seek({recording.header['duration_s']})")
            exact = page.evaluate(f"{lab}.store.counters") == recording.last_batch["counters"]
            context.close()
    return round(open_ms, 1), round(seek_ms, 1), exact


def format_report(report: RecordingReport) -> str:
    verdict = "under" if report.bytes < report.bound else "OVER"
    return "\n".join(
        [
            "Recording (lb-lab bench --recording)",
            f"  traffic      {report.rate_asked:g} req/s asked, {report.rate_seen:g} req/s sent",
            f"  recorded     {report.seconds:.1f} s, {report.requests} requests routed "
            f"({report.failed} unanswered), {report.messages} messages, "
            f"{report.omitted} events sampled out (counted)",
            f"  size         {report.bytes / 1e6:.2f} MB compressed: {verdict} the "
            f"{report.bound / 1e6:g} MB bound",
            f"  export       starts playing {report.open_ms:.0f} ms after navigation "
            f"(Chromium, file://, network blocked)",
            f"  seek         to the middle in {report.seek_ms:.0f} ms (from the first state)",
            f"  counters     exactly the last batch's at the end: {report.counters_exact}",
        ]
    )


def main(options: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = measure(options, say)
    except (BrowserError, WebBenchError, RecordingError, OSError) as exc:
        print(f"lb-lab bench --recording: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=2) if options.json else format_report(report))
    return 0
