"""Exec an outside program (nginx, HAProxy) so that it dies with the process that started it.

    python -m lab.bench.tether PARENT_PID PROGRAM [ARGS...]

The kernel keeps a parent-death signal across exec, so a peer proxy started
by the benchmark gets SIGTERM even if the benchmark is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def tethered(argv: list[str]) -> list[str]:
    """The command line that runs `argv` tied to this process's life."""
    return [sys.executable, "-m", "lab.bench.tether", str(os.getpid()), *argv]


def main(args: list[str]) -> int:
    parent, *argv = args
    with contextlib.suppress(Exception):  # Linux only; elsewhere the peer is stopped in order
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the parent died before the signal was armed
        return 1
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execvp(argv[0], argv)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
