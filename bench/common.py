"""What every benchmark shares: the environment, the data paths, load checks and results.

Import it before anything from the project:

    try:
        from bench import common
    except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
        import common

It puts the repository root on sys.path and sets the offline, quiet environment the models and
Ray need. It imports nothing heavier than numpy, so bench/embed_texts.py can use it on a machine
that has only torch and transformers.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
for _name, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("RAY_USAGE_STATS_ENABLED", "0"),
):
    os.environ.setdefault(_name, _value)

from bench.report import RESULTS_DIR, render_file  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RAY_DOCS_ARCHIVE = DATA / "ray-docs" / "ray-docs-html.tar.gz"
QA_FILE = DATA / "ray-docs" / "qa-dev.jsonl"
SCIFACT = DATA / "scifact"
RAY_DOCS_INDEX = Path("/tmp/rag-bench/index")  # bench/build_throughput.py's default output
DOCS_INDEX = Path("/tmp/rag-serve-bench/index")  # built from guide/ (the demo corpus) if needed
FALLBACK_QUESTIONS = [
    "How do I build the index from a documentation site?",
    "How does the service stay up while a new index version is loaded?",
    "What happens to /ask when the generator fails?",
    "How do I change the chunk size?",
    "Which settings control autoscaling of the ingress?",
    "How are query embeddings batched?",
    "What does the service do when CURRENT changes?",
    "How do I run the service on a GPU?",
    "How is the BM25 leg fused with dense retrieval?",
    "What does /readyz report?",
    "Where do the Prometheus metrics come from?",
    "How do I resume an interrupted build?",
]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def wait_quiet(threshold: float, minutes: float) -> bool:
    """Block until the 1-minute load average is below `threshold` on two readings 60 s apart
    (it stayed low for a minute); False when `minutes` pass first."""
    deadline = time.monotonic() + minutes * 60
    below = 0
    while True:
        load = loadavg()[0]
        below = below + 1 if load < threshold else 0
        print(f"[wait-quiet] load {load:.2f} (below {threshold} x{below})", flush=True)
        if below >= 2:
            return True
        if time.monotonic() + 60 > deadline:
            return False
        time.sleep(60)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile of seconds, in milliseconds (nan when empty)."""
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def load_questions() -> list[str]:
    """Realistic docs questions: the Ray docs dev set when present, else a built-in list."""
    if QA_FILE.exists():
        with QA_FILE.open(encoding="utf-8") as handle:
            questions = [json.loads(line)["question"] for line in handle if line.strip()]
        return [q.strip() for q in questions if q.strip()]
    return list(FALLBACK_QUESTIONS)


def resolve_index(index_dir: Path | None) -> tuple[Path, str]:
    """The index root and the version to pin: `index_dir`, else the docs.ray.io index of
    bench/build_throughput.py when published, else one of guide/ (built here)."""
    from ragcore.index_format import current_version

    if index_dir is None:
        index_dir = RAY_DOCS_INDEX if current_version(RAY_DOCS_INDEX) else DOCS_INDEX
    index_dir = index_dir.resolve()
    if current_version(index_dir) is None:
        if index_dir != DOCS_INDEX:
            raise SystemExit(f"error: no index published in {index_dir}")
        print(f"building an index of guide/ in {index_dir}", flush=True)
        command = [sys.executable, "build_index.py", "--index-dir", str(index_dir)]
        subprocess.run(command, cwd=ROOT, check=True, timeout=1800)
    version = current_version(index_dir)
    if version is None:
        raise SystemExit(f"error: the build published nothing in {index_dir}")
    return index_dir, version


def _plain(value: Any) -> Any:
    """`value` with numpy scalars and paths made JSON types, and non-finite floats None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value) if isinstance(value, Path) else value


def read_results(name: str) -> dict[str, Any]:
    """The last bench/results/<name>.json that write_results wrote ({} when there is none)."""
    path = RESULTS_DIR / f"{name}.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json (the payload plus the date and load average), then
    re-render its section of docs/benchmarks.md when it has a `title` (bench/report.py)."""
    record = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "loadavg": loadavg()}
    record.update(payload)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(_plain(record), indent=2) + "\n", encoding="utf-8")
    if render_file(path):
        print(f"written to {path.relative_to(ROOT)} and docs/benchmarks.md", flush=True)
    else:
        print(f"written to {path.relative_to(ROOT)}", flush=True)
    return path


# What a results file keeps of an /ask response: the figures, never the question, the answer or
# the retrieved text (the data behind them is not ours to publish).
FIGURE_FIELDS = ("variant", "answer_path", "answer_mode", "cache", "status", "tokens_saved",
                 "tokens_used", "latency_ms", "seconds", "at", "error")  # fmt: skip


def figures_only(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with only FIGURE_FIELDS kept."""
    return [{k: v for k, v in row.items() if k in FIGURE_FIELDS} for row in rows]
