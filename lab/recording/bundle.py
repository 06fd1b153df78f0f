"""The page's own ES modules as one classic script, for a page opened from file://.

Browsers refuse module scripts on file:// (each import is a cross-origin
request from an opaque origin), but run a classic <script src>. So the export
wraps each module of static/js, unchanged but for its import and export
keywords, in a function of its own, in dependency order: the same code the live
page runs, with each module's names kept to itself as in a module.

The page's modules use two forms only: `import { a, b } from "./x.js";` on one
line, and `export` before a function, class, const or let. Anything else is
refused with the module and line, so a new form breaks the export's test, not a
tutorial author's page.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

IMPORT = re.compile(r'^import \{([^}]*)\} from "(\.{1,2}/[\w./-]+\.js)";\s*$')
EXPORT = re.compile(r"^export (?:async )?(?:function\*?|class|const|let) +([\w$]+)")
NAME = re.compile(r"^[\w$]+$")


class BundleError(ValueError):
    """A module in a form the bundle does not know."""


def bundle(js_root: Path, entry: str) -> str:
    """One classic script that runs `entry` (a path under js_root, like "player.js")."""
    order: list[str] = []
    parts: dict[str, tuple[list[str], list[str], list[str]]] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in parts:
            return
        if name in trail:
            raise BundleError(f"{name}: imports itself through {' -> '.join(trail)}")
        path = js_root / name
        if not path.is_file():
            raise BundleError(f"{trail[-1] if trail else name}: no module {name}")
        body, imports, exports = split(name, path.read_text())
        for _, dependency in imports:
            visit(dependency, (*trail, name))
        parts[name] = (body, [f"{names}|{dep}" for names, dep in imports], exports)
        order.append(name)

    visit(entry, ())
    out = ['"use strict";', "(() => {", "const modules = {};"]
    for name in order:
        body, imports, exports = parts[name]
        out.append(f"modules[{json.dumps(name)}] = (() => {{")
        for item in imports:
            names, dependency = item.split("|")
            out.append(f"const {{ {names} }} = modules[{json.dumps(dependency)}];")
        out += body
        out.append(f"return {{ {', '.join(exports)} }};")
        out.append("})();")
    out.append("})();")
    return "\n".join(out) + "\n"


def split(name: str, source: str) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """A module's lines without import and export keywords, what it imports, what it exports."""
    body: list[str] = []
    imports: list[tuple[str, str]] = []
    exports: list[str] = []
    for number, line in enumerate(source.splitlines(), 1):
        where = f"{name}:{number}"
        if line.startswith("import"):
            match = IMPORT.match(line)
            if not match:
                raise BundleError(f"{where}: an import the bundle does not know: {line.strip()}")
            names = [n.strip() for n in match.group(1).split(",") if n.strip()]
            if not all(NAME.match(n) for n in names):
                raise BundleError(f"{where}: import only plain names: {line.strip()}")
            dependency = posixpath.normpath(posixpath.join(posixpath.dirname(name), match[2]))
            imports.append((", ".join(names), dependency))
            continue
        if line.startswith("export"):
            match = EXPORT.match(line)
            if not match:
                raise BundleError(f"{where}: an export the bundle does not know: {line.strip()}")
            exports.append(match.group(1))
            line = line[len("export ") :]
        elif re.search(r"\bimport\s*\(", line):
            raise BundleError(f"{where}: a dynamic import cannot run from file://")
        body.append(line)
    return body, imports, exports
