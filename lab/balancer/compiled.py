"""Which balancer modules are compiled with mypyc, and whether the compiled copies run.

The data plane (parse, route, forward, report) is ordinary Python. At install
time setup.py compiles these modules with mypyc, which more than halves the
instructions each request costs (97k to 41k): the difference between a
balancer well behind nginx and one close to it (README, "Benchmark"). The .py
files stay the source of truth, and run as they are when nothing was compiled.

A compiled copy (a .so beside the .py) wins every import. Two cases must not
use it, and then every module here loads from its .py instead:
- LB_LAB_PURE_PYTHON=1, to compare the two or to debug with pdb;
- a .py edited since it was compiled (an editable install after `git pull`, or
  a developer at work): running stale compiled code would ignore the edit.
It is all or none because compiled modules call each other's code directly.

This module imports nothing from the balancer, so setup.py can read the list.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

COMPILED_MODULES = (
    "lab.balancer.clock",
    "lab.balancer.backend",
    "lab.balancer.events",
    "lab.balancer.event_text",
    "lab.balancer.algorithms.base",
    "lab.balancer.algorithms.common",
    "lab.balancer.algorithms.round_robin",
    "lab.balancer.algorithms.least_connections",
    "lab.balancer.algorithms.random_choice",
    "lab.balancer.algorithms.power_of_two",
    "lab.balancer.algorithms.least_response_time",
    "lab.balancer.algorithms.hashing",
    "lab.balancer.pool",
    "lab.balancer.sticky",
    "lab.balancer.queue",
    "lab.balancer.cookies",
    "lab.balancer.retries",
    "lab.balancer.retry_budget",
    "lab.balancer.failover",
    "lab.balancer.hop_by_hop",
    "lab.balancer.request_target",
    "lab.balancer.tunnel",
    "lab.balancer.upstream",
    "lab.balancer.balancer",
    "lab.balancer.reconfigure",
    "lab.balancer.snapshot",
    "lab.balancer.error_answers",
    "lab.balancer.client_timeouts",
    "lab.balancer.http_exchange",
    "lab.balancer.http_proxy",
    "lab.balancer.tls_termination",
    "lab.balancer.client_hello",
    "lab.balancer.passthrough",
    "lab.balancer.tcp_proxy",
    "lab.balancer.flows",
    "lab.balancer.udp_proxy",
)
PURE_ENV = "LB_LAB_PURE_PYTHON"
ROOT = Path(__file__).resolve().parents[2]  # the directory that holds lab/

# Set once by choose(): True when the compiled modules are the ones imported.
running_compiled = False
why_not = ""  # when not compiled: the reason, for /state and the benchmark's report


def source_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def compiled_path(module: str) -> Path | None:
    py = source_path(module)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = py.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


class SourceFirst(importlib.abc.MetaPathFinder):
    """Load the listed modules from their .py even where a compiled copy sits beside it."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 (importlib's signature)
        if fullname in COMPILED_MODULES:
            return importlib.util.spec_from_file_location(fullname, source_path(fullname))
        return None


def choose() -> None:
    """Decide, before any listed module is imported, which copies run (see the docstring)."""
    global running_compiled, why_not
    built = {module: compiled_path(module) for module in COMPILED_MODULES}
    if os.environ.get(PURE_ENV):  # asked for: the reason, whether or not a build exists
        why_not = f"{PURE_ENV} is set"
    elif not all(built.values()):  # none, or a partial build: never mix the two
        why_not = "not compiled at install: no working C compiler? see the README's Requirements"
    # In a source checkout an edit may be newer than its compiled copy. (An installed
    # wheel has no setup.py beside lab/ and its files all date from the install.)
    elif (ROOT / "setup.py").exists():
        # mypyc puts the code in one shared library beside lab/ and leaves the small
        # per-module stubs alone when they did not change: the newest file tells.
        shared = [path.stat().st_mtime for path in ROOT.glob("*__mypyc.*")]
        built_at = max([so.stat().st_mtime for so in built.values() if so] + shared)
        stale = [module for module in built if source_path(module).stat().st_mtime > built_at]
        if stale:
            why_not = (
                f"{source_path(stale[0]).relative_to(ROOT)} changed since it was compiled; "
                "`pip install -e .` compiles it again"
            )
    if why_not:
        sys.meta_path.insert(0, SourceFirst())
        return
    running_compiled = True


def describe() -> str:
    return "compiled with mypyc" if running_compiled else f"pure Python ({why_not})"
