"""Installing with no working C compiler: compiling is an optimisation, never a requirement.

A fresh virtual environment, `CC=/bin/false` so every compile fails, and a
real `pip install -e` of a copy of this checkout; then a real balancer from
that environment routes a request and says it runs as pure Python.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import venv
from pathlib import Path

from conftest import Http

from lab.lifecycle import PARENT_ENV, READY_PREFIX

ROOT = Path(__file__).resolve().parents[1]


def copy_of_the_checkout(target: Path) -> Path:
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info", "build", "*__mypyc.c")
    for name in ("lab", "templates", "static", "lessons"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    return target


def test_an_install_without_a_c_compiler_falls_back_to_pure_python(tmp_path):
    source = copy_of_the_checkout(tmp_path / "src")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The fresh environment borrows this one's installed packages (a path, not an install),
    # so only lb-lab itself is installed: built in pip's isolated build environment, as a
    # learner's install is, with the compiler made to fail.
    site_dir = next(Path(p) for p in site.getsitepackages() if Path(p).is_dir())
    pure_lib = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (pure_lib / "borrowed.pth").write_text(f"{site_dir}\n")
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-v",
            "--no-deps",
            "-e",
            str(source),
        ],
        env={**os.environ, "CC": "/bin/false", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    output = install.stdout + install.stderr
    said = [line.strip() for line in output.splitlines() if "lb-lab: not compiling" in line]
    assert len(said) == 1
    assert "it runs as pure Python" in said[0] and "install a C compiler" in said[0]
    assert not list(source.rglob("*.so"))  # nothing half-built is left to be mixed in

    balancer = subprocess.Popen(
        [python, "-m", "lab", "balancer", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
         "--backend", "b1=127.0.0.1:9"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, PARENT_ENV: str(os.getpid())},  # it then prints its addresses
    )  # fmt: skip
    try:
        lines = []
        for line in balancer.stdout:
            lines.append(line)
            if line.startswith(READY_PREFIX):
                break
        addresses = json.loads(lines[-1][len(READY_PREFIX) :])
        client = Http(addresses["admin"])
        state = client.json("GET", "/state")[1]
        client.close()
    finally:
        balancer.terminate()
        balancer.wait(10)
    assert state["build"].startswith("pure Python (not compiled at install")
    assert any("pure Python" in line for line in lines)  # its first line says so too
