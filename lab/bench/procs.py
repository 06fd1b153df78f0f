"""The benchmark's processes, read from /proc: who descends from whom, who is still alive,
and how much CPU each kind of lab process has used (Linux; elsewhere the figures are absent)."""

from __future__ import annotations

import contextlib
import os

from lab.bench.runner import cpu_seconds


def descendants(root: int) -> set[int]:
    """Every live process below `root`, from /proc (empty where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rpartition(")")[2].split()[1])
                parents.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie has exited; only its exit status waits to be read)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def machine_busy_s() -> float | None:
    """CPU seconds every core of this machine has spent busy since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# `python -m lab ROLE ...`: the lab's children (the service, and the processes it runs)
ROLES = ("service", "balancer", "traffic", "backend")


def cpu_by_role(web_pid: int) -> dict[str, float]:
    """CPU seconds used so far by this benchmark's processes, summed by what they are."""
    used: dict[str, float] = {}
    for pid in {os.getpid(), *descendants(os.getpid())}:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                args = cmdline.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if pid == web_pid:
            role = "web"
        elif pid == os.getpid():
            role = "bench"
        else:  # what is not part of the lab is Chromium and the Playwright driver
            role = next((r for r in ROLES if r in args[:4]), "browser")
        used[role] = used.get(role, 0.0) + (cpu_seconds(pid) or 0.0)
    return used
