"""Write one benchmark's section into docs/benchmarks.md, leaving the other sections alone."""

from __future__ import annotations

import re
import time
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nMeasured on this project's 2-core, no-GPU machine unless noted.\n"


def write_section(title: str, intro: str, lines: list[str], path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the `## title` section with `intro` and `lines`."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    body = f"## {title}\n\n{intro} Run {stamp}.\n\n" + "\n".join(lines) + "\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(lambda _: body + "\n", text)
        if pattern.search(text)
        else (text.rstrip("\n") + "\n\n" + body)
    )
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
