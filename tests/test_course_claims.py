"""Claims the course once got wrong stay corrected (issue 17, section 1).

Each wrong claim is a pattern over the lessons' text and the generated nginx
and HAProxy snippets, matched one sentence at a time so that a sentence which
names the old claim in order to correct it (`unless`) is not flagged. Every
pattern is first tried on the wrong sentence it was written for, so a pattern
that no longer catches anything fails here instead of guarding nothing. Then
the corrected facts must be stated in the lesson they belong to, and in the
snippets. The sources are in the commit messages and the session report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.lessons.catalog import Catalog
from lab.lessons.snippets import snippets

COURSE = Catalog(drafts=True)
LESSONS = {lesson.slug: lesson for lesson in COURSE.lessons()}


def plain(text: str) -> str:
    """Lower case, one space between words, without markdown's emphasis and code marks."""
    return re.sub(r"\s+", " ", re.sub(r"[`*]", "", text)).lower()


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", plain(text))


@dataclass(frozen=True)
class Wrong:
    item: str  # the item
    pattern: str
    example: str  # the wrong sentence as the course once said it (or a close variant)
    unless: str = ""  # a sentence saying this as well corrects the claim rather than makes it

    def found_in(self, text: str) -> list[str]:
        return [
            sentence
            for sentence in sentences(text)
            if re.search(self.pattern, sentence)
            and not (self.unless and re.search(self.unless, sentence))
        ]


WRONG = [
    # 1. Sticky cookies and least_time are in open-source nginx now (1.29.6, 1.31.0).
    Wrong(
        "1 sticky",
        r"(open[- ]source|free) nginx (has|offers|supports|gives you) no sticky",
        "Open-source nginx has no sticky cookie (NGINX Plus has sticky cookie).",
    ),
    Wrong(
        "1 sticky",
        r"sticky( cookies?| sessions?)?\W{0,3}(is |are )?(nginx plus|commercial)[- ]only",
        "# sticky cookie: NGINX Plus only",
    ),
    Wrong(
        "1 sticky",
        r"nginx has no (active health checks, )?sticky",
        "open-source nginx has no active health checks, sticky cookies or slow start",
    ),
    Wrong(
        "1 least_time",
        r"least_time\W{0,3}(is )?(nginx plus|commercial)[- ]only",
        "# least_time: NGINX Plus only",
    ),
    Wrong(
        "1 least_time",
        r"least_time.{0,40}open[- ]source nginx (does not|doesn't|has no)",
        "NGINX Plus (the commercial version) has least_time; open-source nginx does not.",
        unless=r"before|until|older",
    ),
    Wrong(
        "1 least_time",
        r"open[- ]source nginx (has no|lacks|does not have) (a )?(least_time|response[- ]time)",
        "Open-source nginx has no response-time algorithm.",
        unless=r"before|until|older",
    ),
    # 2. ln n / ln ln n is the n-balls-into-n-bins figure, not the balancer's case.
    Wrong(
        "2 balls into bins",
        r"ln n ?/ ?ln ln n",
        "With one random choice, the fullest of n bins ends up about ln n / ln ln n balls "
        "above the average.",
        unless=r"as many balls as bins|n balls into n bins|as many requests as backends",
    ),
    Wrong(
        "2 balls into bins",
        r"two choices.{0,60}ln ln n ?/ ?ln 2",
        "With two choices, about ln ln n / ln 2.",
        unless=r"however many|whatever the number|any number of",
    ),
    # 3. An unmeasured backend does not score 0 and take everything until its first answer.
    Wrong(
        "3 cold backend",
        r"(it|backend) scores 0\b|score 0 \(no response time",
        "A backend that has never answered has no estimate. It scores 0, so it is tried first.",
    ),
    Wrong(
        "3 cold backend",
        r"all three score 0",
        "All three score 0 (no response time yet), and ties take turns in list order.",
    ),
    # 4. Round robin is ALB's default, not Layer 4 cloud balancers'.
    Wrong(
        "4 cloud default",
        r"(most|all|many) cloud (load )?balancers",
        "Round robin is the default almost everywhere: in nginx, in HAProxy and in most "
        "cloud load balancers.",
    ),
    # 5. Layer 4 is TCP and UDP, may read the SNI, may end TLS, and may be a full proxy.
    Wrong(
        "5 layer 4",
        r"layer 4 is the transport layer: tcp connections\b(?! and udp)",
        "Layer 4 is the transport layer: TCP connections.",
    ),
    Wrong(
        "5 layer 4",
        r"\bit never reads them\b|never (reads|looks at) (the )?bytes",
        "A Layer 4 balancer moves bytes in both directions. It never reads them.",
    ),
    Wrong(
        "5 layer 4",
        r"encrypted traffic passes( through)? untouched",
        "little work per byte; encrypted traffic passes through untouched",
    ),
    Wrong(
        "5 layer 4",
        r"anything over tcp\W(?! ?or udp)",
        "anything over TCP: databases, mail, MQTT, HTTP",
    ),
    # 6. X-Forwarded-For is configured; with direct server return replies skip the balancer.
    Wrong(
        "6 forwarding",
        r"adds an x-forwarded-for header so",
        "It sends it over a connection of its own, and adds an X-Forwarded-For header so the "
        "backend can still learn who the real client was.",
    ),
    Wrong(
        "6 forwarding",
        r"backend never talks to the client directly",
        "The backend never talks to the client directly.",
        unless=r"in this lab|most balancers|unless|except",
    ),
    # 7. What HAProxy's indirect and nocache really do.
    Wrong(
        "7 indirect nocache",
        r"indirect\W{0,3}(takes|removes) the cookie out before",
        "indirect takes the cookie out before the server sees it",
        unless=r"not sent it again|not set again|no cookie is",
    ),
    Wrong(
        "7 indirect nocache",
        r"nocache\W{0,3}keeps shared caches from storing it",
        "nocache keeps shared caches from storing it",
    ),
    # 8. ALB has no cookie condition.
    Wrong(
        "8 alb cookies",
        r"(route|routes|match|matches) on (paths, )?headers,? and cookies",
        "Cloud balancers such as AWS's Application Load Balancer route on paths, headers "
        "and cookies too.",
    ),
    Wrong(
        "8 alb cookies",
        r"(application load balancer|alb)\b.{0,80}\bcookie condition",
        "The Application Load Balancer has a cookie condition.",
        unless=r"\bno cookie condition|has no|only as an http-header",
    ),
    # 9. nginx location is longest prefix, not first match.
    Wrong(
        "9 nginx location",
        r"location.{0,80}first match|first match.{0,80}\blocation\b",
        "nginx location blocks, like HAProxy's use_backend, are tried in order: first match wins.",
        unless=r"longest|do not|does not|not the first|regular",
    ),
    # 10. Smaller points.
    Wrong("10 count", r"\bseven algorithms\b", "You have met seven algorithms."),
]


@pytest.mark.parametrize("wrong", WRONG, ids=[f"{w.item}: {w.pattern[:30]}" for w in WRONG])
def test_each_pattern_catches_the_wrong_sentence_it_was_written_for(wrong):
    assert wrong.found_in(wrong.example), wrong.example


def generated() -> dict[str, str]:
    """The snippets for every lesson's settings and for each setting on its own."""
    backends = [
        {"name": "b1", "address": "127.0.0.1:9001"},
        {"name": "b2", "address": "127.0.0.1:9002"},
    ]
    configs = {
        slug: lesson.setup.balancer_document(lesson.setup.placeholder_addresses())
        for slug, lesson in LESSONS.items()
    }
    for mode in ("http", "tcp"):
        for algorithm in ALGORITHM_NAMES:
            configs[f"{mode} {algorithm}"] = {"mode": mode, "algorithm": algorithm}
        for sticky in ("cookie", "source"):
            configs[f"{mode} sticky {sticky}"] = {"mode": mode, "sticky": {"mode": sticky}}
        configs[f"{mode} checks"] = {"mode": mode, "health": {"enabled": True}, "slow_start_s": 5}
    shown = {}
    for name, config in configs.items():
        config = {"algorithm": "round-robin", "backends": backends, **config}
        for peer, text in snippets(config).items():
            shown[f"{name} ({peer})"] = text
    return shown


SNIPPETS = generated()


@pytest.mark.parametrize("slug", sorted(LESSONS))
def test_no_corrected_claim_comes_back_in_a_lesson(slug):
    text = LESSONS[slug].path.read_text(encoding="utf-8")
    found = [(w.item, hit) for w in WRONG for hit in w.found_in(text)]
    assert found == []


def test_no_corrected_claim_comes_back_in_a_snippet():
    found = [
        (name, w.item, hit)
        for name, text in SNIPPETS.items()
        for w in WRONG
        for hit in w.found_in(text.replace("#", ". ").replace("\n", ".\n"))
    ]
    assert found == []
    # NGINX Plus only is said of what still is: active health checks and slow start
    for name, text in SNIPPETS.items():
        for line in text.splitlines():
            if "NGINX Plus" in line:
                assert "health_check" in line or "slow_start" in line, (name, line)


FACTS = {  # lesson -> what it must say (compared after plain())
    "how-a-load-balancer-works": [
        "option forwardfor",
        "proxy_set_header x-forwarded-for",
        "direct server return",
        "maglev",
    ],
    "layer-4-and-layer-7": [
        "tcp connections and udp",
        "sni",
        "req.ssl_sni",
        "ssl_preread",
        "tls listener",
        "proxies",
        "lvs",
        "knowing where one request ends",
    ],
    "round-robin": [
        "application load balancer",
        "least outstanding requests",
        "weighted random",
        "network load balancer",
        "azure load balancer",
        "5-tuple",
    ],
    "least-connections": ["not very well suited for protocols using short sessions such as http"],
    "least-response-time": [
        "1.31.0",
        "least_time",
        "finagle",
        "pending",
        "tower",
        "default round-trip time",
        "1 s",
        "two at random",
        "power of two choices",
    ],
    "power-of-two-choices": [
        "√(m ln n / n)",
        "ln ln n / ln 2",
        "however many balls",
        "berenbrink",
        "imbalance grows with the traffic",
    ],
    "sticky-sessions": [
        "sticky cookie serverid",
        "1.29.6",
        "not sent it again",
        "uncacheable",
        "shared cache",
    ],
    "routing-rules": [
        "longest",
        "location ~",
        "host-header",
        "http-header",
        "http-request-method",
        "path-pattern",
        "query-string",
        "source-ip",
        "no cookie condition",
    ],
    "choosing-an-algorithm": ["eight algorithms"],
}


@pytest.mark.parametrize("slug", sorted(FACTS))
def test_the_corrected_facts_are_stated_where_they_belong(slug):
    text = plain(LESSONS[slug].path.read_text(encoding="utf-8"))
    assert [fact for fact in FACTS[slug] if fact not in text] == []


def test_the_snippets_state_the_corrected_facts():
    cookie = SNIPPETS["http sticky cookie (nginx)"]
    assert "sticky cookie SERVERID;  # nginx 1.29.6+" in cookie
    least_time = SNIPPETS["http least-response-time (nginx)"]
    assert "least_time last_byte;  # nginx 1.31.0+" in least_time
    assert "# needs nginx 1.31.0 or later" in least_time
    checks = SNIPPETS["http checks (nginx)"]
    assert "health_check): NGINX Plus only" in checks and "slow_start: NGINX Plus only" in checks
    assert "option forwardfor" in SNIPPETS["http sticky cookie (haproxy)"]
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in SNIPPETS["http round-robin (nginx)"]
    assert "longest prefix" in SNIPPETS["routing-rules (nginx)"]
