"""The published index as a LangChain VectorStore or retriever, for LangChain users."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ragcore.index_format import load_index
from utils.models import resolve_embedding_model

if TYPE_CHECKING:
    from langchain_community.vectorstores import FAISS
    from langchain_core.vectorstores import VectorStoreRetriever


def as_langchain_vectorstore(index_dir: Path, version: str | None = None) -> FAISS:
    """Wrap the published FAISS index and chunks in langchain_community's FAISS store, with the
    same embedding model the manifest names (so queries and index always agree)."""
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    published = load_index(index_dir, version)
    embeddings = HuggingFaceEmbeddings(
        model_name=resolve_embedding_model(published.embedding_model),
        encode_kwargs={"normalize_embeddings": True},
    )
    docs = {
        chunk.id: Document(
            page_content=chunk.text,
            metadata={
                "source": chunk.source,
                "title": chunk.page_title,
                "section": chunk.section_title,
                "chunk_id": chunk.id,
            },
            id=chunk.id,
        )
        for chunk in published.chunks
    }
    return FAISS(
        embedding_function=embeddings,
        index=published.index,
        docstore=InMemoryDocstore(docs),
        index_to_docstore_id={i: c.id for i, c in enumerate(published.chunks)},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )


def as_langchain_retriever(index_dir: Path, k: int = 5) -> VectorStoreRetriever:
    """A LangChain retriever over the published index returning `k` documents."""
    return as_langchain_vectorstore(index_dir).as_retriever(search_kwargs={"k": k})
