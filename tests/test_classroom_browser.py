"""A classroom in real headless Chromium: one presenter (a projector, 1920x1080) and two
viewers (phones, 390x844) on a real `lb-lab serve --classroom`, plus a second presenter tab.

Following, reading ahead and coming back, a class question (answers counted, revealed, each
viewer's answer marked), the viewer count on the presenter's page, and a second presenter
tab in step. Screenshots are kept under artifacts/screenshots/classroom-*.png.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import SCREENSHOTS, needs_chromium, watched_page
from page_helpers import LESSON_APPLIED

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect

ROOT = "[data-lab]"
LESSON = "weighted-round-robin"  # its first question asks which backend gets a request
PROJECTOR = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def classroom() -> Iterator[tuple[str, str]]:
    """A classroom lab for the module: (viewers' URL, presenter's URL with the token)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--classroom", "--port", "0", "--paused",
         "--balancer-port", "0", "--backend-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = ""
    assert process.stdout is not None
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    viewers = re.search(r"viewers:\s+(http://\S+)", output)
    presenter = re.search(r"presenter:\s+(http://\S+)", output)
    try:
        assert viewers and presenter, f"the lab did not start:\n{output}"
        yield viewers.group(1), presenter.group(1)
    finally:
        process.terminate()
        assert process.wait(10) == 0


@pytest.fixture(scope="module")
def room(chromium, classroom):
    """The presenter's page and two viewers' pages, open for the whole module."""
    viewer_url, presenter_url = classroom
    with contextlib.ExitStack() as stack:
        teacher = stack.enter_context(watched_page(chromium, "classroom-presenter"))
        teacher.set_viewport_size(PROJECTOR)
        teacher.goto(presenter_url)
        expect(teacher.locator("#connection")).to_have_text("connected")
        students = []
        for n in (1, 2):
            student = stack.enter_context(watched_page(chromium, f"classroom-viewer-{n}"))
            student.set_viewport_size(PHONE)
            student.goto(viewer_url)
            expect(student.locator("#connection")).to_have_text("connected")
            students.append(student)
        yield {"teacher": teacher, "students": students, "viewer_url": viewer_url,
               "token": presenter_url.rsplit("=", 1)[1]}  # fmt: skip


def open_lesson(page, slug: str) -> None:
    """The presenter opens a lesson from the course list, as a person would."""
    if page.locator("#lesson-panel").is_hidden():
        page.locator("#lessons-toggle").click()
    if page.locator("#lesson-index").is_hidden():
        page.locator("#lesson-index-toggle").click()
    page.locator(f'#lesson-index a[data-slug="{slug}"]').click()


def title_of(page, slug: str) -> str:
    return page.evaluate(f"fetch('/api/lessons/{slug}').then(r => r.json()).then(l => l.title)")


def test_the_presenter_is_the_presenter_and_viewers_only_watch(room):
    teacher, students = room["teacher"], room["students"]
    expect(teacher.locator("#viewers")).to_be_visible()
    expect(teacher.locator("#qr-toggle")).to_be_visible()
    expect(teacher.locator("#follow")).to_be_hidden()
    for student in students:
        expect(student.locator("#follow")).to_have_attribute("aria-pressed", "true")
        expect(student.locator("#viewers")).to_be_hidden()
        expect(student.locator("#add-backend")).to_be_hidden()  # refused by the server anyway
        assert room["token"] not in student.content()


def test_the_viewer_count_on_the_presenter_page(room, chromium):
    teacher = room["teacher"]
    expect(teacher.locator("#viewers")).to_have_text("2 viewers")
    with watched_page(chromium, "classroom-viewer-3") as third:
        third.goto(room["viewer_url"])
        expect(teacher.locator("#viewers")).to_have_text("3 viewers")
    expect(teacher.locator("#viewers")).to_have_text("2 viewers")


def test_viewers_follow_the_presenters_lesson_and_section(room):
    teacher, students = room["teacher"], room["students"]
    open_lesson(teacher, LESSON)
    title = title_of(teacher, LESSON)
    for student in students:
        expect(student.locator("#lesson-heading")).to_have_text(title)
        expect(student.locator("#lesson-panel")).to_be_visible()
    # The presenter scrolls to the lesson's third section; the viewers' lessons follow.
    teacher.evaluate(
        """() => {
          const lesson = document.querySelector('[data-part="lesson"]');
          const heading = lesson.querySelectorAll('.lesson-body h2, .lesson-body h3')[1];
          lesson.scrollTop += heading.getBoundingClientRect().top
            - lesson.getBoundingClientRect().top;
        }"""
    )
    for student in students:
        expect(student.locator(ROOT)).to_have_attribute("data-followed", re.compile('"section":2'))
        top = student.evaluate(
            """() => {
              const lesson = document.querySelector('[data-part="lesson"]');
              const heading = lesson.querySelectorAll('.lesson-body h2, .lesson-body h3')[1];
              return heading.getBoundingClientRect().top - lesson.getBoundingClientRect().top;
            }"""
        )
        assert abs(top) < 40, f"the presenter's section is not at the top of the lesson: {top}"


def test_a_viewer_reads_ahead_and_one_button_brings_them_back(room):
    teacher, (ahead, follower) = room["teacher"], room["students"]
    ahead.locator("#follow").click()
    expect(ahead.locator("#follow")).to_have_attribute("aria-pressed", "false")
    expect(ahead.locator("#follow")).to_have_text("Follow the presenter")
    teacher.locator("#lesson-next").click()
    following = teacher.evaluate(f"fetch('/api/lessons/{LESSON}').then(r => r.json())")["next"]
    expect(follower.locator("#lesson-heading")).to_have_text(following["title"])
    expect(ahead.locator("#lesson-heading")).to_have_text(title_of(ahead, LESSON))  # stayed
    ahead.locator("#follow").click()
    expect(ahead.locator("#follow")).to_have_attribute("aria-pressed", "true")
    expect(ahead.locator("#lesson-heading")).to_have_text(following["title"])
    teacher.locator("#lesson-prev").click()
    for student in room["students"]:
        expect(student.locator("#lesson-heading")).to_have_text(title_of(student, LESSON))


def test_a_class_question_is_counted_revealed_and_marked(room):
    teacher, (ann, bob) = room["teacher"], room["students"]
    teacher.locator("[data-class-action='Ask the class']").click()
    for student in (ann, bob):
        expect(student.locator(".predict-choices button").first).to_be_enabled()
    ann.locator(".predict-choices button[data-choice='b1']").click()
    expect(ann.locator(".predict-result")).to_contain_text("Your answer: b1")
    bob.locator(".predict-choices button[data-choice='b2']").click()
    expect(bob.locator(".predict-result")).to_contain_text("Your answer: b2")
    bob.locator(".predict-choices button[data-choice='b3']").click()  # a change of mind
    expect(bob.locator(".predict-result")).to_contain_text("Your answer: b3")
    bob.reload()  # a reload is the same viewer, with the same answer
    expect(bob.locator(".predict-result")).to_contain_text("Your answer: b3")
    bars = teacher.locator(".class-bar")
    expect(bars.locator("text=b1: 1")).to_have_count(1)
    expect(bars.locator("text=b2: 0")).to_have_count(1)  # bob's vote moved, not added
    expect(bars.locator("text=b3: 1")).to_have_count(1)
    teacher.locator("[data-class-action='Reveal']").click()
    actual = teacher.locator(".class-bar.actual")
    expect(actual).to_have_count(1)
    chosen = actual.get_attribute("data-option")
    teacher.screenshot(path=str(SCREENSHOTS / "classroom-presenter-revealed.png"))
    for student, said in ((ann, "b1"), (bob, "b3")):
        result = student.locator(".predict-result")
        expect(result).to_contain_text(f"the balancer chose {chosen}, because")
        expect(result).to_have_attribute("data-verdict", "right" if said == chosen else "wrong")
        expect(student.locator(".predict-choices button.actual")).to_have_attribute(
            "data-choice", chosen
        )
    bob.screenshot(path=str(SCREENSHOTS / "classroom-viewer-revealed.png"))
    teacher.locator("[data-class-action='Close question']").click()
    expect(ann.locator(".predict-result")).to_contain_text("The presenter will ask")


def test_step_mode_is_seen_on_every_page(room):
    teacher, students = room["teacher"], room["students"]
    teacher.get_by_label("Step mode").check()
    for student in students:
        expect(student.locator("#step-reason")).to_be_visible()
    teacher.get_by_role("button", name="Step: send one").click()
    for page in (teacher, *students):
        expect(page.locator("#step-route")).to_contain_text("→ b")
    teacher.get_by_label("Step mode").uncheck()
    for student in students:
        expect(student.locator("#step-reason")).to_be_hidden()


def test_a_second_presenter_tab_stays_in_step(room):
    teacher = room["teacher"]
    second = teacher.context.new_page()  # the same browser: the presenter's cookie
    try:
        second.goto(room["viewer_url"])
        expect(second.locator("#viewers")).to_be_visible()  # a presenter, not a viewer
        expect(second.locator("#lesson-heading")).to_have_text(title_of(second, LESSON))
        teacher.locator("#lesson-next").click()
        nxt = teacher.evaluate(f"fetch('/api/lessons/{LESSON}').then(r => r.json())")["next"]
        expect(second.locator("#lesson-heading")).to_have_text(nxt["title"])
        second.locator("#lesson-prev").click()  # either tab moves the class
        expect(teacher.locator("#lesson-heading")).to_have_text(title_of(teacher, LESSON))
        for student in room["students"]:
            expect(student.locator("#lesson-heading")).to_have_text(title_of(student, LESSON))
        expect(second.locator("#viewers")).to_have_text("2 viewers")
    finally:
        second.close()


def test_the_pages_fit_a_projector_and_a_phone(room):
    teacher, students = room["teacher"], room["students"]
    teacher.locator("#qr-toggle").click()
    qr = teacher.locator("#qr-panel img")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 0  # the SVG drew
    assert room["token"] not in teacher.locator("#qr-panel").inner_text()
    expect(teacher.locator(".qr-url")).to_have_text(room["viewer_url"])
    sizes = teacher.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert sizes[0] <= sizes[1]
    teacher.locator("#presenter-toggle").click()  # the viewers mirror the presenter view
    for student in students:
        expect(student.locator(ROOT)).to_have_class(re.compile(r"\bpresenter\b"))
        wide = student.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], f"a viewer's page is {wide} px wide on a 390 px phone"
        expect(student.locator("#follow")).to_be_in_viewport()
    students[0].screenshot(path=str(SCREENSHOTS / "classroom-viewer-presenter-view.png"))
    teacher.screenshot(path=str(SCREENSHOTS / "classroom-presenter-qr.png"))
    teacher.locator("#qr-panel [data-part='qr-close']").click()
    teacher.locator("#presenter-toggle").click()
    for student in students:
        expect(student.locator(ROOT)).not_to_have_class(re.compile(r"\bpresenter\b"))


def test_a_single_users_question_holds_the_traffic_only_while_it_is_open(chromium, lab_url):
    """No classroom: the one user's prediction is a class question of one, so the traffic
    holds as lab state (every tab sees why) and runs again afterwards, as it did before."""
    lab = 'document.querySelector("[data-lab]").lab'
    with (
        watched_page(chromium, "classroom-single-user") as page,
        watched_page(chromium, "classroom-single-user-other-tab") as other,
    ):
        page.goto(f"{lab_url}lessons/{LESSON}")
        expect(page.locator("#lesson-applied")).to_contain_text(LESSON_APPLIED)
        other.goto(lab_url)
        assert page.evaluate(f"{lab}.command({{action: 'resume'}})") == {"ok": True}
        expect(other.locator("#pause")).to_have_text("Pause")
        other.evaluate(
            f"""() => {{
              window.holdsSeen = [];
              {lab}.store.on("classroom", ({{ classroom }}) => holdsSeen.push(classroom.holds));
            }}"""
        )
        page.locator(".directive-predict button[data-choice='b1']").click()
        expect(page.locator(".predict-result")).to_contain_text("the balancer chose b")
        expect(other.locator("#pause")).to_have_text("Pause")  # it ran before: it runs again
        expect(page.locator("#pause")).to_have_text("Pause")
        room = other.evaluate(f"{lab}.store.classroom")
        assert room["holds"] == [] and room["round"] is None
        assert ["round"] in other.evaluate("holdsSeen")  # the other tab saw why it held
        assert page.evaluate(f"{lab}.command({{action: 'pause'}})") == {"ok": True}
