"""Build hook: compile the balancer's data plane with mypyc, when it can be.

pyproject.toml holds the package's metadata; this file only adds the compiled
modules. The same .py files run unchanged without compiling, so a machine
without a C compiler still installs a working (slower) lab, and
LB_LAB_PURE_PYTHON=1 skips compiling on purpose. See lab/balancer/compiled.py.
"""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab.balancer.compiled import COMPILED_MODULES  # noqa: E402  (plain module, no deps)


def compiled_extensions() -> list:
    if os.environ.get("LB_LAB_PURE_PYTHON"):
        print("lb-lab: LB_LAB_PURE_PYTHON is set: the balancer stays pure Python")
        return []
    try:
        from mypyc.build import mypycify

        paths = [name.replace(".", "/") + ".py" for name in COMPILED_MODULES]
        return mypycify(paths, opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        # No compiler, no headers, a type error: the pure-Python lab still works.
        print(f"lb-lab: not compiling the balancer ({exc}); it runs as pure Python")
        return []


setup(ext_modules=compiled_extensions())
