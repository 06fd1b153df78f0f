"""The lab's HTTP pages: the lab page, a lesson's page, and the course's JSON API.

HTTP: `/` the page; `/lessons/<slug>` the page with that lesson open (an unknown
slug: a 404 page that links back to the lab and lists the lessons; a slug a lesson
had before, declared in its `formerly`: 301 to its slug now, as is `/api/lessons/<old>`);
`/api/lessons` the course (slug, order, title, summary, in order);
`/api/lessons/<slug>` one lesson: its HTML (no raw HTML from the lesson ever
gets through), its directives, its settings and its neighbours.

Every page carries PAGE_POLICY, and the presenter's link (?token=...) is
turned into a cookie here (lab.web.presenter). create_app (lab.web.app)
registers these views.
"""

from __future__ import annotations

from flask import current_app, jsonify, redirect, render_template, request, url_for

from lab.lessons.catalog import Catalog
from lab.web import presenter
from lab.web.classroom import TOKEN_PARAM

# The page runs only its own scripts: even if a lesson ever slipped markup through,
# an inline script or handler in it would not run.
PAGE_POLICY = "script-src 'self'; object-src 'none'; base-uri 'none'"


def index():
    """Render the lab page."""
    return _page(render_template("index.html", lesson=""))


def _take_token(offered: str):
    token = current_app.config["ACCESS"].token
    if not presenter.holds(offered, token):
        return current_app.make_response(("that presenter link is not this lab's", 403))
    response = redirect(request.path, code=303)
    response.set_cookie(presenter.COOKIE, token, httponly=True, samesite="Strict")
    return response


def lesson_page(slug: str):
    """Render the lab page with one lesson open (or a page that leads back)."""
    lesson = _lessons().get(slug)
    if lesson is None and (now := _lessons().renamed(slug)):
        return _moved(url_for("lesson_page", slug=now))
    if lesson is None:
        known = [item.listing() for item in _lessons().lessons()]
        page = _page(render_template("no_lesson.html", slug=slug, lessons=known))
        page.status_code = 404
        return page
    return _page(render_template("index.html", lesson=slug, lesson_title=lesson.title))


def _moved(to: str):
    """A lesson's old slug: its links go on working, to the lesson it became."""
    query = request.query_string.decode("latin-1")
    return redirect(f"{to}?{query}" if query else to, code=301)


def _page(html: str):
    offered = request.args.get(TOKEN_PARAM)
    if offered is not None:  # the presenter URL: keep the token in a cookie, drop it from the URL
        return _take_token(offered)
    response = current_app.make_response(html)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


def lesson_list():
    """List the course in order."""
    return jsonify({"lessons": [lesson.listing() for lesson in _lessons().lessons()]})


def lesson_detail(slug: str):
    """One lesson: rendered HTML, directives, settings and its neighbours."""
    lessons = _lessons()
    lesson = lessons.get(slug)
    if lesson is None and (now := lessons.renamed(slug)):
        return _moved(url_for("lesson_detail", slug=now))
    if lesson is None:
        return jsonify({"error": f"no lesson {slug!r}"}), 404
    before, after = lessons.neighbours(slug)
    return jsonify(
        {
            **lesson.listing(),
            "html": lesson.html,
            "directives": [d.public() for d in lesson.directives],
            "settings": lesson.setup.as_json(),
            "previous": before.listing() if before else None,
            "next": after.listing() if after else None,
        }
    )


def _lessons() -> Catalog:
    return current_app.config["LESSONS"]
