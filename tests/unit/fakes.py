"""In-process stand-ins that keep unit tests fast (the integration suite runs the real ones)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from deployments.protocols import Generation, GenerationDelta, QueryEmbedding, Readiness
from pipelines.chunk import SectionChunker
from pipelines.documents import Page, Section
from pipelines.publish import publish
from utils.settings import BuildSettings, ChunkingSettings

DIM = 32
MODEL = "all-MiniLM-L6-v2"


def hash_vector(text: str) -> np.ndarray:
    """A deterministic unit vector from the words of `text` (bag of hashed words)."""
    vector = np.zeros(DIM, dtype=np.float32)
    for word in text.lower().split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


class HashEmbedder:
    """`Embedder` with hashed bag-of-words vectors, claiming to be the index's model."""

    def __init__(self, model: str = MODEL) -> None:
        self.model = model

    async def embed(self, text: str) -> QueryEmbedding:
        return QueryEmbedding(hash_vector(text), self.model)


class ScriptedGenerator:
    """`Generator` that answers with a fixed text, or fails, as the test asks."""

    def __init__(self, text: str = "Use autoscaling_config [1].", fail: bool = False) -> None:
        self.text = text
        self.fail = fail
        self.closed = False
        self.last_messages: list[dict[str, str]] = []

    async def generate(self, messages: list[dict[str, str]], max_tokens: int) -> Generation:
        self.last_messages = messages
        if self.fail:
            raise ConnectionError("engine down")
        return Generation(self.text, prompt_tokens=100, completion_tokens=7)

    async def stream(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> AsyncIterator[GenerationDelta]:
        try:
            for word in self.text.split(" "):
                yield GenerationDelta(word + " ")
            yield GenerationDelta("", prompt_tokens=100, completion_tokens=7)
        finally:
            self.closed = True

    async def readiness(self) -> Readiness:
        return Readiness(not self.fail, "engine down" if self.fail else "")


PAGES = {
    "autoscaling": "Serve autoscaling_config scales replicas with target_ongoing_requests.",
    "batching": "Use serve.batch to batch requests in a deployment for throughput.",
    "handles": "A DeploymentHandle calls another deployment from Python code.",
}


def publish_tiny_index(index_dir: Path, model: str = MODEL) -> str:
    """Publish a three-page index with hashed vectors; returns the version."""
    pages = [
        Page(f"docs/{name}.md", name.title(), [Section(f"docs/{name}.md", name.title(), name,
                                                       name.title(), text)])
        for name, text in PAGES.items()
    ]  # fmt: skip
    chunking = ChunkingSettings()
    chunks = SectionChunker(chunking).chunk_pages(pages)
    vectors = np.stack([hash_vector(c.embed_text(True)) for c in chunks])
    settings = BuildSettings(sources=["docs"], index_dir=index_dir, chunking=chunking,
                             embedding={"model_name": model})  # fmt: skip
    return publish(chunks, vectors, settings, num_documents=len(pages)).name
