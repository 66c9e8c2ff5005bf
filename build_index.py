"""Build a versioned FAISS index from documentation sites or local folders, with Ray.

python build_index.py --source https://docs.ray.io/en/master/serve/ --index-dir index
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pydantic import ValidationError

from utils.errors import InputError
from utils.logs import get_logger, setup_logging
from utils.settings import Settings

log = get_logger("build")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; unset flags fall back to the settings defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="SRC",
        help="http(s) URL to crawl or local directory (repeatable); default: guide/",
    )
    parser.add_argument("--index-dir", type=Path, help="where index versions are published")
    parser.add_argument("--max-depth", type=int, help="link hops from each seed URL")
    parser.add_argument("--max-pages", type=int, help="pages fetched at most")
    parser.add_argument("--chunk-size", type=int, help="characters per chunk")
    parser.add_argument("--chunk-overlap", type=int, help="characters shared by chunks")
    parser.add_argument("--embedding-model", help="sentence-transformers name or path")
    parser.add_argument("--index-type", choices=["flat", "hnsw"], help="FAISS index type")
    parser.add_argument("--batch-size", type=int, help="chunks per embedding batch")
    parser.add_argument("--num-actors", type=int, help="embedding actors (0: auto)")
    parser.add_argument(
        "--ray-address", help="join this Ray cluster (default: RAY_ADDRESS or local)"
    )
    parser.add_argument("--guard-scan", choices=["quarantine", "drop", "off"],
                        help="what to do with chunks that carry a prompt injection")  # fmt: skip
    parser.add_argument(
        "--refresh",
        action="store_true",
        default=None,
        help="re-crawl conditionally (ETag, Last-Modified), re-embed only changed chunks, and "
        "publish only if something changed",
    )
    parser.add_argument("--adapt", action="store_true", default=None,
                        help="train an embedder and/or reranker on the corpus itself and "
                        "publish them with the version")  # fmt: skip
    parser.add_argument("--adapt-learners", nargs="+", choices=["embedder", "reranker"],
                        help="what --adapt trains (default: the settings' learners)")  # fmt: skip
    parser.add_argument("--adapt-max-queries", type=int,
                        help="training queries drawn from the corpus at most")  # fmt: skip
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Overlay the flags that were given on the defaults and RAG_* environment."""
    base = Settings()
    build = base.build.model_dump()
    pick = {k: v for k, v in vars(args).items() if v is not None}
    for key in ("sources", "index_dir", "ray_address", "refresh"):
        if key in pick:
            build[key] = pick[key]
    nested = {
        "crawl": {"max_depth": "max_depth", "max_pages": "max_pages"},
        "chunking": {"chunk_size": "chunk_size", "chunk_overlap": "chunk_overlap"},
        "embedding": {
            "model_name": "embedding_model",
            "batch_size": "batch_size",
            "num_actors": "num_actors",
        },
        "index": {"index_type": "index_type"},
        "guard_scan": {"action": "guard_scan"},
        "adapt": {
            "enabled": "adapt",
            "learners": "adapt_learners",
            "max_queries": "adapt_max_queries",
        },
    }
    for group, fields in nested.items():
        for field, flag in fields.items():
            if flag in pick:
                build[group][field] = pick[flag]
    return Settings(build=build, service=base.service)


def _validation_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"][1:] or first["loc"])
    return f"invalid {where}: {first['msg']}"


def main(argv: list[str] | None = None) -> int:
    """Run the build; returns the process exit code."""
    setup_logging()
    args = parse_args(argv)
    try:
        settings = settings_from_args(args).build
    except ValidationError as exc:
        print(f"error: {_validation_line(exc)}", file=sys.stderr)
        return 2
    from pipelines.build import preflight, run_build
    from utils.ray_runtime import init_ray

    try:
        preflight(settings)
        init_ray(settings.ray_address, settings.num_cpus)
        summary = run_build(settings)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was published", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal failure: log the detail, print one line
        log.exception("build failed")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: build failed, nothing was published: {first[:300]}", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    log.info(
        "build finished",
        extra={
            "version": summary.version_path.name,
            "published": summary.published,
            "chunks": summary.chunks,
            "pages": summary.pages,
            **({"refresh": summary.changes.counts()} if summary.changes else {}),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
