"""Incremental refresh (`build_index.py --refresh`): revalidate the published version's pages.

The crawler asks the server with the validators each page was fetched with (`If-None-Match`,
`If-Modified-Since`); a 304 reuses the stored page, links included, so the crawl goes on
through it. A page fetched in full counts as unchanged when its bytes hash the same (servers
without validators, local folders). A page that is gone (404, 410, no longer HTML, no longer
linked) disappears; one that fails for a moment (network error, 429, 5xx) keeps its stored
copy, so a flaky server never deletes documents. The version is republished only when its
content fingerprint moves; chunk ids are content-keyed, so only changed chunks are embedded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragcore.documents import Chunk, Page
from ragcore.guards.injection import HEAD_PATH
from ragcore.index_format import current_version, read_manifest, read_pages, sha256_file
from utils.settings import BuildSettings

FINGERPRINT_VERSION = "1"


def is_transient(status: int | None) -> bool:
    """True for outcomes worth another try later: no answer at all, 429 or a server error."""
    return status is None or status == 429 or status >= 500


@dataclass
class PageChanges:
    """How this crawl's pages differ from the previous version's, by URL."""

    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # fetch failed; the stored copy stays

    @property
    def any(self) -> bool:
        """True when a page was changed, added or removed."""
        return bool(self.changed or self.new or self.removed)

    def counts(self) -> dict[str, int]:
        """The manifest's and summary's figures."""
        return {name: len(getattr(self, name))
                for name in ("unchanged", "changed", "new", "removed", "kept")}  # fmt: skip

    def line(self) -> str:
        """The summary line."""
        c = self.counts()
        kept = f" (fetch failed, previous copy kept: {c['kept']})" if c["kept"] else ""
        return (f"refresh: pages unchanged {c['unchanged']}, changed {c['changed']}, "
                f"new {c['new']}, removed {c['removed']}{kept}")  # fmt: skip


@dataclass
class Revalidation:
    """The previous version's pages, offered to the sources, and what each said about them."""

    version: str | None = None
    fingerprint: str | None = None
    previous: dict[str, Page] = field(default_factory=dict)
    not_modified: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, index_dir: Path) -> Revalidation:
        """What `CURRENT` names in `index_dir`; empty when nothing (or no page list) is
        published, and then every page counts as new."""
        version = current_version(index_dir)
        if version is None:
            return cls()
        pages = read_pages(index_dir, version) or []
        fingerprint = read_manifest(index_dir, version).get("content_fingerprint")
        return cls(version, fingerprint, {p.url: p for p in pages})

    def validators(self, url: str) -> dict[str, str]:
        """Conditional-request headers for a page fetched before (none for a new URL)."""
        page = self.previous.get(url)
        if page is None:
            return {}
        headers = {}
        if page.etag:
            headers["If-None-Match"] = page.etag
        if page.last_modified:
            headers["If-Modified-Since"] = page.last_modified
        return headers

    def reuse(self, url: str, status: int | None) -> Page | None:
        """The stored page to use in place of a fetch that produced none: on a 304, or on a
        transient failure of a page the previous version holds. None means the page is gone."""
        page = self.previous.get(url)
        if page is None:
            return None
        if status == 304:
            self.not_modified.add(url)
            return page
        if is_transient(status):
            self.kept.add(url)
            return page
        return None

    def changes(self, pages: Iterable[Page]) -> PageChanges:
        """Classify this run's pages against the previous version's."""
        changes = PageChanges()
        seen = set()
        for page in pages:
            seen.add(page.url)
            before = self.previous.get(page.url)
            if page.url in self.kept:
                changes.kept.append(page.url)
            elif before is None:
                changes.new.append(page.url)
            elif page.url in self.not_modified or before.content_hash == page.content_hash:
                changes.unchanged.append(page.url)
            else:
                changes.changed.append(page.url)
        changes.removed = sorted(set(self.previous) - seen)
        return changes


def content_fingerprint(chunks: list[Chunk], settings: BuildSettings) -> str:
    """A digest of everything a published version's content depends on: every chunk (text and
    titles) and the settings that turn chunks into served vectors. Equal digests mean a
    republish would serve exactly the same thing."""
    digest = hashlib.sha256()
    scan = settings.guard_scan
    config: dict[str, Any] = {
        "v": FINGERPRINT_VERSION,
        "model": settings.embedding.model_name,
        "titles": settings.chunking.prepend_titles,
        "index": settings.index.model_dump(),
        "scan": scan.model_dump(),
        "head": sha256_file(HEAD_PATH)[:16] if scan.action != "off" else None,
    }
    if settings.adapt.enabled:  # only then: versions built without --adapt keep their digest
        config["adapt"] = settings.adapt.model_dump(mode="json")
    digest.update(json.dumps(config, sort_keys=True).encode())
    for chunk in sorted(chunks, key=lambda c: c.id):
        digest.update(json.dumps(chunk.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()[:24]
