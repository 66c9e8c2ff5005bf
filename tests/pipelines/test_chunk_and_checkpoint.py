from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.checkpoint import CheckpointStore, batch_key
from pipelines.chunk import SectionChunker
from ragcore.documents import Page, Section
from utils.settings import ChunkingSettings


def _page(text: str) -> Page:
    sections = [
        Section("u/a.md", "A", "one", "One", text),
        Section("u/a.md", "A", "two", "Two", "b"),
    ]
    return Page("u/a.md", "A", sections)


def test_chunk_ids_are_stable_and_follow_content_and_settings() -> None:
    settings = ChunkingSettings(chunk_size=100, chunk_overlap=10)
    text = " ".join(f"word{i}" for i in range(80))
    first = SectionChunker(settings).chunk_pages([_page(text)])
    again = SectionChunker(settings).chunk_pages([_page(text)])
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first) > 2
    other = SectionChunker(ChunkingSettings(chunk_size=120, chunk_overlap=10)).chunk_pages(
        [_page(text)]
    )
    assert {c.id for c in other}.isdisjoint(c.id for c in first)
    assert all(len(c.text) <= 100 for c in first)
    assert {c.source for c in first} == {"u/a.md#one", "u/a.md#two"}


def test_duplicate_chunks_collapse() -> None:
    chunks = SectionChunker(ChunkingSettings()).chunk_pages([_page("same"), _page("same")])
    assert len(chunks) == 2


def test_embed_text_prepends_titles() -> None:
    chunk = SectionChunker(ChunkingSettings()).chunk_pages([_page("body")])[0]
    assert chunk.embed_text(True) == "A > One\nbody"
    assert chunk.embed_text(False) == "body"


def test_overlap_must_be_below_size() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap"):
        ChunkingSettings(chunk_size=100, chunk_overlap=100)


def test_checkpoint_round_trip_and_stale_temp_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "m1")
    vectors = np.eye(3, dtype=np.float32)
    key = batch_key("m1", ["a", "b", "c"])
    assert key == batch_key("m1", ["c", "b", "a"]) != batch_key("m2", ["a", "b", "c"])
    store.write(key, ["a", "b", "c"], vectors, run_id="r1")
    (store.dir / ".x.npz.123.tmp").write_bytes(b"half")
    reopened = CheckpointStore(tmp_path, "m1")
    assert not list(reopened.dir.glob(".*.tmp"))
    found = reopened.load_vectors({"b", "z"})
    assert list(found) == ["b"] and np.array_equal(found["b"], vectors[1])
    [record] = reopened.records()
    assert record.run_id == "r1" and record.ids == ["a", "b", "c"]
