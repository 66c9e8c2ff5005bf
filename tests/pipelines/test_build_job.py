"""The build job end to end, as a user runs it: subprocesses of build_index.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.checkpoint import CheckpointStore
from ragcore.index_format import current_version, load_index
from tests.helpers import wait_for, write_corpus
from utils.errors import ModelMismatchError

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run_build(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "build_index.py", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def published_ids(index_dir: Path) -> list[str]:
    return [c.id for c in load_index(index_dir).chunks]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "guides", pages=60)


@pytest.fixture(scope="module")
def clean_build(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("clean")
    result = run_build("--source", str(corpus), "--index-dir", str(index_dir), "--batch-size", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "published" in result.stdout and "chunks/s" in result.stdout
    return index_dir


def test_manifest_and_published_files(clean_build: Path, corpus: Path) -> None:
    version = current_version(clean_build)
    assert version is not None
    manifest = json.loads((clean_build / version / "manifest.json").read_text())
    for key in (
        "version",
        "embedding_model",
        "embedding_dim",
        "normalized",
        "metric",
        "chunk_size",
        "chunk_overlap",
        "num_documents",
        "num_chunks",
        "created_at",
        "sources",
        "checksums",
    ):
        assert key in manifest
    assert manifest["num_documents"] == 60 and manifest["embedding_dim"] == 384
    published = load_index(clean_build)
    assert published.index.ntotal == manifest["num_chunks"] == len(published.chunks)
    assert len({c.id for c in published.chunks}) == len(published.chunks)
    assert all(c.source.startswith("guides/guide_") and "#" in c.source for c in published.chunks)


def test_resume_after_sigkill_embeds_only_what_was_missing(
    clean_build: Path, corpus: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    args = [
        sys.executable,
        "build_index.py",
        "--source",
        str(corpus),
        "--index-dir",
        str(index_dir),
        "--batch-size",
        "4",
        "--num-actors",
        "1",
    ]
    proc = subprocess.Popen(
        args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt_root = index_dir / ".checkpoints"
    try:
        wait_for(lambda: len(list(ckpt_root.glob("*/*.npz"))) >= 5, 300, "5 batches")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert current_version(index_dir) is None  # killed mid-embedding: nothing published
    [model_dir] = ckpt_root.iterdir()
    first_run = {cid for r in CheckpointStore(ckpt_root, model_dir.name).records() for cid in r.ids}
    assert first_run

    result = run_build("--source", str(corpus), "--index-dir", str(index_dir), "--batch-size", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    records = CheckpointStore(ckpt_root, model_dir.name).records()
    second_run_ids = [cid for r in records for cid in r.ids if cid not in first_run]
    assert len(second_run_ids) == len(set(second_run_ids))  # nothing embedded twice
    runs = {r.run_id for r in records}
    assert len(runs) == 2
    resumed = published_ids(index_dir)
    assert resumed == published_ids(clean_build)  # same chunk ids, same order, no duplicates
    assert set(second_run_ids) == set(resumed) - first_run


def test_changed_corpus_reuses_unchanged_embeddings(corpus: Path, tmp_path: Path) -> None:
    small = write_corpus(tmp_path / "guides", pages=4)
    index_dir = tmp_path / "index"
    assert run_build("--source", str(small), "--index-dir", str(index_dir)).returncode == 0
    first_version = current_version(index_dir)
    (small / "guide_000.md").write_text("# Guide 0\n\nA rewritten page about tracing.")
    result = run_build("--source", str(small), "--index-dir", str(index_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert current_version(index_dir) != first_version
    assert "embedded 1, reused " in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "/nonexistent/dir"], "does not exist"),
        (["--chunk-size", "100", "--chunk-overlap", "100"], "chunk_overlap"),
        (["--max-pages", "0"], "max_pages"),
        (["--source", "http://127.0.0.1:9/docs/"], "could not fetch"),
        (["--embedding-model", "/nonexistent/model"], "cannot load embedding model"),
    ],
)
def test_bad_input_is_one_clear_line_and_publishes_nothing(
    args: list[str], message: str, tmp_path: Path, corpus: Path
) -> None:
    source = [] if "--source" in args else ["--source", str(corpus)]
    result = run_build(*source, *args, "--index-dir", str(tmp_path / "idx"))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in result.stderr
    assert current_version(tmp_path / "idx") is None


def test_empty_corpus_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.md").write_text("   \n")
    result = run_build("--source", str(tmp_path / "empty"), "--index-dir", str(tmp_path / "i"))
    assert result.returncode == 1 and "nothing to index" in result.stderr


def test_model_mismatch_is_refused(clean_build: Path) -> None:
    with pytest.raises(ModelMismatchError, match="built with embedding model"):
        load_index(clean_build, embedding_model="sentence-transformers/all-mpnet-base-v2")
    assert load_index(clean_build, embedding_model="sentence-transformers/all-MiniLM-L6-v2")


def test_langchain_door_returns_a_working_vectorstore(clean_build: Path) -> None:
    from pipelines.langchain_store import as_langchain_retriever

    docs = as_langchain_retriever(clean_build, k=3).invoke("guide 7 section 2")
    assert len(docs) == 3
    assert all(d.metadata["source"].startswith("guides/") for d in docs)
