"""The lab CA's certificate as a download, so a learner's own curl or browser can trust the lab.

`GET /lab-ca.pem` on the page's own address. The CA is the one the lab made
at start-up (lab.certificates); only its certificate is offered, never a key.
A page cannot reach the lab service, so a web front asks it (`ca_pem`), as it
does for recordings; a lab in this process (tests) answers itself.
"""

from __future__ import annotations

from http.client import HTTPException

from flask import Blueprint, current_app

from lab.web.fields import CommandError

blueprint = Blueprint("lab_ca", __name__)
FILE_NAME = "lb-lab-ca.pem"


@blueprint.route("/lab-ca.pem")
def download():
    """Send the lab CA's certificate, as a file to save."""
    controller = current_app.config["CONTROLLER"]
    if controller is None:
        return current_app.make_response(("the lab is still starting\n", 503))
    try:
        pem = controller.ca_pem()
    except (OSError, HTTPException, CommandError) as exc:
        return current_app.make_response((f"the lab has no CA to offer ({exc})\n", 503))
    response = current_app.make_response(pem)
    response.headers["Content-Type"] = "application/x-pem-file"
    response.headers["Content-Disposition"] = f'attachment; filename="{FILE_NAME}"'
    return response
