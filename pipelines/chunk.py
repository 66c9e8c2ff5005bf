"""Cut clean sections into chunks with stable, content-derived ids."""

from __future__ import annotations

import hashlib
import json

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragcore.documents import Chunk, Page, Section
from utils.settings import ChunkingSettings

CHUNKER_VERSION = "1"


def settings_fingerprint(settings: ChunkingSettings) -> str:
    """A short digest of the chunker settings, part of every chunk id."""
    payload = json.dumps({"v": CHUNKER_VERSION, **settings.model_dump()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def chunk_id(source: str, text: str, fingerprint: str) -> str:
    """Stable id from the chunk's source, content and chunker settings."""
    digest = hashlib.sha256(f"{fingerprint}\x1f{source}\x1f{text}".encode()).hexdigest()
    return digest[:24]


class SectionChunker:
    """Split each section on its own, so no chunk spans two sections or two pages."""

    def __init__(self, settings: ChunkingSettings) -> None:
        self.settings = settings
        self.fingerprint = settings_fingerprint(settings)
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            separators=["\n\n", "\n", ". ", " ", ""],
        )

    def chunk_section(self, section: Section) -> list[Chunk]:
        """Chunks of one section, each citing the section's anchor."""
        return [
            Chunk(
                id=chunk_id(section.source, piece, self.fingerprint),
                text=piece,
                source=section.source,
                page_url=section.page_url,
                page_title=section.page_title,
                section_title=section.section_title,
            )
            for piece in self._splitter.split_text(section.text)
            if piece.strip()
        ]

    def chunk_pages(self, pages: list[Page]) -> list[Chunk]:
        """All chunks of all pages, de-duplicated by id, in a deterministic order."""
        chunks: dict[str, Chunk] = {}
        for page in pages:
            for section in page.sections:
                for chunk in self.chunk_section(section):
                    chunks.setdefault(chunk.id, chunk)
        return list(chunks.values())
