"""The Record button's files, passed on from the lab service (lab.recording.service).

A page cannot reach the lab service (it refuses web pages), so the web front
relays `GET /recordings/NAME` to it, as a download.
"""

from __future__ import annotations

from http.client import HTTPException

from flask import Blueprint, current_app

from lab.recording.service import NAME

blueprint = Blueprint("recordings", __name__)


@blueprint.route("/recordings/<name>")
def download(name: str):
    """Send one recording the lab service made, as a file to save."""
    controller = current_app.config["CONTROLLER"]
    fetch = getattr(controller, "recording", None)  # only a lab service keeps recordings
    try:
        data = fetch(name) if fetch is not None and NAME.match(name) else None
    except (OSError, HTTPException) as exc:
        return current_app.make_response((f"the lab service did not answer ({exc})\n", 502))
    if data is None:
        return current_app.make_response((f"no recording {name!r} in this lab\n", 404))
    response = current_app.make_response(data)
    response.headers["Content-Type"] = "application/gzip"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
