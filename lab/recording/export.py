"""`lb-lab export run.lbrec --out DIR`: a static folder that plays a recording, anywhere.

DIR/index.html      the lab's own page (templates/index.html), started by the player
DIR/static/         the page's own CSS and JS, copied; its modules also as one classic
                    script (lab.recording.bundle), since browsers refuse modules on file://
DIR/recording.js    the recording, as base64 in a script: a file:// page may not fetch()
DIR/run.lbrec       the recording itself, for anyone who wants the file

The page plays from file:// or any static host, with no server and no network.
A tutorial embeds it with an iframe (README, "Record and replay").
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
from pathlib import Path

from lab.recording.bundle import BundleError, bundle
from lab.recording.format import RecordingError, read

ENTRY = "player.js"
BUNDLE = "player.bundle.js"
LIVE_SCRIPTS = (
    '<script src="static/vendor/socket.io/socket.io.min.js" defer></script>',
    '<script type="module" src="static/js/main.js"></script>',
)
PLAYER_HEAD = (
    '<link rel="stylesheet" href="static/player.css">\n'
    '  <script src="recording.js" defer></script>\n'
    f'  <script src="static/js/{BUNDLE}" defer></script>'
)
OURS = ("index.html", "recording.js", "run.lbrec", "static")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write a folder that plays a recording in any browser, with no server: open its "
        "index.html, put it on any static host, or embed it in a page with an iframe."
    )
    parser.add_argument("recording", type=Path, help="a recording (lb-lab record, or Record)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.set_defaults(run=run, parser=parser)


def run(options: argparse.Namespace) -> int:
    try:
        data = options.recording.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {options.recording}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        recording = read(data)
        export(data, options.out)
    except (RecordingError, ExportError) as exc:
        print(f"error: {options.recording}: {exc}; nothing was written", file=sys.stderr)
        return 1
    seconds = recording.header.get("duration_s", 0)
    print(f"{options.out}/index.html plays {seconds:.1f} s of {options.recording.name}")
    return 0


class ExportError(ValueError):
    """The folder cannot be written as asked."""


def export(data: bytes, out: Path, assets: Path | None = None) -> None:
    """Write the player folder for a recording already checked with `read`."""
    from lab.web.app import asset_root

    root = assets or asset_root()
    if out.exists() and any(p.name not in OURS for p in out.iterdir()):
        raise ExportError(f"{out} holds files of its own; give an empty or new folder")
    try:
        script = bundle(root / "static" / "js", ENTRY)
    except BundleError as exc:
        raise ExportError(f"the page's scripts could not be bundled: {exc}") from None
    html = page(root)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "static").exists():
        shutil.rmtree(out / "static")
    shutil.copytree(
        root / "static", out / "static", ignore=shutil.ignore_patterns("vendor", "__pycache__")
    )
    (out / "static" / "js" / BUNDLE).write_text(script)
    encoded = base64.b64encode(data).decode("ascii")
    (out / "recording.js").write_text(f'window.LB_LAB_RECORDING = "{encoded}";\n')
    (out / "run.lbrec").write_bytes(data)
    (out / "index.html").write_text(html)


def page(root: Path) -> str:
    """The lab's own page, with the player's scripts in place of the live ones."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root / "templates"), autoescape=True)
    env.globals["url_for"] = lambda _endpoint, filename: f"static/{filename}"
    html = env.get_template("index.html").render(lesson="", lesson_title="Recording")
    for tag in LIVE_SCRIPTS:
        if tag not in html:
            raise ExportError(f"templates/index.html no longer has {tag}")
    html = html.replace(LIVE_SCRIPTS[0], PLAYER_HEAD).replace(LIVE_SCRIPTS[1], "")
    return html
