"""Atomic, content-keyed checkpoints of finished embedding batches.

A batch file is keyed by the model, the embedding settings and the chunk ids it holds, so a
re-run (after a crash or a corpus change) reuses every vector whose chunk is unchanged and never
embeds it twice. Files are `.npz` written without pickle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.atomic import atomic_write_bytes


def model_key(model_name: str, prepend_titles: bool, normalized: bool = True) -> str:
    """Digest of everything that changes a chunk's vector apart from its text."""
    payload = json.dumps({"model": model_name, "titles": prepend_titles, "norm": normalized})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def batch_key(model: str, ids: Iterable[str]) -> str:
    """Digest naming a batch file: the model key plus the sorted chunk ids."""
    digest = hashlib.sha256(model.encode())
    for chunk_id in sorted(ids):
        digest.update(b"\x1f" + chunk_id.encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class BatchRecord:
    """One finished batch as found on disk."""

    key: str
    run_id: str
    ids: list[str]


class CheckpointStore:
    """Embedding batches under `root/<model key>/`; each file is complete or absent."""

    def __init__(self, root: Path, model: str) -> None:
        self.model = model
        self.dir = root / model
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # left by a killed run; never read

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def write(self, key: str, ids: list[str], vectors: np.ndarray, run_id: str) -> None:
        """Persist one batch atomically (temp file, fsync, rename)."""
        import io

        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=np.array(ids, dtype=np.str_),
            vectors=vectors.astype(np.float32),
            run_id=np.array(run_id),
        )
        atomic_write_bytes(self.path(key), buffer.getvalue())

    def records(self) -> list[BatchRecord]:
        """Every finished batch, without loading its vectors."""
        out = []
        for path in sorted(self.dir.glob("*.npz")):
            with np.load(path, allow_pickle=False) as data:
                out.append(BatchRecord(path.stem, str(data["run_id"]), data["ids"].tolist()))
        return out

    def load_vectors(self, wanted: set[str]) -> dict[str, np.ndarray]:
        """Vectors of the wanted chunk ids found in any finished batch."""
        found: dict[str, np.ndarray] = {}
        for path in sorted(self.dir.glob("*.npz")):
            with np.load(path, allow_pickle=False) as data:
                ids = data["ids"].tolist()
                if not wanted.intersection(ids):
                    continue
                vectors = data["vectors"]
                for i, chunk_id in enumerate(ids):
                    if chunk_id in wanted and chunk_id not in found:
                        found[chunk_id] = vectors[i]
        return found
