"""Read a local directory of .html, .md, .rst and .txt files as pages, in Ray tasks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import ray

from pipelines.clean import (
    html_to_sections,
    markdown_to_sections,
    rst_to_sections,
    text_to_sections,
)
from pipelines.placement import SPREAD, Placement, this_node
from ragcore.documents import Page
from utils.errors import InputError

SUFFIXES = (".html", ".htm", ".md", ".markdown", ".rst", ".txt")


def list_files(root: Path) -> list[Path]:
    """Every supported file under `root`, sorted; InputError when the directory is unusable."""
    if not root.exists():
        raise InputError(f"source {root} does not exist")
    if not root.is_dir():
        raise InputError(f"source {root} is not a directory or an http(s) URL")
    if not os.access(root, os.R_OK | os.X_OK):
        raise InputError(f"source directory {root} is not readable")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def page_url_for(root: Path, path: Path) -> str:
    """A stable, portable identity for a local file: the source folder's name plus the path."""
    return f"{root.name}/{path.relative_to(root).as_posix()}"


def read_page(root: Path, path: Path) -> Page:
    """Read and clean one file; its format follows the suffix."""
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    url = page_url_for(root, path)
    fallback = path.stem.replace("_", " ").replace("-", " ").strip() or path.name
    suffix = path.suffix.lower()
    links: list[str] = []
    if suffix in (".html", ".htm"):
        title, sections, _ = html_to_sections(text, url)
        title = title or fallback
    elif suffix in (".md", ".markdown"):
        title, sections = markdown_to_sections(text, url, fallback)
    elif suffix == ".rst":
        title, sections = rst_to_sections(text, url, fallback)
    else:
        title, sections = text_to_sections(text, url, fallback)
    return Page(
        url=url,
        title=title,
        sections=sections,
        links=links,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


@ray.remote(num_cpus=0.5, max_retries=2, scheduling_strategy=SPREAD)
def read_batch(root: str, paths: list[str]) -> tuple[str, list[Page]]:
    """Ray task: read and clean a batch of files; with the node it ran on. On a cluster the
    directory must be on storage every node mounts at the same path."""
    base = Path(root)
    return this_node(), [read_page(base, Path(p)) for p in paths]


def read_directory(
    root: Path,
    files_per_task: int = 64,
    timeout_s: float = 1800.0,
    placement: Placement | None = None,
) -> list[Page]:
    """Read every supported file under `root` with Ray tasks (counted in `placement`)."""
    root = root.resolve()
    files = list_files(root)
    refs = [
        read_batch.remote(str(root), [str(p) for p in files[i : i + files_per_task]])
        for i in range(0, len(files), files_per_task)
    ]
    pages: list[Page] = []
    for node, batch in ray.get(refs, timeout=timeout_s):
        pages.extend(batch)
        if placement is not None:
            placement.add("read", node)
    return pages
