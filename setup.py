"""Build hook: compile the balancer's data plane with mypyc, when it can be.

pyproject.toml holds the package's metadata; this file only adds the compiled
modules. The same .py files run unchanged without compiling, so a machine
without a working C compiler still installs a working (slower) lab: any failure,
whether generating the C (mypyc), compiling or linking it, or finding no compiler
at all, leaves the pure-Python modules, with one line saying so.
LB_LAB_PURE_PYTHON=1 skips compiling on purpose. See lab/balancer/compiled.py.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab.balancer.compiled import COMPILED_MODULES  # noqa: E402  (plain module, no deps)

HOW_TO_COMPILE = (
    "install a C compiler and the Python headers (Debian: apt-get install gcc python3-dev; "
    "macOS: xcode-select --install), then pip install -e . again"
)


def say_pure_python(why: object) -> None:
    print(f"lb-lab: not compiling the balancer ({why}); it runs as pure Python. "
          f"For the faster compiled build, {HOW_TO_COMPILE}.")  # fmt: skip


class OptionalBuildExt(build_ext):
    """build_ext that treats compiling as an optimisation: a failure leaves pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing compiler: all alike
            self.forget_partial_build()
            compiler = getattr(self.compiler, "compiler_so", None) or ["the C compiler"]
            say_pure_python(f"{type(exc).__name__} from {compiler[0]}")

    def forget_partial_build(self) -> None:
        """Remove compiled copies that did get built: the lab never mixes the two."""
        for ext in self.extensions:
            for path in (self.get_ext_fullpath(ext.name), self.get_ext_filename(ext.name)):
                if os.path.exists(path):
                    os.remove(path)
        self.extensions = []

    def get_outputs(self) -> list:
        return [path for path in super().get_outputs() if os.path.exists(path)]


def compiled_extensions() -> list:
    if os.environ.get("LB_LAB_PURE_PYTHON"):
        print("lb-lab: LB_LAB_PURE_PYTHON is set: the balancer stays pure Python")
        return []
    try:
        from mypyc.build import mypycify

        paths = [name.replace(".", "/") + ".py" for name in COMPILED_MODULES]
        return mypycify(paths, opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        say_pure_python(exc)
        return []


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": OptionalBuildExt})
