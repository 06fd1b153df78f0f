"""A comparison, recorded and played back: both sides are in the file, and the player
draws both (the same components as the live comparison, fed by the recording)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import needs_chromium
from test_recording_live import STORE, exported, lb_lab, offline_page
from test_service import launched

from lab.recording.format import read

SECONDS = 3


@pytest.fixture(scope="module")
def recorded_comparison(tmp_path_factory) -> Iterator[Path]:
    """3 s of `lb-lab serve --compare round-robin,least-connections`, recorded."""
    process, output = launched(
        "serve", "--port", "0", "--balancer-port", "0", "--backend-port", "0", "--rate", "40",
        "--compare", "round-robin,least-connections", until="Press Ctrl-C",
    )  # fmt: skip
    try:
        service = re.search(r"service: +(http://\S+/)", output).group(1)
        path = tmp_path_factory.mktemp("compared") / "compare.lbrec"
        result = lb_lab("record", "--seconds", str(SECONDS), "--out", str(path), "--lab", service)
        assert result.returncode == 0, result.stderr
        yield path
    finally:
        process.terminate()
        assert process.wait(15) == 0


def last_of(messages: list[dict], side: str) -> dict:
    batches = [m["data"] for m in messages if m["name"] == "batch"]
    batches = [batch for batch in batches if batch.get("side") == side]
    assert batches, f"no {side} batch was recorded"
    return batches[-1]["counters"]


def test_a_recorded_comparison_holds_both_sides(recorded_comparison):
    recorded = read(recorded_comparison.read_bytes())
    assert recorded.header["sides"] == ["left", "right"]
    first = recorded.messages[0]
    assert first["name"] == "state" and first["data"]["compare"]["right"]["algorithm"] == (
        "least-connections"
    )
    left, right = last_of(recorded.messages, "left"), last_of(recorded.messages, "right")
    assert left["traffic"]["sent"] > 0 and right["total"] > 0


@needs_chromium
def test_the_player_draws_both_sides_of_a_recorded_comparison(
    chromium, recorded_comparison, tmp_path
):
    recorded = read(recorded_comparison.read_bytes())
    right = last_of(recorded.messages, "right")
    with offline_page(chromium, "recording-compare") as page:
        page.goto(exported(recorded_comparison, tmp_path / "player"))
        page.wait_for_function("document.body.dataset.player === 'ended'", timeout=SECONDS * 4000)
        assert page.evaluate(f"{STORE}.right.counters") == right  # the right side's last batch
        assert page.evaluate(f"{STORE}.counters") == last_of(recorded.messages, "left")
        page.wait_for_function(
            "document.querySelector('[data-part=compare-sentence]').textContent.includes('same')",
            timeout=5000,
        )
        sentence = page.inner_text("[data-part=compare-sentence]")
        assert "round-robin" in sentence and "least-connections" in sentence
