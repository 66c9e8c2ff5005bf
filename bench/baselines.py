"""Baselines for bench/serve_load.py: the book's designs, without our batching or composition.

* `create_plain_app`: one process, FastAPI + FAISS + sentence-transformers, one query embedded
  per request. Run it with
  `python -m bench.baselines --index-dir DIR --version V --model M --port P`.
* `build_book_app`: the book's single Ray Serve deployment; it loads the model and the FAISS
  index itself and embeds one query per request, then searches (Serve defaults otherwise).
* `transformers_generate`: the generator model through a plain transformers `generate` loop,
  one request at a time, greedy.

Both search baselines do what the book does: dense FAISS search only. Our service also runs
the BM25 leg and reciprocal rank fusion on every query, so it does more work per request.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI
from ray import serve

from bench import common  # noqa: F401  (the shared environment, before any model loads)
from ragcore.index_format import load_index
from utils.models import load_sentence_transformer

if TYPE_CHECKING:
    from ray.serve.deployment import Application


class FlatSearcher:
    """The book's search: embed the one query, search the FAISS index, return the chunks."""

    def __init__(self, index_dir: Path, version: str, model_name: str) -> None:
        self.published = load_index(index_dir, version, model_name)
        self.model = load_sentence_transformer(model_name)

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        """Top-k chunks by cosine similarity, in the service's result shape."""
        vector = self.model.encode(
            [query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        scores, rows = self.published.index.search(np.asarray(vector, dtype=np.float32), k)
        chunks = self.published.chunks
        return [
            {"content": chunks[r].text, "source": chunks[r].source, "score": float(s)}
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0
        ]


def create_plain_app(index_dir: Path, version: str, model_name: str) -> FastAPI:
    """Single-process FastAPI server. The route is a plain `def`, so FastAPI runs each request
    in its thread pool (the usual way to serve blocking model code) and a slow encode does not
    stall the event loop."""
    searcher = FlatSearcher(index_dir, version, model_name)
    app = FastAPI(title="plain-search")

    @app.get("/healthz")
    @app.get("/readyz")
    def healthz() -> dict[str, str]:
        """Up means ready: the model and the index load before the server starts."""
        return {"status": "ok"}

    @app.get("/search")
    def search(query: str, k: int = 5) -> dict[str, Any]:
        return {"results": searcher.search(query, k), "status": "ok"}

    return app


book_api = FastAPI(title="book-search")


@serve.deployment(name="BookSearch")
@serve.ingress(book_api)
class BookSearchDeployment:
    """The book's single deployment: model and index in one replica, one query per request.
    Serve's defaults apply (1 replica, 1 CPU, max_ongoing_requests 5); `num_threads` 0 keeps
    torch at Ray's default for a 1-CPU actor (OMP_NUM_THREADS=1)."""

    def __init__(self, index_dir: str, version: str, model_name: str, num_threads: int) -> None:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self.searcher = FlatSearcher(Path(index_dir), version, model_name)

    @book_api.get("/search")
    def search(self, query: str, k: int = 5) -> dict[str, Any]:
        return {"results": self.searcher.search(query, k), "status": "ok"}


def build_book_app(args: dict[str, Any]) -> Application:
    """Application builder (import path `bench.baselines:build_book_app`)."""
    return BookSearchDeployment.bind(  # type: ignore[attr-defined]
        str(args["index_dir"]),
        str(args["version"]),
        str(args["embedding_model"]),
        int(args.get("num_threads", 0)),
    )


@dataclass(frozen=True)
class GenerationTiming:
    """One sequential transformers generation."""

    ttft_s: float
    total_s: float
    prompt_tokens: int
    completion_tokens: int


class _FirstTokenClock:
    """A streamer that only notes when the first new token arrives (the first `put` is the
    prompt, the second the first generated token)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first_at: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first_at = time.perf_counter()

    def end(self) -> None:
        """Nothing to flush."""


def transformers_generate(
    model_dir: str, conversations: list[list[dict[str, str]]], max_tokens: int
) -> list[GenerationTiming]:
    """Generate for each conversation in turn (greedy, `max_tokens` new tokens at most) with a
    plain transformers loop; the first conversation is also run once untimed as a warm-up."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def run(messages: list[dict[str, str]]) -> GenerationTiming:
        start = time.perf_counter()
        inputs: Any = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        clock = _FirstTokenClock()
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                streamer=clock,
                pad_token_id=tokenizer.eos_token_id,
            )
        total = time.perf_counter() - start
        prompt = int(inputs["input_ids"].shape[1])
        first = clock.first_at if clock.first_at is not None else start + total
        return GenerationTiming(first - start, total, prompt, int(output.shape[1]) - prompt)

    if conversations:
        run(conversations[0])
    return [run(messages) for messages in conversations]


def main(argv: list[str] | None = None) -> int:
    """Serve the plain FastAPI baseline with uvicorn until terminated."""
    import uvicorn

    parser = argparse.ArgumentParser(description="plain FastAPI + FAISS search baseline")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--model", required=True, help="sentence-transformers model")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_plain_app(args.index_dir, args.version, args.model)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
