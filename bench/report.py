"""docs/benchmarks.md from the benchmarks' results, one `## title` section per benchmark.

A results file (bench/results/<name>.json, written by `bench.common.write_results`) holds
`title`, `intro`, `date` and `body`: markdown lines and tables, in order. A table is
`{"columns": [...], "rows": [[...], ...], "align": "lrr...", "formats": [".1f", "{:.2f}x", None]}`;
its cells stay numbers in the JSON and are formatted only here.

    python -m bench.report    # re-render every section that has a results file

Sections without a results file (older runs) are left as they are.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS_MD = BENCH_DIR.parent / "docs" / "benchmarks.md"
RESULTS_DIR = BENCH_DIR / "results"
HEADER = "# Benchmarks\n\nMeasured on this project's 2-core, no-GPU machine unless noted.\n"


def write_section(
    title: str,
    intro: str,
    lines: list[str],
    path: Path = BENCHMARKS_MD,
    stamp: str | None = None,
) -> None:
    """Replace (or append) the `## title` section with `intro` and `lines`; `stamp` is the
    run's date (default: today)."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    stamp = stamp or time.strftime("%Y-%m-%d")
    body = f"## {title}\n\n{intro} Run {stamp}.\n\n" + "\n".join(lines) + "\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(lambda _: body + "\n", text)
        if pattern.search(text)
        else (text.rstrip("\n") + "\n\n" + body)
    )
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def table(
    columns: list[str],
    rows: list[list[Any]],
    align: str = "",
    formats: list[str | None] | None = None,
) -> dict[str, Any]:
    """A table block for a results body: `align` has one `l` or `r` per column (default all
    left), `formats` one format per column: a spec (".1f"), a template ("{:.2f}x") or None
    (the value as it is)."""
    return {
        "columns": columns,
        "rows": rows,
        "align": align or "l" * len(columns),
        "formats": formats or [None] * len(columns),
    }


def cell(value: Any, spec: str | None) -> str:
    """One formatted cell: None (a missing or non-finite value) renders empty."""
    if value is None:
        return ""
    if spec and isinstance(value, int | float) and not isinstance(value, bool):
        return spec.format(value) if "{" in spec else format(value, spec)
    return str(value)


def table_lines(block: dict[str, Any]) -> list[str]:
    """A table block as markdown lines."""
    columns = block["columns"]
    align = block.get("align") or "l" * len(columns)
    formats = block.get("formats") or [None] * len(columns)
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "".join(" ---: |" if a == "r" else " --- |" for a in align))
    for row in block["rows"]:
        cells = [cell(v, f) for v, f in zip(row, formats, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(payload: dict[str, Any]) -> tuple[str, str, list[str]]:
    """A results payload as (title, intro, markdown lines) for `write_section`."""
    lines: list[str] = []
    for block in payload.get("body", []):
        lines.extend(table_lines(block) if isinstance(block, dict) else [str(block)])
    return str(payload["title"]), str(payload.get("intro", "")), lines


def render_file(results: Path, path: Path = BENCHMARKS_MD) -> bool:
    """Re-render the section of one results file; False when it has no section (no title)."""
    payload = json.loads(results.read_text(encoding="utf-8"))
    if not payload.get("title"):
        return False
    title, intro, lines = render(payload)
    write_section(title, intro, lines, path, stamp=payload.get("date"))
    return True


def main() -> int:
    """Re-render every section that has a results file in bench/results/."""
    files = sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.exists() else []
    for results in files:
        done = render_file(results)
        print(f"{results.name}: {'rendered' if done else 'no section'}")
    if not files:
        print(f"no results in {RESULTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
