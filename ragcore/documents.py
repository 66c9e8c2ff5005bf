"""Plain data records that flow between the offline stages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Section:
    """A titled part of a page, cut at a heading. `text` is clean text, never raw HTML."""

    page_url: str
    page_title: str
    anchor: str
    section_title: str
    text: str

    @property
    def source(self) -> str:
        """The page URL plus the section anchor, as cited to users."""
        return f"{self.page_url}#{self.anchor}" if self.anchor else self.page_url


@dataclass(frozen=True)
class Page:
    """A fetched or read document, already cleaned into sections."""

    url: str
    title: str
    sections: list[Section]
    links: list[str] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record for a version's page list (refresh reuses unchanged pages)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Page:
        """Inverse of `to_dict`."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{**fields, "sections": [Section(**s) for s in data["sections"]]})


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit. `id` is stable across runs for the same content and settings."""

    id: str
    text: str
    source: str
    page_url: str
    page_title: str
    section_title: str

    def embed_text(self, prepend_titles: bool) -> str:
        """The text embedded and BM25-indexed: titles first when enabled, for context."""
        if not prepend_titles:
            return self.text
        heading = " > ".join(t for t in (self.page_title, self.section_title) if t)
        return f"{heading}\n{self.text}" if heading else self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for the chunk store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        """Inverse of `to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
