"""Where the CPU went during a measurement: CPU seconds per process, grouped by role.

On 2 cores the generation engine competes with everything else on the machine, so a share of
the engine's ceiling is only explained by what the other processes took meanwhile."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psutil

from bench.report import table

# A process's title (Ray and vLLM set one) or command line -> the role it is reported under.
ROLES: list[tuple[str, str]] = [
    (r"EngineCore", "vLLM engine core"),
    (r"ServeReplica:[^:]+:Generator|LLMServer", "Generator replica (LLMServer)"),
    (r"ServeReplica:[^:]+:Ingress", "Ingress replicas"),
    (r"ServeReplica", "other Serve replicas"),
    (r"haproxy", "HAProxy"),
    (r"ServeController|ProxyActor", "Serve controller and proxy"),
    (r"raylet|gcs_server|dashboard|log_monitor|monitor\.py|runtime_env", "Ray system processes"),
]


def role(process: psutil.Process) -> str:
    """The role a process is counted under: a known one, else its title's first word (a Ray
    worker's is its actor class), else its name."""
    if process.pid == os.getpid():
        return "load client (this process)"
    try:
        title = " ".join(process.cmdline()) or process.name()
        name = process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "other"
    known = next((role for pattern, role in ROLES if re.search(pattern, title)), None)
    if known:
        return known
    return title.split()[0][:60] if title.startswith(("ray::", "VLLM")) else name


def snapshot() -> dict[int, tuple[str, float]]:
    """Each live process's role and CPU seconds (user + system) so far."""
    taken: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter():
        try:
            times = process.cpu_times()
            taken[process.pid] = (role(process), times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return taken


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds per role over a window of `wall_s` seconds."""

    seconds: dict[str, float]
    wall_s: float

    def shares(self) -> list[tuple[str, float, float]]:
        """(role, CPU seconds, share of all cores' time), the biggest first."""
        capacity = self.wall_s * (os.cpu_count() or 1)
        ranked = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return [(name, secs, secs / capacity if capacity else 0.0) for name, secs in ranked]

    def table(self) -> dict[str, Any]:
        """The shares as a report table."""
        rows = [[name, secs, share] for name, secs, share in self.shares()]
        columns = ["process", "CPU s", f"share of {os.cpu_count()} cores x {self.wall_s:.1f} s"]
        return table(columns, rows, "lrr", [None, ".1f", "{:.0%}"])


def between(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall_s: float
) -> CpuUse:
    """CPU seconds each role used between two snapshots (processes alive at both ends, or
    started in between)."""
    used = Counter[str]()
    for pid, (name, seconds) in after.items():
        used[name] += seconds - before.get(pid, (name, 0.0))[1]
    return CpuUse({k: round(v, 2) for k, v in used.items() if v >= 0.05}, wall_s)


def while_idle(seconds: float) -> CpuUse:
    """CPU seconds per role over `seconds` in which nothing is asked of the servers: the
    standing cost of the processes that share the cores."""
    before, start = snapshot(), time.perf_counter()
    time.sleep(seconds)
    return between(before, snapshot(), time.perf_counter() - start)
