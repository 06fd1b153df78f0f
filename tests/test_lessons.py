"""Lessons without a lab: every lesson file checks out, and the lesson languages hold up.

The course's own files are read here exactly as the lab reads them; the front
matter settings are fed good and bad input, hostile input included. The
directives have their own file (test_lessons_directives.py), as do the claims
and the HTML renderer.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab.balancer.config import BalancerConfig
from lab.lessons.catalog import Catalog, parse_lesson
from lab.lessons.errors import LessonError
from lab.lessons.settings import balancer_defaults
from lab.web.commands import COMMANDS, CommandError, parse_command

COURSE = Catalog()
LESSONS = COURSE.lessons()


def lesson_text(settings: str = "", body: str = "Some text.\n") -> str:
    front = "title: T\norder: 1\nsummary: S\n" + settings
    return f"---\n{front}---\n{body}"


# -- the course ---------------------------------------------------------------------------


def test_every_lesson_file_checks_out():
    files = sorted(COURSE.folder.glob("*.md"))
    everything = Catalog(drafts=True)
    assert len(files) == len(everything.lessons()) and len(LESSONS) >= 10
    assert COURSE.errors == {} and everything.errors == {}


def test_drafts_are_checked_but_kept_out_of_the_course(tmp_path):
    assert not [lesson.slug for lesson in Catalog(drafts=True).lessons() if lesson.draft]
    (tmp_path / "01-done.md").write_text(lesson_text(), encoding="utf-8")
    (tmp_path / "02-draft.md").write_text(
        lesson_text("draft: true\n").replace("order: 1", "order: 2"), encoding="utf-8"
    )
    assert [lesson.slug for lesson in Catalog(tmp_path).lessons()] == ["done"]
    assert [lesson.slug for lesson in Catalog(tmp_path, drafts=True).lessons()] == [
        "done",
        "draft",
    ]
    (tmp_path / "03-bad-draft.md").write_text(
        lesson_text("draft: true\nsettings: {backends: 40}\n"), encoding="utf-8"
    )
    catalog = Catalog(tmp_path)
    catalog.lessons()
    assert "1 to 12 backends" in catalog.errors["03-bad-draft.md"]  # checked all the same


# The course's fixed order (issue 17): each slug's place, whichever lessons have landed.
COURSE_ORDER = {
    "why-load-balance": 1,
    "how-a-load-balancer-works": 2,
    "layer-4-and-layer-7": 3,
    "round-robin": 4,
    "weighted-round-robin": 5,
    "least-connections": 6,
    "power-of-two-choices": 7,
    "least-response-time": 8,
    "hashing": 9,
    "health-checks": 10,
    "retries": 11,
    "sticky-sessions": 12,
    "routing-rules": 13,
    "https": 14,
    "udp-flows": 15,
    "overload-and-tail-latency": 16,
    "changing-the-fleet-safely": 17,
    "long-lived-connections": 18,
    "many-balancers": 19,
    "beyond-one-data-centre": 20,
    "choosing-an-algorithm": 21,
}
LANDED = set(COURSE_ORDER)


def test_the_course_covers_the_topics_in_order():
    placed = {lesson.slug: lesson.order for lesson in LESSONS if lesson.slug in COURSE_ORDER}
    assert set(placed) >= LANDED
    assert placed == {slug: COURSE_ORDER[slug] for slug in placed}
    for lesson in LESSONS:  # the file name's number is the lesson's place
        assert (
            lesson.path is not None and lesson.path.name == f"{lesson.order:02d}-{lesson.slug}.md"
        )
    slugs = [lesson.slug for lesson in LESSONS]
    assert slugs[0] == "why-load-balance" and slugs[-1] == "choosing-an-algorithm"
    assert slugs.index("power-of-two-choices") == slugs.index("least-connections") + 1
    orders = [lesson.order for lesson in LESSONS]
    assert orders == sorted(set(orders)), "each lesson has its own place in the course"


def test_a_renamed_lesson_keeps_its_old_slugs_working(tmp_path):
    (tmp_path / "01-first.md").write_text(lesson_text(), encoding="utf-8")
    renamed = lesson_text("formerly: [old-name, older-name]\n").replace("order: 1", "order: 2")
    (tmp_path / "02-new-name.md").write_text(renamed, encoding="utf-8")
    catalog = Catalog(tmp_path)
    assert catalog.get("new-name").formerly == ("old-name", "older-name")
    assert catalog.renamed("old-name") == catalog.renamed("older-name") == "new-name"
    assert catalog.get("old-name") is None  # an old slug is a link, not a second lesson
    assert catalog.renamed("first") is None and catalog.renamed("nope") is None


def test_an_old_slug_may_not_take_a_current_lessons_link(tmp_path):
    (tmp_path / "01-first.md").write_text(lesson_text(), encoding="utf-8")
    clash = lesson_text("formerly: [first]\n").replace("order: 1", "order: 2")
    (tmp_path / "02-second.md").write_text(clash, encoding="utf-8")
    catalog = Catalog(tmp_path)
    assert [lesson.slug for lesson in catalog.lessons()] == ["first", "second"]
    assert catalog.renamed("first") is None
    assert "formerly 'first' is the slug of 01-first.md" in catalog.errors["02-second.md"]


READ_WPM = 200  # words a minute, a careful reader of technical prose
STEP_MINUTES = 0.5  # to press a button or answer a prediction and watch what it does


def minutes(path: Path) -> float:
    """About how long a learner takes over a lesson: its prose, and each thing it asks them
    to do. The lab's own waits are short (the longest experiment takes seconds)."""
    body = path.read_text(encoding="utf-8").split("---", 2)[2]
    prose = re.sub(r"```.*?```", "", body, flags=re.S)
    steps = re.findall(r"^```(?:do|predict|compare)$", body, flags=re.M)
    return len(prose.split()) / READ_WPM + STEP_MINUTES * len(steps)


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.slug for lesson in LESSONS])
def test_each_lesson_reads_in_about_ten_minutes(lesson):
    assert lesson.path is not None
    assert 1 <= minutes(lesson.path) <= 12


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.slug for lesson in LESSONS])
def test_each_lesson_acts_checks_and_suggests(lesson):
    kinds = [d.kind for d in lesson.directives]
    assert "do" in kinds or "predict" in kinds
    assert "expect" in kinds
    assert lesson.html.count("<h3>Try this</h3>") == 1


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.slug for lesson in LESSONS])
def test_every_step_of_every_lesson_is_a_real_command(lesson):
    for directive in lesson.directives:
        for step in getattr(directive, "steps", ()):
            assert step["action"] in COMMANDS
            command = parse_command(step)
            assert {"action": command.action, **command.fields} == step


def test_the_layer_lesson_has_a_comparison_table():
    lesson = COURSE.get("layer-4-and-layer-7")
    assert "<table>" in lesson.html
    for example in ("HAProxy", "nginx", "AWS Network Load Balancer", "Application Load Balancer"):
        assert example in lesson.html


# -- front matter and settings --------------------------------------------------------------


def test_a_lesson_reads_its_settings_with_each_parts_own_schema():
    lesson = parse_lesson(
        lesson_text(
            textwrap.dedent(
                """\
                settings:
                  backends:
                    - {name: b1, weight: 5, latency_ms: 300}
                    - {name: b2, max_concurrency: 2}
                  balancer: {algorithm: least-connections, mode: tcp}
                  traffic: {rate: 0, clients: 2, connections: 1}
                """
            )
        ),
        "a-lesson",
    )
    setup = lesson.setup
    assert setup.names == ["b1", "b2"]
    assert setup.backends[0].balancer == {"weight": 5}
    assert setup.backends[0].knobs["latency_ms"] == 300
    assert setup.backends[1].knobs["max_concurrency"] == 2
    assert setup.traffic == {
        "rate": 0.0, "clients": 2, "keep_alive": True, "paused": True,
        "protocol": "http", "udp_session": 5,  # the clients speak the balancer's layer
        "connections": 1,  # one long-lived connection per client, as HTTP/2 and gRPC
        "spread": "client",  # with two balancers, each client keeps to one
        "tls": False, "sni_mix": {}, "resumption": True,  # plain HTTP unless the lesson says
        "heavy_share": 0.0, "heavy_ms": 500.0,
    }  # fmt: skip
    document = setup.balancer_document({"b1": "127.0.0.1:1", "b2": "127.0.0.1:2"})
    assert document["algorithm"] == "least-connections" and document["mode"] == "tcp"
    assert document["hash_key"] == "client-ip"  # what the lesson left out is the default
    assert document["backends"] == [
        {"name": "b1", "address": "127.0.0.1:1", "weight": 5},
        {"name": "b2", "address": "127.0.0.1:2"},
    ]


def test_the_lab_checks_health_actively_and_a_lesson_may_change_any_part_of_it():
    fresh = BalancerConfig().as_json()
    defaults = balancer_defaults()
    assert defaults["health"] == {
        **fresh["health"],
        **{"enabled": True, "interval_ms": 1000, "timeout_ms": 500, "rise": 2, "fall": 2},
    }
    assert {k: v for k, v in defaults.items() if k != "health"} == {
        k: fresh[k] for k in defaults if k != "health"
    }
    assert not {"backends", "listen", "admin", "seed"} & set(defaults)

    def document(balancer: str) -> dict:
        setup = parse_lesson(lesson_text(f"settings: {{balancer: {balancer}}}\n"), "x").setup
        return setup.balancer_document(setup.placeholder_addresses())

    faster = document("{health: {interval_ms: 200}, sticky: {mode: cookie}}")
    assert faster["health"] == {**defaults["health"], "interval_ms": 200}  # the rest stays
    assert faster["sticky"] == {**defaults["sticky"], "mode": "cookie"}
    assert document("{health: {enabled: false}}")["health"]["enabled"] is False
    assert document("{algorithm: random}")["health"] == defaults["health"]


def test_a_lesson_without_settings_gets_three_plain_backends():
    setup = parse_lesson(lesson_text(), "plain").setup
    assert setup.names == ["b1", "b2", "b3"]
    assert all(b.balancer == {} for b in setup.backends)


BAD_SETTINGS = [
    ("settings: {backends: 13}", "1 to 12 backends"),
    ("settings: {backends: [{name: web1}]}", "named b1 to b12"),
    ("settings: {backends: [{name: b1}, {name: b1}]}", "b1 is listed twice"),
    ("settings: {backends: [{name: b1, address: '1.2.3.4:5'}]}", "the lab sets address"),
    ("settings: {backends: [{name: b1, latency_ms: -1}]}", "latency_ms must be between"),
    ("settings: {backends: [{name: b1, weight: 0}]}", "weight must be 1-256"),
    ("settings: {backends: [{name: b1, colour: red}]}", "colour"),
    ("settings: {balancer: {algorithm: fastest}}", "unknown algorithm 'fastest'"),
    ("settings: {balancer: {mode: sctp}}", "mode must be"),
    ("settings: {balancer: {hash_key: moon}}", "bad hash_key"),
    ("settings: {balancer: {weights: {b1: 2}}}", "set weights in settings.backends"),
    ("settings: {balancer: {listen: '127.0.0.1:1'}}", "cannot change while running"),
    ("settings: {traffic: {rate: -1}}", "rate must be between"),
    ("settings: {traffic: {clients: 0}}", "clients must be"),
    ("settings: {traffic: {speed: 2}}", "unknown setting 'speed'"),
    ("settings: {lab: 1}", "unknown setting 'lab'"),
    ("settings: {balancers: 3}", "1 balancer or 2 on the same backends, got 3"),
    ("settings: {balancers: true}", "1 balancer or 2"),
]


@pytest.mark.parametrize("settings, words", BAD_SETTINGS, ids=[w for _, w in BAD_SETTINGS])
def test_bad_settings_are_refused_naming_the_field(settings, words):
    with pytest.raises(LessonError) as caught:
        parse_lesson(lesson_text(settings + "\n"), "bad")
    assert words in str(caught.value)
    assert "settings" in str(caught.value)


BAD_FRONT = [
    ("no front matter", "Just text.\n", "starts with '---'"),
    ("unclosed", "---\ntitle: T\n", "no closing '---'"),
    ("bad yaml", "---\ntitle: [\n---\n", "not valid YAML"),
    ("a list", "---\n- 1\n---\n", "front matter is a mapping"),
    ("unknown key", "---\ntitle: T\norder: 1\nsummary: S\nauthor: me\n---\n", "author"),
    ("no title", "---\norder: 1\nsummary: S\n---\n", "title must be one line"),
    ("formerly text", "---\ntitle: T\norder: 1\nsummary: S\nformerly: old\n---\n", "a list"),
    ("formerly bad", "---\ntitle: T\norder: 1\nsummary: S\nformerly: [Old One]\n---\n", "lower"),
    ("formerly self", "---\ntitle: T\norder: 1\nsummary: S\nformerly: [bad]\n---\n", "own slug"),
    ("bad order", "---\ntitle: T\norder: first\nsummary: S\n---\n", "order must be"),
]


@pytest.mark.parametrize("_, text, words", BAD_FRONT, ids=[name for name, _, _ in BAD_FRONT])
def test_bad_front_matter_is_refused(_, text, words):
    with pytest.raises(LessonError, match=words):
        parse_lesson(text, "bad")


# -- the catalog and the command line --------------------------------------------------------


def test_the_catalog_rereads_a_changed_file_and_leaves_out_a_broken_one(tmp_path):
    (tmp_path / "01-first.md").write_text(lesson_text(), encoding="utf-8")
    (tmp_path / "02-broken.md").write_text("no front matter", encoding="utf-8")
    (tmp_path / "03-first.md").write_text(lesson_text(), encoding="utf-8")
    catalog = Catalog(tmp_path)
    assert [lesson.slug for lesson in catalog.lessons()] == ["first"]
    assert "02-broken.md" in catalog.errors
    assert "same slug as 01-first.md" in catalog.errors["03-first.md"]
    (tmp_path / "03-first.md").unlink()
    fixed = lesson_text().replace("T\n", "Fixed\n", 1).replace("order: 1", "order: 2")
    (tmp_path / "02-broken.md").write_text(fixed, encoding="utf-8")
    assert [lesson.title for lesson in catalog.lessons()] == ["T", "Fixed"]
    assert catalog.errors == {}
    assert catalog.neighbours("first")[1].slug == "broken"


def lb_lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=30
    )


def test_lb_lab_lessons_lists_the_course():
    result = lb_lab("lessons")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for lesson in LESSONS:
        assert any(
            line.split()[:2] == [str(lesson.order), lesson.slug] and lesson.title in line
            for line in lines
        )
        assert any(lesson.summary in line for line in lines)


def test_lb_lab_lessons_names_a_broken_file(tmp_path: Path):
    (tmp_path / "01-ok.md").write_text(lesson_text(), encoding="utf-8")
    (tmp_path / "02-bad.md").write_text(lesson_text("settings: {backends: 40}\n"), "utf-8")
    result = lb_lab("lessons", "--folder", str(tmp_path))
    assert result.returncode == 1
    assert "ok" in result.stdout
    assert "02-bad.md" in result.stderr and "1 to 12 backends" in result.stderr


def test_the_commands_lessons_add_are_checked_like_every_other():
    assert parse_command({"action": "open_lesson", "slug": " hashing "}).fields == {
        "slug": "hashing"
    }
    assert parse_command(
        {"action": "set_max_concurrency", "name": "b1", "max_concurrency": 2}
    ).fields == {"name": "b1", "max_concurrency": 2}
    for bad, words in (
        ({"action": "open_lesson"}, "open_lesson needs slug"),
        ({"action": "reset_lesson", "slug": 4}, "slug must be text"),
        ({"action": "set_max_concurrency", "name": "b1", "max_concurrency": -1}, "0 to 1000"),
        ({"action": "set_max_concurrency", "name": "b1", "max_concurrency": 1.5}, "whole number"),
    ):
        with pytest.raises(CommandError, match=words):
            parse_command(bad)
