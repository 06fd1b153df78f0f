"""The lesson routes of the web lab: the course list, one lesson as JSON, and the deep link."""

from __future__ import annotations

import textwrap

import pytest

from lab.lessons.catalog import Catalog
from lab.web.app import create_app

HOSTILE = textwrap.dedent(
    """\
    ---
    title: Hostile
    order: 2
    summary: "<script>alert(1)</script>"
    ---
    <script>window.pwned = 1</script> <img src=x onerror="window.pwned = 2">
    [x](javascript:window.pwned=3)

    ```predict
    question: "<img src=x onerror=alert(1)>"
    choices: [b1, b2]
    answer: b2
    ```
    """
)
FIRST = "---\ntitle: First\norder: 1\nsummary: The first one.\n---\nHello.\n"


@pytest.fixture
def client(tmp_path):
    (tmp_path / "01-first.md").write_text(FIRST, encoding="utf-8")
    (tmp_path / "02-hostile.md").write_text(HOSTILE, encoding="utf-8")
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "LESSONS": Catalog(tmp_path)})
    return app.test_client()


def test_the_course_list_is_in_order(client):
    answer = client.get("/api/lessons")
    assert answer.status_code == 200
    assert answer.get_json()["lessons"] == [
        {"slug": "first", "order": 1, "title": "First", "summary": "The first one."},
        {"slug": "hostile", "order": 2, "title": "Hostile", "summary": "<script>alert(1)</script>"},
    ]


def test_one_lesson_comes_with_safe_html_directives_and_neighbours(client):
    lesson = client.get("/api/lessons/hostile").get_json()
    assert "<script" not in lesson["html"] and "<img" not in lesson["html"]
    assert 'href="javascript' not in lesson["html"]
    assert lesson["directives"] == [
        {
            "kind": "predict",
            "question": "<img src=x onerror=alert(1)>",  # text: the page sets textContent
            "choices": ["b1", "b2"],
            "run": [{"action": "send", "count": 1}],
            "explain": "",
        }
    ]  # the author's answer stays on the server: the page checks the real decision
    assert lesson["previous"]["slug"] == "first" and lesson["next"] is None
    assert lesson["settings"]["traffic"]["paused"] is True
    assert [b["name"] for b in lesson["settings"]["backends"]] == ["b1", "b2", "b3"]


def test_the_deep_link_serves_the_page_with_the_lesson_open(client):
    page = client.get("/lessons/first")
    assert page.status_code == 200
    assert b'data-lesson="first"' in page.data
    assert b"js/main.js" in page.data  # the lesson panel is one of the page's modules
    assert b"<title>First" in page.data  # the tab names the lesson
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy  # no inline script could run, whatever got in
    assert client.get("/").headers["Content-Security-Policy"] == policy


def test_an_unknown_lesson_is_not_found(client):
    assert client.get("/lessons/nope").status_code == 404
    answer = client.get("/api/lessons/nope")
    assert answer.status_code == 404 and "nope" in answer.get_json()["error"]
    assert client.get("/lessons/..%2Fsecrets").status_code == 404


def test_a_lessons_old_slug_redirects_to_it(tmp_path):
    renamed = FIRST.replace("summary:", "formerly: [opening]\nsummary:")
    (tmp_path / "01-first.md").write_text(renamed, encoding="utf-8")
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "LESSONS": Catalog(tmp_path)})
    client = app.test_client()
    page = client.get("/lessons/opening?embed=1")
    assert page.status_code == 301 and page.headers["Location"] == "/lessons/first?embed=1"
    assert b'data-lesson="first"' in client.get(page.headers["Location"]).data
    answer = client.get("/api/lessons/opening")
    assert answer.status_code == 301 and answer.headers["Location"] == "/api/lessons/first"
    assert client.get("/api/lessons/first").get_json()["title"] == "First"
    assert client.get("/lessons/closing").status_code == 404
