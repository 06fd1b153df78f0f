"""The compiled data plane (mypyc, see lab/balancer/compiled.py) and its pure-Python source.

Both must route alike, the balancer must say which one runs, and an edited
source must never be shadowed by a stale compiled copy.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import EventReader, Http, wait_for

from lab.balancer import compiled

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def state_of(admin: str) -> dict:
    client = Http(admin)
    try:
        return client.json("GET", "/state")[1]
    finally:
        client.close()


def test_pure_and_compiled_balancers_make_the_same_decisions(lab, monkeypatch):
    lab.start_balancer("--algorithm", "round-robin")
    lab.configure(weights={"b1": 5, "b2": 1, "b3": 1})
    build = lab.state()["build"]
    assert build == compiled.describe()  # the balancer process decided as this one did
    built = all(compiled.compiled_path(module) for module in compiled.COMPILED_MODULES)
    if built and not os.environ.get(compiled.PURE_ENV):  # else pure, and it says why
        assert build == "compiled with mypyc" or "changed since it was compiled" in build

    monkeypatch.setenv(compiled.PURE_ENV, "1")
    args = ["balancer", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    for name, address in lab.backends.items():
        args += ["--backend", f"{name}={address},weight={5 if name == 'b1' else 1}"]
    pure = lab.supervisor.start("pure balancer", args)
    assert state_of(pure.addresses["admin"])["build"] == "pure Python (LB_LAB_PURE_PYTHON is set)"

    picks = {}
    for label, listen, admin in (
        ("default", lab.listen, lab.admin_address),
        ("pure", pure.addresses["listen"], pure.addresses["admin"]),
    ):
        reader = EventReader(admin)
        lab._readers.append(reader)  # closed with the lab
        wait_for(lambda a=admin: state_of(a)["events"]["subscribers"] >= 1, what="a reader")
        client = Http(listen)
        statuses = [client.get(f"/pick/{i}")[0] for i in range(14)]
        client.close()
        assert statuses == [200] * 14
        routes = wait_for(lambda r=reader: len(r.of("route")) >= 14 and r.of("route"))
        picks[label] = [(e["backend"], e["path"], e["reason"]) for e in routes]
    # Smooth weighted round robin: 5,1,1 spreads b1's turns out (see round_robin.py).
    first_seven = [backend for backend, _, _ in picks["pure"][:7]]
    assert first_seven == ["b1", "b1", "b2", "b1", "b3", "b1", "b1"]
    assert picks["default"] == picks["pure"]


def test_the_balancer_type_checks_so_it_can_be_compiled():
    """mypyc compiles only what mypy accepts; setup.py would fall back to pure Python."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "lab/balancer"], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def copy_of_the_package(tmp_path: Path) -> Path:
    """lab/ and setup.py in a fresh directory, with placeholder compiled copies.

    The placeholders are not real extension modules: importing one would fail,
    so a successful import proves the source was used.
    """
    shutil.copytree(
        ROOT / "lab", tmp_path / "lab", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    shutil.copy2(ROOT / "setup.py", tmp_path / "setup.py")
    for module in compiled.COMPILED_MODULES:
        placeholder = tmp_path.joinpath(*module.split(".")).with_suffix(SUFFIX)
        placeholder.write_bytes(b"not a shared library")
    return tmp_path


def import_in(root: Path, **env: str) -> list[str]:
    code = (
        "import lab.balancer.compiled as c, lab.balancer.pool as p, lab.balancer.http_proxy as h;"
        "print(c.describe()); print(p.__file__); print(h.__file__)"
    )
    environment = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    environment.update(env, PYTHONPATH=str(root))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=environment, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_an_edited_source_runs_instead_of_its_stale_compiled_copy(tmp_path):
    root = copy_of_the_package(tmp_path)
    source = root / "lab" / "balancer" / "pool.py"
    later = source.with_suffix(SUFFIX).stat().st_mtime + 60
    os.utime(source, (later, later))  # edited after the (placeholder) build

    describe, pool_file, proxy_file = import_in(root)

    assert describe == (
        "pure Python (lab/balancer/pool.py changed since it was compiled; "
        "`pip install -e .` compiles it again)"
    )
    # All or none: the untouched module loads from source too.
    assert (pool_file, proxy_file) == (str(source), str(root / "lab/balancer/http_proxy.py"))


def test_the_pure_python_switch_loads_every_module_from_source(tmp_path):
    root = copy_of_the_package(tmp_path)
    describe, pool_file, proxy_file = import_in(root, **{compiled.PURE_ENV: "1"})
    assert describe == "pure Python (LB_LAB_PURE_PYTHON is set)"
    assert pool_file.endswith("pool.py") and proxy_file.endswith("http_proxy.py")


def test_the_switch_is_the_reason_given_even_where_nothing_was_compiled(tmp_path):
    # A machine without a C compiler: the suite's pure balancer must still say why it is pure.
    root = copy_of_the_package(tmp_path)
    for copy in root.joinpath("lab").rglob(f"*{SUFFIX}"):
        copy.unlink()
    describe, pool_file, _ = import_in(root, **{compiled.PURE_ENV: "1"})
    assert describe == "pure Python (LB_LAB_PURE_PYTHON is set)"
    assert pool_file.endswith("pool.py")


def test_without_compiled_copies_the_source_runs_and_says_why(tmp_path):
    root = copy_of_the_package(tmp_path)
    next(root.joinpath("lab", "balancer").glob(f"*{SUFFIX}")).unlink()
    describe, pool_file, _ = import_in(root)
    assert describe == (
        "pure Python (not compiled at install: no working C compiler? "
        "see the README's Requirements)"
    )
    assert pool_file.endswith("pool.py")
